//! Path traversal and local file inclusion: climbing out of a directory (`../`, `..\`, and
//! their encoded forms, already decoded by the normaliser) and naming the files attackers
//! read first (account databases, keys, process information, server configuration).

use super::Hit;
use crate::extract::Source;

/// Files and directories worth reading to an attacker, as path fragments (lowercase, `/`).
pub(crate) const SENSITIVE: &[&str] = &[
    "etc/passwd",
    "etc/shadow",
    "etc/group",
    "etc/hosts",
    "etc/issue",
    "etc/subuid",
    "etc/subgid",
    "etc/sudoers",
    "etc/crontab",
    "etc/fstab",
    "etc/motd",
    "etc/apache2/",
    "etc/httpd/",
    "etc/nginx/",
    "etc/mysql/",
    "etc/ssh/",
    "etc/security/",
    "etc/profile",
    "etc/environment",
    "etc/resolv.conf",
    "etc/master.passwd",
    "proc/self/",
    "proc/thread-self/",
    "proc/version",
    "proc/cmdline",
    "proc/net/",
    "proc/sys/",
    "proc/1/",
    "proc/mounts",
    "proc/cpuinfo",
    "sys/class",
    "sys/kernel",
    "root/.",
    ".ssh/",
    ".aws/",
    ".docker/",
    ".kube/",
    ".git/",
    ".svn/",
    ".hg/",
    ".htaccess",
    ".htpasswd",
    ".bash_history",
    ".zsh_history",
    ".history",
    ".mysql_history",
    ".psql_history",
    "boot.ini",
    "win.ini",
    "system.ini",
    "windows/system32",
    "winnt/system32",
    "windows/win.ini",
    "web.config",
    "wp-config.php",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    "authorized_keys",
    "known_hosts",
    "httpd.conf",
    "apache2.conf",
    "nginx.conf",
    "php.ini",
    "my.cnf",
    "var/log/",
    "var/run/secrets",
    "run/secrets/",
    "serviceaccount/token",
    "etc/ssl/private",
    ".git-credentials",
    ".npmrc",
    ".netrc",
    ".pgpass",
    "localsettings.php",
    "configuration.php",
    "application.properties",
    "server.xml",
    "tomcat-users.xml",
    "boot/grub",
    "etc/shells",
    "web-inf/",
    "meta-inf/",
];

/// Components that are sensitive only as a whole (`.env`, not `.environment`).
pub(crate) const WHOLE: &[&str] = &[".env", ".git", ".ssh", ".aws", "shadow", "passwd"];

/// Sensitive fragments naming system directories that ordinary request paths also hold
/// (`/kb/var/log/rotation`, `/api/v1/sys/class/42`, `/guide/etc/hosts`): in a request path
/// without a climb they count only from the path's root. [`ANYWHERE`] lists the exceptions.
const SYSTEM_DIRS: &[&str] = &["etc/", "proc/", "sys/", "var/", "boot/", "root/", "run/"];

/// System files no application path names: these count anywhere in a request path
/// (`/download/etc/passwd` reaches `/etc/passwd` through an app that joins paths).
const ANYWHERE: &[&str] = &[
    "etc/passwd",
    "etc/shadow",
    "etc/master.passwd",
    "etc/sudoers",
    "proc/self/",
    "proc/thread-self/",
];

