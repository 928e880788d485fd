//! Path normalisation: backslashes to slashes, `//` and `/./` collapsed, `..` resolved
//! (never above the root), as a server resolving the path would see it.

/// The decoded path with separators unified and dot segments resolved.
pub fn normalize_path(decoded: &str) -> String {
    let unified = decoded.replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    for seg in unified.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(unified.len() + 1);
    for seg in &segments {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() || unified.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    out
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
}
