//! Remote file inclusion and server-side request forgery: URLs where an application expects a
//! local name or data. A link alone is ordinary (redirect targets, shared pages); what gives
//! inclusion away is the shape around it: an address given as a bare IP, a trailing `?` that
//! cuts off the application's suffix, schemes only file fetchers speak, credentials tricks,
//! or a parameter named for a path. SSRF is a URL at cloud metadata or loopback addresses,
//! in any of the notations address parsers accept.

use super::Hit;
use crate::extract::Source;

/// Schemes that browsers do not send in forms but file fetchers follow.
pub(crate) const FETCH_SCHEMES: &[&str] = &[
    "file:/",
    "file:\\\\",
    "ftp://",
    "ftps://",
    "gopher://",
    "ldap://",
    "ldaps://",
    "dict://",
    "jar:file:",
    "jar:http",
    "tftp://",
    "sftp://",
    "local_file:",
    "netdoc:",
    "php://",
    "expect://",
    "phar://",
    "zip://",
    "data://",
    "glob://",
    "ssh2.",
    "rar://",
    "ogg://",
    "compress.zlib://",
    "compress.bzip2://",
];

/// Parameter names that hold paths in PHP applications' includes.
const PATH_PARAMS: &[&str] = &[
    "path",
    "file",
    "include",
    "inc",
    "page",
    "template",
    "dir",
    "root",
    "conf",
    "module",
    "load",
    "require",
    "src",
    "doc",
    "folder",
    "base",
    "absolute_path",
];

/// Looks for remote file inclusion in an input.
pub fn detect(_text: &str, folded: &str, source: Source, name: &str) -> Option<Hit> {
    if !folded.contains(':') {
        return None;
    }
    if let Some(h) = external_entity(folded) {
        return Some(h);
    }
    if let Some(h) = fetch_scheme(folded) {
        return Some(h);
    }
    let at = folded.find("http://").or_else(|| folded.find("https://"))?;
    let url = &folded[at..];
    let after_scheme = &url[url.find("//").map_or(0, |p| p + 2)..];
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let host = host.trim_start_matches('[');
    let header = source == Source::Header;
    if url.ends_with('?') && !header {
        return Some(Hit::new(
            12,
            "url with truncating question mark",
            at,
            folded.len(),
        ));
    }
    let ip = host.starts_with(|c: char| c.is_ascii_digit()) && looks_like_ip(host)
        || host.starts_with('[') && host.contains(':');
    if ip && !header {
        return Some(Hit::new(12, "url to a bare ip address", at, folded.len()));
    }
    if after_scheme
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .contains('@')
        && !header
    {
        return Some(Hit::new(
            16,
            "url with misleading credentials",
            at,
            folded.len(),
        ));
    }
    let lname = name.to_ascii_lowercase();
    let path_param = PATH_PARAMS.iter().any(|p| lname.contains(p));
    if at == 0 && path_param && matches!(source, Source::Arg | Source::Form | Source::Json) {
        return Some(Hit::new(16, "url in a path parameter", at, folded.len()));
    }
    // TODO: telling off-site URLs from links to this site needs the site's host names; until
    // the gateway passes them, any URL in a parameter only scores at paranoia 3.
    if at == 0 && matches!(source, Source::Arg | Source::Form) {
        return Some(Hit::new(48, "url in a parameter", at, folded.len()));
    }
    None
}

/// XML that makes the parser fetch: external entities, XInclude, remote schema locations.
fn external_entity(folded: &str) -> Option<Hit> {
    if let Some(at) = folded.find("!entity") {
        let rest = &folded[at..];
        if rest.contains("system") || rest.contains("public") {
            return Some(Hit::new(8, "xml external entity", at, folded.len()));
        }
    }
    if let Some(at) = folded.find("xi:include") {
        return Some(Hit::new(8, "xinclude", at, folded.len()));
    }
    let at = folded.find("schemalocation")?;
    folded[at..]
        .contains("http")
        .then(|| Hit::new(16, "remote schema location", at, folded.len()))
}