/// Looks for traversal and sensitive file names in `folded` (lowercase, decoded).
pub fn detect(_text: &str, folded: &str, source: Source) -> Option<Hit> {
    if !folded.contains(['/', '\\', '.']) {
        return None;
    }
    let in_path = source == Source::Path;
    // A request path as a file server opens it, when it is spelled otherwise
    // (`/etc//hosts`, `/.git;/config`, `/.env.`: red-team findings).
    let path: String = folded.replace('\\', "/");
    let respelled = in_path && may_be_respelled(&path);
    let anchored = ANCHORS.is_match(folded);
    if !anchored && !respelled {
        return None;
    }
    let view = respelled.then(|| file_view(&path));
    if !anchored && !view.as_deref().is_some_and(|v| ANCHORS.is_match(v)) {
        return None;
    }
    let climbs = climbs(&path);
    // Without a climb, a request path names a file only from its root, or by a name no
    // application uses for a page (`/products/shadow` is a product).
    let rooted = in_path && climbs == 0;
    let sensitive = sensitive(&path, rooted).or_else(|| {
        // The view is the file the server opens, `..` resolved: counted from the root.
        let view = view.as_deref().filter(|v| *v != path)?;
        sensitive(view, in_path).map(|_| 0)
    });
    let score = match (climbs, sensitive) {
        (0, None) => return None,
        (n, Some(_)) if n >= 1 => 5,
        (0, Some(_)) if in_path => 14,
        (0, Some(at)) if in_sentence(&path, at) => 36,
        (0, Some(_)) => 10,
        (n, None) if n >= 3 => 8,
        (2, None) if !in_path => 12,
        (2, None) => 20,
        _ => 38,
    };
    let start = sensitive.or_else(|| path.find("..")).unwrap_or(0);
    let reason = if climbs > 0 {
        "path traversal"
    } else {
        "sensitive file"
    };
    Some(Hit::new(score, reason, start, folded.len()))
}

/// Whether the file name at `at` is mentioned in a sentence (`the /etc/hosts file
/// explained`, `php.ini settings for upload size`): two or more words of letters stand
/// beside it. No file is named that way, so a value like this cannot be opened as one;
/// a command around the name (`cat /etc/passwd`) is the shell detector's to judge.
fn in_sentence(path: &str, at: usize) -> bool {
    // ASCII whitespace only: one byte, so `i + 1` stays on a character boundary.
    let space = |c: char| c.is_ascii_whitespace();
    let token_start = path[..at].rfind(space).map_or(0, |i| i + 1);
    let token_end = path[at..].find(space).map_or(path.len(), |i| at + i);
    let words = |s: &str| {
        s.split_whitespace()
            .filter(|w| {
                let w = w.trim_end_matches(['.', ',', '?', '!']);
                w.len() >= 2 && w.bytes().all(|c| c.is_ascii_alphabetic() || c == b'\'')
            })
            .count()
    };
    words(&path[..token_start]) + words(&path[token_end..]) >= 2
}

/// A `..` segment of the path that was written with escapes (`..%2f`, `%2e%2e/`, `.%2e`,
/// `..%5c`, `..%3b`): nobody spells a path that way but to walk past a filter. An upstream
/// that decodes `%2F` resolves `/x/..%2fadmin` as `/admin`, while rules that keep encoded
/// slashes, as RFC 3986 asks, see one segment named `..%2Fadmin`.
pub fn encoded_climb(raw_path: &[u8]) -> Option<Hit> {
    let mut offset = 0;
    for segment in raw_path.split(|&b| b == b'/' || b == b'\\') {
        let start = offset;
        offset += segment.len() + 1;
        if !segment.contains(&b'%') {
            continue;
        }
        let decoded = crate::normalize::decode(segment, crate::normalize::Plus::Literal).0;
        let climbs = decoded
            .split(['/', '\\'])
            .any(|part| part.split(';').next() == Some(".."));
        if climbs {
            return Some(Hit::new(10, "encoded path traversal", start, offset - 1));
        }
    }
    None
}

static ANCHORS: std::sync::LazyLock<aho_corasick::AhoCorasick> = std::sync::LazyLock::new(|| {
    let patterns = anchor_patterns();
    let refs: Vec<&str> = patterns.iter().map(String::as_str).collect();
    super::matcher(&refs)
});

/// What a text must hold for [`detect`] to find anything: a sensitive name (with or without
/// its slashes, or with backslashes), a whole-component name, or a climb.
fn anchor_patterns() -> Vec<String> {
    let mut patterns: Vec<String> = SENSITIVE.iter().map(|p| p.replace('/', "")).collect();
    patterns.extend(SENSITIVE.iter().map(|p| p.to_string()));
    patterns.extend(SENSITIVE.iter().map(|p| p.replace('/', "\\")));
    patterns.extend(WHOLE.iter().map(|p| p.to_string()));
    patterns.push("..".into());
    patterns
}

