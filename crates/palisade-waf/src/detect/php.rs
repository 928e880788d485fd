//! PHP code injection: opening tags, calls of functions that run code or commands (also
//! when split from their parentheses by spaces and comments, or called through strings and
//! variables: `("sys"."tem")('id')`, `$f(1)`), superglobals, stream wrappers, serialised
//! objects, and uploads named to be executed (`shell.php.jpg`).

use super::Hit;

/// Functions that execute code, commands or files, or unpack hidden payloads.
const DANGEROUS: &[&str] = &[
    "eval",
    "assert",
    "system",
    "exec",
    "shell_exec",
    "passthru",
    "popen",
    "proc_open",
    "pcntl_exec",
    "create_function",
    "call_user_func",
    "call_user_func_array",
    "preg_replace",
    "include",
    "include_once",
    "require",
    "require_once",
    "file_get_contents",
    "file_put_contents",
    "fopen",
    "fwrite",
    "fputs",
    "readfile",
    "show_source",
    "highlight_file",
    "phpinfo",
    "base64_decode",
    "gzinflate",
    "gzuncompress",
    "gzdecode",
    "str_rot13",
    "unserialize",
    "assert_options",
    "array_map",
    "usort",
    "uasort",
    "register_shutdown_function",
    "register_tick_function",
    "putenv",
    "ini_set",
    "dl",
    "move_uploaded_file",
    "symlink",
    "posix_setuid",
    "posix_kill",
    "mb_ereg_replace",
    "iterator_apply",
    "forward_static_call",
    "filegroup",
    "fsockopen",
    "pfsockopen",
    "stream_socket_client",
    "curl_exec",
    "getenv",
    "get_defined_vars",
    "extract",
    "parse_str",
    "escapeshellcmd",
    "apache_setenv",
    "gethostbyname",
];

/// PHP built-ins that mean little alone but fill injected code.
const BUILTINS: &[&str] = &[
    "chr",
    "ord",
    "substr",
    "unpack",
    "pack",
    "printf",
    "sprintf",
    "intval",
    "strip_tags",
    "str_replace",
    "strrev",
    "implode",
    "explode",
    "serialize",
    "var_dump",
    "print_r",
    "var_export",
    "hex2bin",
    "bin2hex",
    "urldecode",
    "rawurldecode",
    "stripslashes",
    "htmlspecialchars_decode",
    "array_diff",
    "date_add",
    "date_sub",
    "is_file",
    "file_exists",
    "glob",
    "scandir",
    "opendir",
    "readdir",
    "unlink",
    "rename",
    "chmod",
    "mkdir",
    "rmdir",
    "tempnam",
    "tmpfile",
    "ob_start",
    "session_start",
    "header",
    "setcookie",
    "mail",
];

/// Names that are also words: calls count only written tight (`file(`) or with PHP arguments.
const WORDLIKE: &[&str] = &[
    "file", "copy", "link", "each", "end", "key", "date", "time", "count", "print", "list",
    "header", "mail", "sort", "range", "next", "reset", "current", "min", "max", "round", "exit",
    "die", "echo", "system", "include", "require", "extract", "glob", "pack", "rename",
];

/// Prefixes of PHP extension function families (`pg_`, `ldap_`, `sodium_`, ...).
const FAMILIES: &[&str] = &[
    "array_", "str_", "mb_", "pg_", "ldap_", "odbc_", "sodium_", "zend_", "tidy_", "mysql_",
    "mysqli_", "curl_", "posix_", "proc_", "pcntl_", "openssl_", "xml_", "json_", "preg_",
    "stream_", "socket_", "ftp_", "ini_", "ob_", "func_", "get_", "is_", "date_", "gz", "bz",
    "zip_", "imap_", "finfo_", "fs", "iconv_", "gmp_", "bc", "ctype_", "hash_", "mcrypt_",
];

