//! Reading the files a configuration names, with a size bound.
//!
//! The configuration, the rules file, a JWKS file and secret files are small; a path that
//! names something huge or endless by mistake (`/dev/zero`, a log file, a disk image) must
//! end in an error naming the file, not in palisade reading until memory runs out.

use std::io::{self, Read};
use std::path::Path;

/// The largest configuration, rules, JWKS or TLS PEM file read: far beyond any real one.
pub const MAX_TEXT_FILE: u64 = 16 << 20;
/// The largest secret file read: secrets are a few dozen bytes.
pub const MAX_SECRET_FILE: u64 = 64 << 10;

/// The contents of `path`, refused past `limit` bytes.
pub fn read_bounded(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {} KiB, which no such file needs", limit >> 10),
        ));
    }
    Ok(bytes)
}

/// The UTF-8 text of `path`, refused past [`MAX_TEXT_FILE`] bytes.
pub fn read_text(path: &Path) -> io::Result<String> {
    let bytes = read_bounded(path, MAX_TEXT_FILE)?;
    String::from_utf8(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

/// Why `err` stops palisade from using a path, in the words an operator expects.
pub fn describe(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::NotADirectory => "not a directory (a parent in the path is a file)".into(),
        io::ErrorKind::IsADirectory => "is a directory, expected a file".into(),
        _ => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endless_and_oversized_files_are_refused() {
        let err = read_bounded(Path::new("/dev/zero"), 1024).expect_err("endless");
        assert!(err.to_string().contains("larger than 1 KiB"), "{err}");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f");
        std::fs::write(&path, [b'a'; 1024]).expect("write");
        assert_eq!(read_bounded(&path, 1024).expect("at the limit").len(), 1024);
        std::fs::write(&path, [b'a'; 1025]).expect("write");
        assert!(read_bounded(&path, 1024).is_err());
        std::fs::write(&path, [0xff]).expect("write");
        assert!(read_text(&path).is_err());
    }
}