/// [`ANCHORS`] in any case, for texts with no folded view ([`super::is_plain`]).
pub(crate) static ANCHORS_ANY_CASE: std::sync::LazyLock<aho_corasick::AhoCorasick> =
    std::sync::LazyLock::new(|| {
        aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(anchor_patterns())
            .expect("static patterns build an automaton")
    });

/// How many times the path climbs a directory (`../`, `..\`, `..;/`, `.../`).
fn climbs(path: &str) -> usize {
    let b = path.as_bytes();
    let mut n = 0;
    let mut i = 0;
    while let Some(at) = memchr::memmem::find(&b[i..], b"..").map(|p| i + p) {
        let mut j = at + 2;
        while j < b.len() && matches!(b[j], b'.' | b';' | b' ') {
            j += 1;
        }
        let before_ok = at == 0 || matches!(b[at - 1], b'/' | b'=' | b' ' | b'.' | b'"' | b'\'');
        if before_ok && (j >= b.len() || b[j] == b'/') {
            n += 1;
        }
        i = j.max(at + 2);
        if i >= b.len() {
            break;
        }
    }
    n
}

/// Offset of the first sensitive file named in the path. `rooted`: a request path without
/// a climb, where system directories count only from the root ([`SYSTEM_DIRS`]) and the
/// bare words `shadow` and `passwd` not at all (`/etc/passwd` is in [`SENSITIVE`]).
fn sensitive(path: &str, rooted: bool) -> Option<usize> {
    for pattern in SENSITIVE {
        for (at, _) in path.match_indices(pattern) {
            // From the root, or after an empty segment: an absolute path handed to a
            // catch-all route (`/download//etc/hosts`, `%2F` decoded).
            let from_root = path[..at].bytes().all(|b| b == b'/') || path[..at].ends_with("//");
            if rooted && !from_root && !counts_anywhere(pattern) {
                continue;
            }
            let before = path[..at].chars().next_back();
            let boundary =
                before.is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_' && c != '-');
            let rest = &path.as_bytes()[at + pattern.len()..];
            if boundary && (pattern.ends_with('/') || names_whole(pattern, rest)) {
                return Some(at);
            }
        }
    }
    let mut offset = 0;
    for component in path.split('/') {
        // An editor's backup (`.env~`) opens the same secrets.
        let trimmed = component.trim_end_matches(['\0', ' ', '~']);
        let counts = trimmed.starts_with('.') || offset > 0 && !rooted;
        // `.env.local`, `.env.production`, `.env.bak`: the variants frameworks read too,
        // but not the templates published on purpose (`.env.example`).
        let env_variant = trimmed.starts_with(".env.")
            && !matches!(
                &trimmed[5..],
                "example" | "sample" | "template" | "dist" | "defaults"
            );
        if (WHOLE.contains(&trimmed) || env_variant) && counts {
            return Some(offset);
        }
        offset += component.len() + 1;
    }
    None
}

/// Whether `pattern` counts anywhere in a request path without a climb: any name but a
/// system directory's ([`SYSTEM_DIRS`]), and those in [`ANYWHERE`].
fn counts_anywhere(pattern: &str) -> bool {
    ANYWHERE.contains(&pattern) || !SYSTEM_DIRS.iter().any(|dir| pattern.starts_with(dir))
}

/// Whether the file name `pattern` ends where it stands, `rest` being what follows it: at
/// the end, before a separator, a parameter, an extension, a backup's `~`, a NUL (or its
/// escape), a quote, or a last `-` (`/etc/passwd-`, the backup copy). A word goes on after
/// it otherwise (`/etc/hosts-file-editor`, `/articles/web.config-transforms`), and a public
/// key is no secret (`id_rsa.pub`).
fn names_whole(pattern: &str, rest: &[u8]) -> bool {
    if pattern.starts_with("id_") && rest.starts_with(b".pub") {
        return false;
    }
    match rest {
        [] | [b'-'] | [b'-', b'/', ..] => true,
        [next, ..] => matches!(
            next,
            b'/' | b'.'
                | b';'
                | b'~'
                | b':'
                | b'\0'
                | b' '
                | b'?'
                | b'%'
                | b'#'
                | b'&'
                | b'"'
                | b'\''
        ),
    }
}

