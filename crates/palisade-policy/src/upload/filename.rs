//! Checks on client-supplied file names. Names are passed through to the application, so a
//! name that could escape a directory (`../x`, `a/b`, `C:\x`), hide a suffix (`x.php\0.png`)
//! or smuggle control characters into logs and headers is refused outright.

/// Longest file name accepted, in bytes (the common file-system limit).
pub const MAX_FILENAME_LEN: usize = 255;

/// Why a file name is refused, as a phrase for the refusal detail.
pub fn problem(name: &str) -> Option<&'static str> {
    if name.len() > MAX_FILENAME_LEN {
        return Some("file name longer than 255 bytes");
    }
    if name.contains(['/', '\\']) {
        return Some("file name contains a path separator");
    }
    if name.contains('\0') {
        return Some("file name contains a NUL character");
    }
    if name.chars().any(char::is_control) {
        return Some("file name contains a control character");
    }
    if name == "." || name == ".." {
        return Some("file name is a directory reference");
    }
    // Windows drops trailing dots and spaces, so `shell.php.` would be stored as
    // `shell.php` after the extension check saw an empty extension.
    if name.ends_with(['.', ' ']) {
        return Some("file name ends with a dot or a space");
    }
    None
}

/// The extension after the last dot, if the name has one (`a.tar.gz` → `gz`; `.png` and
/// `README` have none).
pub fn extension(name: &str) -> Option<&str> {
    let (stem, ext) = name.rsplit_once('.')?;
    (!stem.is_empty() && !ext.is_empty()).then_some(ext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_names_are_refused() {
        for bad in [
            "../etc/passwd",
            "a/b.png",
            "C:\\fakepath\\a.png",
            "x.php\0.png",
            "a\r\nb.png",
            "..",
            "shell.php.",
            "shell.php ",
        ] {
            assert!(problem(bad).is_some(), "{bad:?}");
        }
        assert!(problem(&"a".repeat(256)).is_some());
    }

    #[test]
    fn ordinary_names_pass() {
        for good in [
            "cat.png",
            "Café au lait.JPG",
            "photo (1).jpeg",
            "README",
            ".png",
        ] {
            assert_eq!(problem(good), None, "{good:?}");
        }
    }

    #[test]
    fn extension_is_the_last_one() {
        assert_eq!(extension("a.tar.gz"), Some("gz"));
        assert_eq!(extension("shell.php.png"), Some("png"));
        assert_eq!(extension("README"), None);
        assert_eq!(extension(".png"), None);
    }
}