/// Looks for PHP code injection in `text` / `folded`.
pub fn detect(text: &str, folded: &str, hidden: bool) -> Option<Hit> {
    let mut best = None;
    if folded.contains("<?") {
        best = open_tag(folded);
    }
    if folded.contains('$') {
        best = Hit::better(best, dollar(folded));
    }
    if folded.contains('(') {
        best = Hit::better(best, calls(text));
        best = Hit::better(best, callable_expression(folded));
    }
    if folded.contains(':') {
        best = Hit::better(best, serialized(folded));
        if let Some(at) = folded.find("php://").or_else(|| folded.find("phar://")) {
            best = Hit::better(
                best,
                Some(Hit::new(8, "php stream wrapper", at, folded.len())),
            );
        }
    }
    if ["[php]", "[/php]", "[\\php]", "{php}", "{/php}"]
        .iter()
        .any(|t| folded.contains(t))
    {
        best = Hit::better(
            best,
            Some(Hit::new(12, "php template block", 0, folded.len())),
        );
    }
    if hidden {
        best.map(|mut h| {
            h.score = h.score.max(8);
            h
        })
    } else {
        best
    }
}

/// Upload names PHP would execute: `x.php`, `x.phtml`, `x.php.jpg`, session files.
pub fn detect_filename(folded: &str) -> Option<Hit> {
    let name = folded.rsplit(['/', '\\']).next().unwrap_or(folded);
    let parts: Vec<&str> = name.split('.').map(str::trim).collect();
    let executable = |ext: &str| {
        let ext = ext.trim_end_matches('.');
        matches!(
            ext,
            "php" | "phtml" | "phar" | "pht" | "phps" | "pgif" | "shtml" | "phpt"
        ) || (ext.starts_with("php")
            && ext[3..].chars().all(|c| c.is_ascii_digit())
            && ext.len() <= 4)
    };
    if parts.len() >= 2 && parts[1..].iter().any(|p| executable(p)) {
        return Some(Hit::new(8, "executable upload name", 0, folded.len()));
    }
    let session = name.trim_start_matches("sess_");
    if name.starts_with("sess_")
        && session.len() >= 20
        && session
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ',')
    {
        return Some(Hit::new(12, "php session file name", 0, folded.len()));
    }
    None
}

fn open_tag(folded: &str) -> Option<Hit> {
    for (at, _) in folded.match_indices("<?") {
        let rest = &folded[at + 2..];
        if rest.starts_with('=') {
            return Some(Hit::new(8, "php echo tag", at, folded.len()));
        }
        if let Some(after) = rest.strip_prefix("php") {
            // `the <?php tag is not closing`: words only after the tag is a sentence about it.
            let words = after.split_whitespace();
            let sentence = after.starts_with(' ')
                && words.clone().count() >= 3
                && words.clone().all(|w| {
                    w.trim_end_matches(['.', ',', '?', '!'])
                        .bytes()
                        .all(|c| c.is_ascii_alphabetic() || c == b'\'')
                });
            let code = rest.len() > 4 && !sentence;
            return Some(Hit::new(
                if code { 5 } else { 30 },
                "php open tag",
                at,
                folded.len(),
            ));
        }
        if rest.is_empty() || rest.starts_with("xml:") {
            return Some(Hit::new(18, "dangling php open tag", at, folded.len()));
        }
        let code = rest.trim_start();
        let statement = [
            "php", "echo", "print", "system", "eval", "exec", "passthru", "include", "require",
            "$", "`",
        ]
        .iter()
        .any(|w| code.starts_with(w));
        if rest.starts_with(char::is_whitespace) && (rest.contains('(') || statement) {
            return Some(Hit::new(8, "php short open tag", at, folded.len()));
        }
    }
    None
}

