//! Path normalisation: backslashes to slashes, `;parameters` dropped, `//` and `/./`
//! collapsed, `..` resolved (never above the root), as a server resolving the path would
//! see it.

use super::{DecodeFlags, Plus, percent};

/// The decoded path with separators unified, `;parameters` dropped from every segment and
/// dot segments resolved. Servlet containers route `/public/..;/admin` as `/admin` and
/// `/admin;jsessionid=1` as `/admin`; reading the path as they do keeps a `..;` segment
/// from looking like a directory name.
pub fn normalize_path(decoded: &str) -> String {
    let unified = decoded.replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    let mut ended_in_dots = false;
    for seg in unified.split('/') {
        ended_in_dots = match seg.split(';').next().unwrap_or_default() {
            "" => ended_in_dots,
            "." => true,
            ".." => {
                segments.pop();
                true
            }
            s => {
                segments.push(s);
                false
            }
        };
    }
    let mut out = String::with_capacity(unified.len() + 1);
    for seg in &segments {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() || (unified.ends_with('/') || ended_in_dots) && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// The spellings of a request path that an exclusion's `path_prefix` must all match: the
/// path decoded once, as an upstream reads it, and decoded to a fixed point, as the
/// detectors read it; both resolved by [`normalize_path`]. An exclusion is a hole in the
/// detection, so it holds only where every reading agrees: `/api%252Fsearch/x` is under
/// `/api/search/` only for a reader that decodes twice, and the upstream does not.
pub fn exclusion_paths(raw_path: &[u8]) -> [String; 2] {
    let path = without_origin(raw_path);
    let mut once = Vec::with_capacity(path.len());
    percent::decode_into(
        path,
        Plus::Literal,
        true,
        &mut once,
        &mut DecodeFlags::default(),
    );
    let full = super::decode(path, Plus::Literal).0;
    [
        normalize_path(&String::from_utf8_lossy(&once)),
        normalize_path(&full),
    ]
}

/// The path of an absolute-form target (`http://host/path`); other targets as they are.
fn without_origin(target: &[u8]) -> &[u8] {
    let Some(scheme_end) = memchr::memmem::find(target, b"://") else {
        return target;
    };
    if !target[..scheme_end].iter().all(u8::is_ascii_alphabetic) {
        return target;
    }
    let authority = &target[scheme_end + 3..];
    match memchr::memchr(b'/', authority) {
        Some(at) => &authority[at..],
        None => b"/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_dot_segments_without_climbing_above_root() {
        assert_eq!(normalize_path("/a/./b/../../../etc/passwd"), "/etc/passwd");
    }

    #[test]
    fn unifies_backslashes_and_collapses_slashes() {
        assert_eq!(normalize_path("\\admin//panel\\"), "/admin/panel/");
    }

    #[test]
    fn keeps_the_root() {
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path(""), "/");
    }

    #[test]
    fn drops_segment_parameters_so_dot_dot_semicolon_climbs() {
        assert_eq!(normalize_path("/api/search/..;/admin"), "/api/admin");
        assert_eq!(normalize_path("/admin;jsessionid=1/x"), "/admin/x");
        assert_eq!(normalize_path("/api/search/.."), "/api/");
    }

    #[test]
    fn exclusion_paths_read_the_path_once_decoded_and_fully_decoded() {
        assert_eq!(
            exclusion_paths(b"/api%252Fsearch/x"),
            ["/api%2Fsearch/x", "/api/search/x"]
        );
        assert_eq!(
            exclusion_paths(b"/api/search/%2e%2e;x/admin"),
            ["/api/admin", "/api/admin"]
        );
        assert_eq!(exclusion_paths(b"http://a.example/cms/x")[0], "/cms/x");
        assert_eq!(exclusion_paths(b"http://a.example")[1], "/");
    }
}