/// Whether a request path may name a file in another spelling than its own: an empty or
/// `.` segment, a `;parameter`, or a segment ending in a dot, a space or an NTFS stream.
fn may_be_respelled(path: &str) -> bool {
    // Byte tests, no substring searchers: this reads every request's path.
    let bytes = path.as_bytes();
    bytes.last() == Some(&b'.')
        || bytes.iter().any(|&b| b == b';' || b == b' ')
        || bytes
            .windows(2)
            .any(|pair| matches!(pair, [b'/', b'/'] | [b'.', b'/'] | [b':', b':']))
}

/// The path as a file server opens it: empty and `.` segments dropped, `;parameters` cut
/// (servlet containers), `..` resolved, and each segment's trailing dots and spaces and
/// NTFS stream name removed (Windows opens `.env.` and `.env::$DATA` as `.env`). The climbs
/// are counted on the path as sent.
fn file_view(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for written in path.split('/') {
        let segment = written.split(';').next().unwrap_or_default();
        let segment = segment.strip_suffix("::$data").unwrap_or(segment);
        match segment {
            // A segment that was only a parameter (`/download/;/etc/hosts`) is the empty
            // segment a servlet container reads: an absolute path after it (third red team).
            "" if !written.is_empty() => segments.push(""),
            "" | "." => {}
            // Resolved, never above the root: `/etc/x/../hosts` opens `/etc/hosts`
            // (red-team finding: only climbs past the root were read).
            ".." => {
                segments.pop();
            }
            _ if segment.bytes().all(|b| b == b'.') => segments.push(segment),
            _ => segments.push(segment.trim_end_matches(['.', ' '])),
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in segments {
        out.push('/');
        out.push_str(segment);
    }
    out
}

/// Whether a request path (in any case) may name a sensitive file, as written or in another
/// spelling: what keeps it from counting as plain ([`super::is_plain`]).
pub(crate) fn path_may_name_file(path: &str) -> bool {
    ANCHORS_ANY_CASE.is_match(path) || may_be_respelled(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(s: &str) -> Option<u8> {
        detect(s, &s.to_lowercase(), Source::Arg).map(|h| h.score)
    }

    #[test]
    fn file_names_mentioned_in_sentences_are_not_file_reads() {
        for text in [
            "/etc/hosts file explained",
            "the file /etc/hosts maps names",
            "edit /etc/passwd safely",
            "what is /etc/shadow used for",
            "php.ini settings for upload size",
            "the\u{3000}/etc/hosts\u{3000}file explained here",
        ] {
            assert!(
                score(text).is_none_or(|s| s > 20),
                "{text}: {:?}",
                score(text)
            );
        }
    }

    #[test]
    fn sensitive_files_alone_or_climbed_to_stay_blocked() {
        for text in [
            "/etc/passwd",
            "../../etc/passwd",
            "../../etc/passwd is here",
            "/etc/passwd%00.jpg",
            "file=/etc/shadow",
            "C:\\windows\\win.ini",
        ] {
            assert!(
                score(text).is_some_and(|s| s <= 20),
                "{text}: {:?}",
                score(text)
            );
        }
    }

    #[test]
    fn deep_traversal_is_certain() {
        assert!(score("../../../../boot.ini").is_some_and(|s| s <= 8));
        assert!(score("..\\..\\..\\windows\\win.ini").is_some_and(|s| s <= 8));
    }

    #[test]
    fn sensitive_files_are_recognised_without_traversal() {
        assert!(score("/etc/passwd").is_some_and(|s| s <= 10));
        assert!(score(".ssh/id_rsa").is_some_and(|s| s <= 10));
        assert!(score("/proc/self/environ").is_some_and(|s| s <= 10));
    }

    #[test]
    fn a_climb_spelled_with_escapes_in_the_path_is_evasion() {
        // `/x/..%2fadmin` is `/admin` to an upstream that decodes `%2F`; rules see one
        // segment, and one climb alone scored too little to block.
        for raw in [
            "/x/..%2fadmin",
            "/x%2F..%2Fadmin",
            "/x/%2e%2e/admin",
            "/a/.%2E;/b",
            "/a/..%5cb",
        ] {
            assert!(
                encoded_climb(raw.as_bytes()).is_some_and(|h| h.score <= 20),
                "{raw}"
            );
        }
        for raw in [
            "/x/../admin",
            "/files/a%2Fb",
            "/100%25/x",
            "/a%2e.txt",
            "/%2e/x",
        ] {
            assert_eq!(encoded_climb(raw.as_bytes()), None, "{raw}");
        }
    }

    fn path_score(path: &str) -> Option<u8> {
        detect(path, &path.to_lowercase(), Source::Path).map(|h| h.score)
    }

    /// A sensitive file named in a request path in another spelling than its own, as a
    /// file server still opens it (red-team findings: each reached the upstream).
    #[test]
    fn respelled_sensitive_paths_are_found() {
        for path in [
            "/etc//hosts",
            "/etc/./hosts",
            "/etc;x/hosts",
            "/var//log/x",
            "/.git;/config",
            "/.git./config",
            "/.env;x",
            "/.env.",
            "/.env::$DATA",
            "/x//.git//config",
            "/etc/hosts",
            "/.git/config",
            "/download/etc/passwd",
            "/etc\\\\hosts",
            "/var\\log//x",
            "/.env.local",
            "/app/.env.production",
            "/WEB-INF/web.xml",
            // Second red team: `..` that stays under the root, absolute paths handed to a
            // catch-all route, and files the lists missed.
            "/etc/x/../hosts",
            "/etc/x;/../hosts",
            "/etc/x/..\\hosts",
            "/proc/x/../self/environ",
            "/var/x/../log/auth.log",
            "/WEB-INF/classes/../web.xml",
            "/download//etc/hosts",
            "/f//var/log/auth.log",
            "/proc/thread-self/environ",
            "/static/proc/thread-self/environ",
            "/static/var/run/secrets/kubernetes.io/serviceaccount/token",
            "/etc/ssl/private/server.key",
            "/META-INF/context.xml",
            "/.env~",
            "/etc/passwd-",
            "/download/;/etc/hosts",
        ] {
            assert!(
                path_score(path).is_some_and(|s| s <= 20),
                "{path}: {:?}",
                path_score(path)
            );
            assert!(!super::super::is_plain(Source::Path, "", path), "{path}");
        }
    }

    /// Ordinary application paths that hold a system directory's or a password file's
    /// word below the root are pages, not file reads (red-team findings: each was blocked
    /// at paranoia 1); with a climb they still count.
    #[test]
    fn application_paths_with_system_words_are_not_file_reads() {
        for path in [
            "/products/shadow",
            "/blog/shadow",
            "/user/passwd",
            "/man/5/passwd",
            "/kb/var/log/rotation",
            "/api/v1/sys/class/42",
            "/guide/etc/hosts",
            // Second red team: public keys, published templates and slugs.
            "/downloads/id_rsa.pub",
            "/repo/blob/main/.env.example",
            "/articles/web.config-transforms",
            "/.htaccess-guide",
            "/store/etc/passwd-tshirt",
            "/etc/hosts-file-editor",
        ] {
            assert_eq!(path_score(path), None, "{path}");
        }
        assert!(path_score("/static/../../var/log/x").is_some_and(|s| s <= 8));
        assert!(path_score("/x/../../shadow").is_some());
    }

    #[test]
    fn relative_links_and_look_alikes_stay_below_the_default_threshold() {
        assert!(score("../images/logo.png").is_none_or(|s| s > 20));
        assert_eq!(score("/test.environment"), None);
        assert_eq!(score("firstname.dockery@host.tld"), None);
        assert_eq!(score("history.history"), None);
    }
}