/// Superglobals, variable functions (`$f(`), variable variables (`${'x'}`).
fn dollar(folded: &str) -> Option<Hit> {
    const GLOBALS: &[&str] = &[
        "$_get",
        "$_post",
        "$_server",
        "$_cookie",
        "$_request",
        "$_files",
        "$_env",
        "$_session",
        "$globals",
        "$http_raw_post_data",
        "$http_get_vars",
    ];
    let b = folded.as_bytes();
    let mut best = None;
    for (at, _) in folded.match_indices('$') {
        let rest = &folded[at..];
        if let Some(g) = GLOBALS.iter().find(|g| rest.starts_with(**g)) {
            let after = rest[g.len()..].chars().next();
            if after.is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_') {
                best = Hit::better(
                    best,
                    Some(Hit::new(10, "php superglobal", at, folded.len())),
                );
            }
        }
        // A run of `$` is one variable variable, read from its first `$`; the lookahead
        // is bounded. Reading the rest of the text from every `$` (`${${${...`) was
        // quadratic: 16 KB took seconds.
        if at > 0 && b[at - 1] == b'$' {
            continue;
        }
        let near = &rest[..char_floor(rest, LOOKAHEAD)];
        let mut i = at;
        while i < b.len() && b[i] == b'$' {
            i += 1;
        }
        let brace = b.get(i) == Some(&b'{')
            || (b.get(i) == Some(&b' ') && near.trim_start_matches(['$', ' ']).starts_with('{'));
        if brace {
            let inner = near.trim_start_matches(['$', ' ', '{']).trim_start();
            if inner.starts_with(['\'', '"', '$', '{']) {
                best = Hit::better(
                    best,
                    Some(Hit::new(10, "php variable variable", at, folded.len())),
                );
            }
        }
        let name_len = b[i..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .count();
        let j = skip_accessors(b, i + name_len);
        let name_ok = name_len > 0 && !b[i].is_ascii_digit();
        if (name_ok || i > at + 1 || brace) && b.get(j) == Some(&b'(') {
            best = Hit::better(
                best,
                Some(Hit::new(10, "php variable function", at, folded.len())),
            );
        }
    }
    best
}

/// Bytes read ahead of a `$` or an accessor: enough for any real accessor or comment,
/// and it keeps a text full of `$` and `{` linear.
const LOOKAHEAD: usize = 256;