fn fetch_scheme(folded: &str) -> Option<Hit> {
    // `data:text/plain;base64,...` where a URL or file is expected: content the attacker
    // supplies inline, which PHP and Java URL readers happily open.
    if let Some(rest) = folded.trim_start().strip_prefix("data:") {
        let mime = rest.split([';', ',']).next().unwrap_or("");
        let inline_code = mime.starts_with("text/") || mime.starts_with("application/");
        if inline_code && mime.split_once('/').is_some_and(|(_, s)| !s.is_empty()) {
            return Some(Hit::new(14, "data url", 0, folded.len()));
        }
    }
    // Each scheme's first occurrence, found in one pass over the text (a search per scheme
    // cost more than all the other detectors together on an input holding a URL), then
    // judged in the list's order as before.
    let mut first = [None; FETCH_SCHEMES.len()];
    for found in FETCH_SCHEME_SEARCH.find_overlapping_iter(folded) {
        first[found.pattern().as_usize()].get_or_insert(found.start());
    }
    for at in first.into_iter().flatten() {
        let before = folded[..at].chars().next_back();
        let boundary = before.is_none_or(|c| !c.is_ascii_alphanumeric());
        if boundary {
            return Some(Hit::new(12, "file-fetching url scheme", at, folded.len()));
        }
    }
    None
}

/// [`FETCH_SCHEMES`], searched for all at once.
static FETCH_SCHEME_SEARCH: std::sync::LazyLock<aho_corasick::AhoCorasick> =
    std::sync::LazyLock::new(|| {
        aho_corasick::AhoCorasick::builder()
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(FETCH_SCHEMES)
            .expect("static patterns build an automaton")
    });

/// Dotted, bare-integer, hex or IPv6 address.
fn looks_like_ip(host: &str) -> bool {
    let host = host.split(']').next().unwrap_or(host);
    let host = host
        .rsplit_once(':')
        .filter(|(h, _)| !h.contains(':'))
        .map_or(host, |(h, _)| h);
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | 'x'))
        && (host.contains('.') || host.contains(':') || host.len() >= 8)
}

/// Cloud metadata endpoints and loopback in URLs, in decimal, hex, octal and IPv6 forms.
pub fn detect_ssrf(folded: &str, source: Source) -> Option<Hit> {
    if source == Source::Header || !folded.contains(['.', ':', '/']) {
        return None;
    }
    const METADATA: &[&str] = &[
        "169.254.169.254",
        "metadata.google.internal",
        "metadata.packet.net",
        "100.100.100.200",
        "fd00:ec2::254",
        "169.254.170.2",
        "metadata.azure.com",
        "instance-data",
    ];
    for host in METADATA {
        if let Some(at) = folded.find(host) {
            let url = folded[..at].ends_with("//");
            if url {
                return Some(Hit::new(8, "cloud metadata address", at, folded.len()));
            }
        }
    }
    if let Some(hit) = bare_internal_host(folded, source) {
        return Some(hit);
    }
    let (at, rest) = after_scheme(folded)?;
    let authority = rest.split(['/', '\\', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let host = if host.starts_with('[') {
        host
    } else {
        host.split(':').next().unwrap_or(host)
    };
    if let Some(addr) = numeric_address(host)
        && (addr >> 24 == 127 || addr >> 16 == 0xA9FE || addr == 0)
        && !canonical_dotted(host)
    {
        return Some(Hit::new(
            10,
            "obfuscated internal address",
            at,
            folded.len(),
        ));
    }
    if host.starts_with('[') && (host.contains("ffff:") || host == "[::1]" || host.contains("a9fe"))
    {
        return Some(Hit::new(12, "ipv6 internal address", at, folded.len()));
    }
    let loopback = host == "localhost"
        || host.ends_with(".localhost")
        || host.starts_with("localhost.")
        || host.starts_with("127.")
        || host == "0.0.0.0"
        || host == "[::]"
        || host == "0";
    loopback.then(|| Hit::new(18, "loopback url", at, folded.len()))
}

/// Where a URL's authority starts: after `://`, or, for the schemes browsers and URL
/// libraries parse leniently (WHATWG URL: `http:host`, `http:/host` and `http:\\host` all
/// mean `http://host`), after the scheme's colon and any slashes or backslashes.
fn after_scheme(folded: &str) -> Option<(usize, &str)> {
    if let Some(at) = folded.find("://") {
        return Some((at, &folded[at + 3..]));
    }
    const SPECIAL: [&str; 5] = ["http:", "https:", "ftp:", "ws:", "wss:"];
    let (at, scheme) = SPECIAL
        .iter()
        .filter_map(|scheme| folded.find(scheme).map(|at| (at, *scheme)))
        .min()?;
    let rest = folded[at + scheme.len()..].trim_start_matches(['/', '\\']);
    Some((at, rest))
}

/// `a.b.c.d` in plain decimal: the notation humans write, not an obfuscation.
fn canonical_dotted(host: &str) -> bool {
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| p.parse::<u8>().is_ok() && (p.len() == 1 || !p.starts_with('0')))
}

/// `localhost/`, `host.docker.internal:2375`: internal names given where a URL is expected.
fn bare_internal_host(folded: &str, source: Source) -> Option<Hit> {
    const NAMES: &[&str] = &[
        "localhost",
        "localhost.localdomain",
        "localhost4",
        "localhost6",
        "localhost4.localdomain4",
        "localhost6.localdomain6",
        "ip6-localhost",
        "ipv6-localhost",
        "ip6-loopback",
        "ipv6-loopback",
        "host.docker.internal",
        "gateway.docker.internal",
        "kubernetes.default",
        "kubernetes.default.svc",
    ];
    if !matches!(
        source,
        Source::Arg | Source::Form | Source::Json | Source::Xml | Source::Protobuf | Source::Cookie
    ) {
        return None;
    }
    let host = folded.split(['/', ':']).next().unwrap_or("");
    let rest = &folded[host.len()..];
    let url_like = rest.starts_with('/') || rest.starts_with(':');
    let internal = NAMES.contains(&host)
        || [
            ".internal",
            ".cluster.local",
            ".localhost",
            "localtest.me",
            "lvh.me",
        ]
        .iter()
        .any(|suffix| host.ends_with(suffix) && host.len() > suffix.len() - 1);
    (url_like && internal).then(|| Hit::new(18, "internal host name", 0, folded.len()))
}

/// An IPv4 address in any notation `inet_aton` accepts: dotted parts in decimal, hex or
/// octal, or one integer.
fn numeric_address(host: &str) -> Option<u32> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let values: Vec<u64> = parts.iter().map(|p| parse_part(p)).collect::<Option<_>>()?;
    let (last, head) = values.split_last()?;
    let mut addr: u64 = 0;
    for (i, v) in head.iter().enumerate() {
        if *v > 255 {
            return None;
        }
        addr |= v << (24 - 8 * i);
    }
    let room = 32 - 8 * head.len() as u32;
    if *last >= (1u64 << room) {
        return None;
    }
    u32::try_from(addr | last).ok()
}