/// The largest character boundary of `s` at or below `at`.
fn char_floor(s: &str, at: usize) -> usize {
    let mut at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Skips `[...]` and `{...}` accessors, spaces and comments after a variable name (each
/// at most [`LOOKAHEAD`] bytes long; a longer one is not an accessor).
fn skip_accessors(b: &[u8], mut j: usize) -> usize {
    let within = |j: usize, end: u8| {
        let window = &b[j..(j + LOOKAHEAD).min(b.len())];
        window.iter().position(|&c| c == end)
    };
    for _ in 0..16 {
        match b.get(j) {
            Some(&open @ (b'[' | b'{')) => {
                let close = if open == b'[' { b']' } else { b'}' };
                match within(j, close) {
                    Some(p) => j += p + 1,
                    None if b.len() - j <= LOOKAHEAD => j = b.len(),
                    None => break,
                }
            }
            Some(c) if c.is_ascii_whitespace() => j += 1,
            Some(b'/') if b.get(j + 1) == Some(&b'/') => match within(j, b'\n') {
                Some(p) => j += p,
                None if b.len() - j <= LOOKAHEAD => j = b.len(),
                None => break,
            },
            _ => break,
        }
    }
    j
}

/// `name (`, also with comments between: calls of PHP functions.
fn calls(text: &str) -> Option<Hit> {
    let b = text.as_bytes();
    let mut best = None;
    let mut i = 0;
    while i < b.len() {
        if !(b[i].is_ascii_alphabetic() || b[i] == b'_') || (i > 0 && is_name_byte(b[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_name_byte(b[i]) {
            i += 1;
        }
        let name = text[start..i].to_ascii_lowercase();
        let Some((open, gap)) = paren_after(b, i) else {
            continue;
        };
        let args = &text[open + 1..];
        let php_args = args.starts_with(['$', '\'', '"', ')', '\n', '\r'])
            || args.trim_start().starts_with(')');
        let wordlike = WORDLIKE.contains(&name.as_str());
        if wordlike && gap && !php_args {
            continue;
        }
        let score = if DANGEROUS.contains(&name.as_str()) {
            if wordlike && !php_args { 16 } else { 8 }
        } else if BUILTINS.contains(&name.as_str()) {
            14
        } else if name.contains('_')
            && FAMILIES.iter().any(|f| name.starts_with(f))
            && name.len() >= 8
        {
            18
        } else {
            continue;
        };
        best = Hit::better(
            best,
            Some(Hit::new(score, "php function call", start, text.len())),
        );
    }
    best
}

fn is_name_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The `(` after a name, skipping spaces and PHP comments; whether anything was skipped.
fn paren_after(b: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let start = i;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let rest = &b[i..];
        if rest.starts_with(b"/*") {
            i += memchr::memmem::find(rest, b"*/").map_or(rest.len(), |p| p + 2);
        } else if rest.starts_with(b"//") || rest.starts_with(b"#") {
            i += memchr::memchr(b'\n', rest).map_or(rest.len(), |p| p + 1);
        } else {
            break;
        }
    }
    (b.get(i) == Some(&b'(')).then_some((i, i > start))
}

/// `(system)('id')`, `"sys"."tem"('id')`, `[system][0]('id')`: calling a string or array.
fn callable_expression(folded: &str) -> Option<Hit> {
    let squeezed = strip_comments(folded);
    let b = squeezed.as_bytes();
    // Only short texts are judged; deciding that first keeps a long text of `(` and `)`
    // from being read once per parenthesis (quadratic: 8 KB of `()` took seconds).
    if b.len() >= 400 {
        return None;
    }
    for (at, _) in squeezed.match_indices('(') {
        let before = squeezed[..at].trim_end();
        let Some(last) = before.bytes().last() else {
            continue;
        };
        if !matches!(last, b')' | b']' | b'"' | b'\'' | b'}') {
            continue;
        }
        let lead = &before[..before.len() - 1];
        let has_name = lead.bytes().rev().take(40).any(|c| c.is_ascii_alphabetic());
        let args = &squeezed[at + 1..];
        let arg_like = args.trim_start().starts_with(|c: char| {
            c.is_ascii_alphanumeric() || matches!(c, '\'' | '"' | '$' | ')')
        });
        let stringy = matches!(last, b'"' | b'\'')
            || lead.contains(['"', '\'', '['])
            || lead.ends_with(|c: char| c.is_ascii_alphabetic());
        let closes = args.contains(')');
        let call_args = args.split(')').next().unwrap_or("");
        let plausible_args = !call_args.contains("://") && call_args.len() <= 60;
        let array_callable = last != b']' || lead.contains("][") || lead.contains(['\'', '"']);
        if has_name
            && plausible_args
            && array_callable
            && arg_like
            && closes
            && (stringy || last == b')' && before.starts_with('('))
        {
            return Some(Hit::new(12, "php callable expression", 0, folded.len()));
        }
    }
    None
}

fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("/*") {
        out.push_str(&rest[..at]);
        rest = rest[at..]
            .find("*/")
            .map_or("", |end| &rest[at + end + 2..]);
    }
    out.push_str(rest);
    out
}

/// `O:8:"stdClass":1:{...}`, `a:2:{...}`: PHP serialised data.
fn serialized(folded: &str) -> Option<Hit> {
    let b = folded.as_bytes();
    for i in 0..b.len().saturating_sub(3) {
        if !matches!(b[i], b'o' | b'a' | b'c')
            || b[i + 1] != b':'
            || (i > 0 && b[i - 1].is_ascii_alphanumeric())
        {
            continue;
        }
        let digits = b[i + 2..].iter().take_while(|c| c.is_ascii_digit()).count();
        let after = b.get(i + 2 + digits..i + 4 + digits);
        let object = b[i] != b'a' && after == Some(b":\"");
        let array = b[i] == b'a' && after == Some(b":{");
        if digits > 0 && (object || array) {
            return Some(Hit::new(8, "php serialised object", i, folded.len()));
        }
    }
    None
}

#[cfg(test)]
#[path = "php_tests.rs"]
mod tests;