fn parse_part(p: &str) -> Option<u64> {
    if let Some(hex) = p.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).ok();
    }
    if p.len() > 1 && p.starts_with('0') {
        return u64::from_str_radix(p, 8).ok();
    }
    p.parse().ok()
}

/// Parses the `localhost`-style names too, for tests.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_ipv4_notation() {
        assert_eq!(numeric_address("2852039166"), Some(0xA9FEA9FE));
        assert_eq!(
            numeric_address("0xA9FEA9FE".to_lowercase().as_str()),
            Some(0xA9FEA9FE)
        );
        assert_eq!(numeric_address("0251.0376.0251.0376"), Some(0xA9FEA9FE));
        assert_eq!(numeric_address("127.1"), Some(0x7F000001));
        assert_eq!(numeric_address("example"), None);
    }

    #[test]
    fn flags_metadata_and_obfuscated_loopback_urls() {
        assert!(detect_ssrf("http://169.254.169.254/latest/meta-data/", Source::Arg).is_some());
        assert!(detect_ssrf("http://2852039166/", Source::Arg).is_some());
        assert!(detect_ssrf("http://0x7f000001/admin", Source::Arg).is_some());
        assert!(detect_ssrf("http://[::]/", Source::Arg).is_some());
        assert_eq!(detect_ssrf("https://example.com/a", Source::Arg), None);
    }

    #[test]
    fn urls_without_slashes_after_the_scheme_are_read_as_browsers_read_them() {
        for url in [
            "http:2852039166",
            "http:/0xA9FEA9FE",
            "https:\\\\127.0.0.1/x",
        ] {
            let folded = url.to_ascii_lowercase();
            assert!(detect_ssrf(&folded, Source::Arg).is_some(), "{url}");
        }
        assert_eq!(detect_ssrf("http:example.com/a", Source::Arg), None);
        assert_eq!(detect_ssrf("note: http is fine", Source::Arg), None);
    }

    #[test]
    fn ordinary_links_are_not_inclusion() {
        let d = |s: &str| detect(s, s, Source::Arg, "next").map(|h| h.score);
        assert!(d("https://example.com/page?x=1").is_none_or(|s| s > 35));
        assert!(d("http://66.240.183.75/crash.php").is_some_and(|s| s <= 20));
        assert!(d("ftp://1.1.1.1").is_some_and(|s| s <= 20));
    }
}
