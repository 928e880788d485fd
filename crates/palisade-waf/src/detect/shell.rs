//! Command injection: a shell tokenizer that reads the input the way `sh` would, undoing the
//! tricks shells allow inside a word (quotes `c'a't`, backslashes `c\at`, empty expansions
//! `ca$@t`, `${IFS}` for spaces, globs `/???/c?t`), then finds the commands in command
//! position (start, after `;` `|` `&` newline, inside `` ` `` and `$( )`) and judges them by
//! name and arguments. A common word after a semicolon in prose is not a command; a known
//! program reached through an evasion always is.

use super::Hit;
use super::shell_words::{self, WRAPPERS};
use crate::extract::Source;

/// A command found in command position.
#[derive(Debug, Clone, Default)]
struct Command {
    /// Program name, lowercased, path stripped, evasions undone.
    name: String,
    /// The name was written with a directory (`/bin/sh`, `bin/ansible`).
    with_path: bool,
    /// Quotes, backslashes, empty expansions or globs inside the name.
    evasion: bool,
    /// Arguments after evasions are undone.
    args: Vec<String>,
    /// How the command was reached.
    position: Position,
    /// Redirection or pipe around the command.
    plumbing: bool,
    /// Byte span in the text.
    start: usize,
    end: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Position {
    /// First word of the input.
    #[default]
    Start,
    /// After a separator with no space (`;id`).
    Tight,
    /// After a separator and a space (`; id`).
    Loose,
    /// Inside `` ` ``, `$( )`, `<( )`, a brace list or a here-string.
    Substitution,
}

/// Looks for command injection in `text`.
pub fn detect(text: &str, source: Source) -> Option<Hit> {
    // Without shell syntax, only a program named at the start can be a command.
    let syntax = text.bytes().any(|b| {
        matches!(
            b,
            b';' | b'|'
                | b'&'
                | b'\n'
                | b'\r'
                | b'`'
                | b'$'
                | b'/'
                | b'\\'
                | b'\''
                | b'"'
                | b'?'
                | b'*'
                | b'['
                | b'('
                | b'{'
                | b'<'
                | b'>'
                | b'%'
                | b'='
        )
    });
    if !syntax && !starts_with_program(text) {
        return None;
    }
    let mut best = shapes(text);
    if !text.bytes().any(|b| b.is_ascii_alphabetic()) {
        return best;
    }
    let (commands, substitution) = commands(text);
    best = Hit::better(best, substitution);
    for cmd in &commands {
        best = Hit::better(best, judge(cmd, source));
    }
    best
}

/// Sensitive names for uploaded files: shell start-up files, credentials, server config.
pub fn detect_filename(folded: &str) -> Option<Hit> {
    const NAMES: &[&str] = &[
        ".htaccess",
        ".htpasswd",
        "web.config",
        ".user.ini",
        "php.ini",
        ".bashrc",
        ".bash_profile",
        ".profile",
        ".zshrc",
        ".boto",
        "settings.php",
        "config.php",
        "wp-config.php",
        "config.yml",
        "config.yaml",
        ".env",
        "authorized_keys",
        "id_rsa",
        "mtrr",
        ".npmrc",
        ".pypirc",
        ".netrc",
        ".git",
        ".ssh",
        "crontab",
        "sudoers",
    ];
    let name = folded.rsplit(['/', '\\']).next().unwrap_or(folded).trim();
    NAMES
        .contains(&name)
        .then(|| Hit::new(12, "sensitive file name", 0, folded.len()))
}

/// Whether the first word (or the one after a wrapper) names a known program.
pub(crate) fn starts_with_program(text: &str) -> bool {
    let bytes = text.as_bytes();
    let Some(start) = bytes.iter().position(|b| !b.is_ascii_whitespace()) else {
        return false;
    };
    // The first word, read no further than a program name can be long: a value of one
    // long word (a cookie, a token) is not scanned to its end.
    let rest = &bytes[start..];
    let window = &rest[..rest.len().min(33)];
    let first = match window.iter().position(u8::is_ascii_whitespace) {
        Some(end) => &window[..end],
        None if window.len() <= 32 => window,
        None => return false,
    };
    if !first[0].is_ascii_alphabetic() && !matches!(first[0], b'/' | b'.' | b'\'' | b'"') {
        return false;
    }
    // Its last path component (`/usr/bin/id` names `id`).
    let name = memchr::memrchr(b'/', first).map_or(first, |at| &first[at + 1..]);
    names_program_any_case(name)
}

/// Whether `word` (at most 32 bytes, else no) names a known program, in any case.
pub(crate) fn names_program_any_case(word: &[u8]) -> bool {
    let mut buf = [0u8; 32];
    let Some(lower) = buf.get_mut(..word.len()) else {
        return false;
    };
    lower.copy_from_slice(word);
    lower.make_ascii_lowercase();
    shell_words::names_program_bytes(lower)
}

/// Shell shapes that need no command name: shellshock, `/dev/tcp`, piping into a shell,
/// fork bombs.
fn shapes(text: &str) -> Option<Hit> {
    if text.contains('$')
        && let Some((at, alone)) = expansion(text)
    {
        let score = if alone { 40 } else { 14 };
        return Some(Hit::new(score, "shell parameter expansion", at, text.len()));
    }
    if text.contains('%')
        && let Some((at, alone)) = windows_variable(text)
    {
        let score = if alone { 40 } else { 12 };
        return Some(Hit::new(
            score,
            "windows environment variable",
            at,
            text.len(),
        ));
    }
    if let Some(at) = text.find("/dev/tcp/").or_else(|| text.find("/dev/udp/")) {
        return Some(Hit::new(6, "shell network redirection", at, text.len()));
    }
    if !(text.contains('(') && text.contains('{')) {
        return None;
    }
    let squeezed: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if let Some(at) = squeezed.find("(){:;}") {
        return Some(Hit::new(4, "shellshock", at, text.len()));
    }
    // A function that starts itself twice, through a pipe or in the background, and is
    // then called: `:(){ :|:& };:`, `f(){ f & f; };f`, `f(){ f()|f(); }; f`.
    if squeezed.contains("(){") && (squeezed.contains('|') || squeezed.contains('&')) {
        let name_end = squeezed.find("(){").unwrap_or(0);
        let name = &squeezed[..name_end];
        let name = name.rsplit([';', ' ']).next().unwrap_or(name);
        if !name.is_empty() && squeezed[name_end..].matches(name).count() >= 3 {
            return Some(Hit::new(6, "fork bomb", 0, text.len()));
        }
    }
    None
}

/// Whether the variable at `text[start..end]` is a word of a sentence: inside it (after a
/// space, before a space, the end or sentence punctuation), or first and followed by a word
/// of letters that names no program. A placeholder in a template or a sentence
/// (`Hello ${name}!`, `%TEMP% folder is full`) reads so; a variable that builds or runs a
/// command (`c${u}at`, `cat${IFS}/etc/passwd`, `${SHELL} -c ..`, `%COMSPEC%\..`) does not,
/// nor does a value that is the variable and nothing else.
// TODO: a value that is only `${name}` is still blocked at paranoia 1 (the CRS corpus calls
// it an attack); forms that take template placeholders need an exclusion.
fn in_sentence(text: &str, start: usize, end: usize) -> bool {
    let b = text.as_bytes();
    let after = b
        .get(end)
        .is_some_and(|c| c.is_ascii_whitespace() || b".,!?".contains(c));
    if start > 0 {
        return b[start - 1].is_ascii_whitespace() && (after || end == b.len());
    }
    let next = text[end..].split_ascii_whitespace().next().unwrap_or("");
    after
        && next.len() >= 3
        && next.bytes().all(|c| c.is_ascii_alphabetic())
        && !starts_with_program(next)
}

/// `${name}`, `${x#pattern}`, `$[2+2]`, `$((1+1))`, `${`id`}`: expansions only shells read,
/// with whether the first is a bare `${name}` standing alone in a sentence ([`in_sentence`]; `${IFS}`, the
/// field separator used in place of spaces, never counts as alone).
fn expansion(text: &str) -> Option<(usize, bool)> {
    let b = text.as_bytes();
    for (at, _) in text.match_indices('$') {
        match b.get(at + 1) {
            Some(b'[') => return Some((at, false)),
            Some(b'(') if b.get(at + 2) == Some(&b'(') => return Some((at, false)),
            Some(b'{') => {
                let inner = &text[at + 2..];
                let Some(end) = inner.find('}') else {
                    continue;
                };
                let body = &inner[..end];
                let name_len = body
                    .bytes()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                    .count();
                let operator = body[name_len..].starts_with(['#', '%', ':', '/', '^', ',', '@']);
                if body.starts_with('`') || name_len > 0 && (name_len == body.len() || operator) {
                    let alone = name_len == body.len()
                        && !body.eq_ignore_ascii_case("ifs")
                        && in_sentence(text, at, at + 3 + end);
                    return Some((at, alone));
                }
            }
            _ => {}
        }
    }
    None
}

/// `%SystemRoot%`, `%COMSPEC%`: variables `cmd.exe` expands to system paths, with whether
/// the first is a word of a sentence ([`in_sentence`]).
fn windows_variable(text: &str) -> Option<(usize, bool)> {
    const VARS: &[&str] = &[
        "systemroot",
        "systemdrive",
        "windir",
        "comspec",
        "userprofile",
        "appdata",
        "localappdata",
        "programfiles",
        "programdata",
        "temp",
        "tmp",
        "allusersprofile",
        "homedrive",
        "public",
        "psmodulepath",
    ];
    let mut parts = text.split('%');
    let mut at = parts.next()?.len();
    for part in parts {
        if VARS.iter().any(|v| part.eq_ignore_ascii_case(v))
            && text[at + 1 + part.len()..].starts_with('%')
        {
            return Some((at, in_sentence(text, at, at + part.len() + 2)));
        }
        at += part.len() + 1;
    }
    None
}

/// Splits `text` into commands; also reports substitution syntax found on the way.
fn commands(text: &str) -> (Vec<Command>, Option<Hit>) {
    let mut lexer = Lexer::new(text);
    lexer.run();
    (lexer.commands, lexer.substitution)
}

struct Lexer<'a> {
    b: &'a [u8],
    i: usize,
    commands: Vec<Command>,
    current: Option<Command>,
    next_position: Position,
    substitution: Option<Hit>,
    brace_depth: usize,
    redirect_target: bool,
}

/// One word after evasions are undone.
#[derive(Default)]
struct WordOut {
    text: String,
    evasion: bool,
    glob: bool,
    start: usize,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            b: text.as_bytes(),
            i: 0,
            commands: Vec::new(),
            current: None,
            next_position: Position::Start,
            substitution: None,
            brace_depth: 0,
            redirect_target: false,
        }
    }

    fn run(&mut self) {
        while self.i < self.b.len() && self.commands.len() < 64 {
            let c = self.b[self.i];
            match c {
                b' ' | b'\t' => self.i += 1,
                b';' | b'\n' | b'\r' | b'|' | b'&' => self.separator(),
                b'`' => {
                    self.substitution_open(1, 22, "backtick substitution");
                }
                b'$' if self.peek(1) == Some(b'(') && self.peek(2) != Some(b')') => {
                    self.substitution_open(2, 14, "command substitution");
                }
                b'<' | b'>' if self.peek(1) == Some(b'(') && self.peek(2) != Some(b')') => {
                    self.substitution_open(2, 14, "process substitution");
                }
                b'<' if self.b[self.i..].starts_with(b"<<<") => {
                    self.finish();
                    self.next_position = Position::Substitution;
                    self.i += 3;
                }
                b'<' | b'>' => {
                    if let Some(cmd) = self.current.as_mut() {
                        cmd.plumbing = true;
                    }
                    self.redirect_target = true;
                    self.i += 1;
                    while matches!(self.peek(0), Some(b'>' | b'&' | b'0'..=b'9')) {
                        self.i += 1;
                    }
                }
                b'(' => {
                    // A subshell opens only where a command could start; `f(` is a call in
                    // some other language, and what follows is its argument.
                    let subshell = self.current.is_none();
                    self.finish();
                    self.next_position = if subshell {
                        Position::Substitution
                    } else {
                        Position::Loose
                    };
                    self.i += 1;
                }
                b')' => {
                    self.finish();
                    self.next_position = Position::Loose;
                    self.i += 1;
                }
                b'{' if self.peek(1) == Some(b',') || self.brace_list_ahead() => {
                    self.finish();
                    self.brace_depth += 1;
                    self.next_position = Position::Substitution;
                    self.i += 1;
                }
                b',' | b'}' if self.brace_depth > 0 => {
                    if c == b'}' {
                        self.brace_depth -= 1;
                    }
                    self.finish();
                    self.next_position = Position::Substitution;
                    self.i += 1;
                }
                _ => self.word(),
            }
        }
        self.finish();
    }

    fn peek(&self, k: usize) -> Option<u8> {
        self.b.get(self.i + k).copied()
    }

    /// `{a,b}` brace expansion: a `,` before the closing `}` and no spaces.
    fn brace_list_ahead(&self) -> bool {
        let rest = &self.b[self.i + 1..];
        let close = rest.iter().take(64).position(|&b| b == b'}');
        close.is_some_and(|end| rest[..end].contains(&b',') && !rest[..end].contains(&b' '))
    }

    fn separator(&mut self) {
        self.finish();
        let start = self.i;
        while matches!(self.peek(0), Some(b';' | b'\n' | b'\r' | b'|' | b'&')) {
            self.i += 1;
        }
        let piped = self.b[start..self.i].contains(&b'|');
        if piped && let Some(last) = self.commands.last_mut() {
            last.plumbing = true;
        }
        self.next_position = if matches!(self.peek(0), Some(b' ' | b'\t')) {
            Position::Loose
        } else {
            Position::Tight
        };
        if piped {
            self.next_position = Position::Tight;
        }
    }

    fn substitution_open(&mut self, len: usize, score: u8, reason: &'static str) {
        self.finish();
        let start = self.i;
        self.i += len;
        self.next_position = Position::Substitution;
        let inner = self.b[self.i..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count();
        if inner > 0 {
            let hit = Hit::new(score, reason, start, (self.i + inner + 1).min(self.b.len()));
            self.substitution = Hit::better(self.substitution, Some(hit));
        }
    }

    /// Reads one word, undoing in-word evasions, and files it as a command or an argument.
    fn word(&mut self) {
        let word = self.read_word();
        if word.text.is_empty() {
            return;
        }
        // The word after `<` or `>` names a file (or is markup such as `</b>`), not a command.
        if std::mem::take(&mut self.redirect_target) {
            if ["/tmp/", "/dev/", "/etc/", "/var/", "/proc/", "/root/"]
                .iter()
                .any(|d| word.text.starts_with(d))
            {
                let hit = Hit::new(12, "redirection into a system path", word.start, self.i);
                self.substitution = Hit::better(self.substitution, Some(hit));
            }
            if let Some(cmd) = self.current.as_mut()
                && cmd.args.len() < 8
            {
                cmd.args.push(word.text);
            }
            return;
        }
        match self.current.as_mut() {
            Some(cmd)
                if !wraps(&cmd.name) || !cmd.args.is_empty() || word.text.starts_with('-') =>
            {
                if cmd.args.len() < 8 {
                    cmd.args.push(word.text);
                }
                cmd.end = self.i;
            }
            _ => {
                self.finish();
                let position = self.next_position;
                self.current = Some(new_command(word, position, self.i));
            }
        }
    }

    fn read_word(&mut self) -> WordOut {
        let mut out = WordOut {
            start: self.i,
            ..WordOut::default()
        };
        while self.i < self.b.len() && out.text.len() < 256 {
            let c = self.b[self.i];
            match c {
                b'<' | b'>' if self.b[self.i + 1..].starts_with(b"()") => {
                    // `pi<()ng`: an empty process substitution inside a word.
                    out.evasion = true;
                    self.i += 3;
                }
                b' ' | b'\t' | b';' | b'\n' | b'\r' | b'|' | b'&' | b'<' | b'>' | b'(' | b')' => {
                    break;
                }
                b'`' if self.peek(1) == Some(b'`') => {
                    out.evasion = true;
                    self.i += 2;
                }
                b'`' => break,
                b',' | b'}' if self.brace_depth > 0 => break,
                b'\'' | b'"' => self.quoted(&mut out, c),
                b'\\' => {
                    out.evasion = true;
                    if let Some(n) = self.peek(1) {
                        out.text.push(char::from(n.to_ascii_lowercase()));
                    }
                    self.i += 2;
                }
                b'$' => self.dollar(&mut out),
                b'?' | b'*' | b'[' | b']' => {
                    out.glob = true;
                    out.text.push(char::from(c));
                    self.i += 1;
                }
                _ => {
                    let ch = self.utf8_char();
                    out.text.extend(ch.to_lowercase());
                }
            }
        }
        out
    }

    fn utf8_char(&mut self) -> char {
        let s = std::str::from_utf8(&self.b[self.i..self.b.len().min(self.i + 4)]);
        let ch = match s {
            Ok(s) => s.chars().next().unwrap_or('\u{FFFD}'),
            Err(e) => std::str::from_utf8(&self.b[self.i..self.i + e.valid_up_to()])
                .ok()
                .and_then(|s| s.chars().next())
                .unwrap_or('\u{FFFD}'),
        };
        self.i += ch.len_utf8().max(1);
        ch
    }

    fn quoted(&mut self, out: &mut WordOut, q: u8) {
        let mid_word = !out.text.is_empty();
        let close = memchr::memchr(q, &self.b[self.i + 1..]).map(|p| self.i + 1 + p);
        let end = close.unwrap_or(self.b.len());
        let inner = String::from_utf8_lossy(&self.b[self.i + 1..end]).to_lowercase();
        // An apostrophe in prose (`I'd`, `it's 'fine'`) is not quoting: in-word quoting
        // tricks never leave the quotes open or put spaces inside them.
        if close.is_none() || mid_word && inner.contains(char::is_whitespace) {
            out.text.push(char::from(q));
            self.i += 1;
            return;
        }
        self.i = (end + 1).min(self.b.len());
        let continues =
            self.i < self.b.len() && !matches!(self.b[self.i], b' ' | b'\t' | b';' | b'|' | b'&');
        if mid_word || continues || inner.is_empty() {
            out.evasion = true;
        }
        out.text.push_str(&inner);
    }

    /// `$@`, `$1`, `$x`, `${x}`, `$()` inside a word expand to (almost) nothing: evasions.
    fn dollar(&mut self, out: &mut WordOut) {
        let rest = &self.b[self.i + 1..];
        let used = match rest.first() {
            Some(b'@' | b'*' | b'#' | b'?' | b'!' | b'$' | b'-' | b'0'..=b'9') => 2,
            // `$'..'` and `$".."`: ANSI-C and locale quoting around an ordinary word.
            Some(b'\'' | b'"') => 1,
            Some(b'(') if rest.get(1) == Some(&b')') => 3,
            Some(b'{') => {
                let end = rest.iter().position(|&b| b == b'}').unwrap_or(rest.len());
                let name = String::from_utf8_lossy(&rest[1..end.max(1)]).to_lowercase();
                if name == "ifs" {
                    self.i += end + 2;
                    out.text.push(' ');
                    return;
                }
                end + 2
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let n = rest
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                    .count();
                let name = &rest[..n];
                if name.eq_ignore_ascii_case(b"ifs") {
                    self.i += n + 1;
                    out.text.push(' ');
                    return;
                }
                if name.eq_ignore_ascii_case(b"shell") && out.text.is_empty() {
                    out.text.push_str("sh");
                }
                n + 1
            }
            _ => {
                out.text.push('$');
                1
            }
        };
        out.evasion = true;
        self.i = (self.i + used).min(self.b.len());
    }

    fn finish(&mut self) {
        if let Some(cmd) = self.current.take() {
            let wrapper = wraps(&cmd.name) && cmd.args.is_empty();
            let position = cmd.position;
            self.commands.push(cmd);
            if wrapper {
                // `time id`, `nohup curl ...`: the wrapped program is in command position.
                self.next_position = match position {
                    Position::Start | Position::Loose => Position::Tight,
                    other => other,
                };
            }
        }
    }
}

/// Whether the program `name` runs the next word as a program: a wrapper (`nohup`, `time`),
/// or the dynamic loader, which runs any binary it is given (`ld-linux-x86-64.so.2 bin/sh`:
/// third red team's finding).
fn wraps(name: &str) -> bool {
    WRAPPERS.contains(&name)
        || name.starts_with("ld-linux")
        || name.starts_with("ld-musl")
        || name == "ld.so"
}

fn new_command(word: WordOut, position: Position, end: usize) -> Command {
    let mut text = word.text;
    if text.contains(' ') {
        // `${IFS}` stood for a space inside the word.
        let mut parts = text
            .split(' ')
            .filter(|p| !p.is_empty())
            .map(str::to_string);
        let first = parts.next().unwrap_or_default();
        let args: Vec<String> = parts.collect();
        let mut cmd = new_command(
            WordOut {
                text: first,
                evasion: true,
                ..word
            },
            position,
            end,
        );
        cmd.args = args;
        return cmd;
    }
    // A program reached through a directory (`/bin/sh`, `/usr/bin/perl`, `./x`, `../x`,
    // `bin/x`); a lone leading slash is more often markup (`</script>`) or a route than a
    // binary, and a relative path is one only from a binary directory: `read/write`,
    // `with/w` and `docs/id` are words (red-team finding: each was blocked, and so was
    // about one random base64 value in a thousand).
    let with_path = text.rsplit_once('/').is_some_and(|(dir, _)| {
        text.starts_with("./")
            || text.starts_with("../")
            || text.starts_with("~/")
            || text.starts_with('/') && text.trim_start_matches('/').contains('/')
            || matches!(dir.rsplit('/').next(), Some("bin" | "sbin"))
    });
    if text.contains('/') {
        text = text.rsplit('/').next().unwrap_or_default().to_string();
    }
    let mut evasion = word.evasion;
    // A glob names a program when it holds a letter of it or a directory (`c?t`,
    // `/???/??t`); a bare `*` at the start of a line is a markdown bullet, not the first
    // program a shell would find.
    let spells_a_name = with_path || text.bytes().any(|c| c.is_ascii_alphanumeric());
    if word.glob && spells_a_name && text.len() <= 24 {
        if let Some(name) = shell_words::glob_match(&text) {
            text = name.to_string();
            evasion = true;
        }
    }
    Command {
        name: text,
        with_path,
        evasion,
        args: Vec::new(),
        position,
        plumbing: false,
        start: word.start,
        end,
    }
}

/// Arguments that only make sense to a shell: options, paths, URLs, assignments, globs.
fn shelly(args: &[String]) -> bool {
    args.iter().any(|a| {
        a.starts_with('-') && a.len() > 1
            || a.starts_with('+') && a[1..].starts_with(|c: char| c.is_ascii_alphabetic())
            || a.starts_with('/')
            || a.contains("://")
            || a.contains('=')
            || a.contains('*')
            || a.contains('?')
            || a.starts_with('~')
            || a.starts_with("./")
            || a.starts_with('$')
    })
}

/// Three or more ordinary words among the arguments: a sentence that starts with a command
/// name (`ls -la is my favourite command`), not a command line.
fn prose_args(args: &[String]) -> bool {
    args.iter()
        .filter(|a| {
            a.len() >= 2
                && a.chars()
                    .all(|c| c.is_alphabetic() || c == '\'' || c == ',')
        })
        .count()
        >= 3
}

/// `passwd reset`, `whoami meaning`: a program's name then one or two lowercase words, the
/// way a search box or a ticket title mentions it. Arguments a command takes are options,
/// paths, numbers, addresses or names with digits and punctuation; these are words.
fn words_after(args: &[String]) -> bool {
    (1..=2).contains(&args.len())
        && args.iter().all(|a| {
            a.len() >= 3
                && a.bytes().all(|c| c.is_ascii_lowercase())
                && !shell_words::known(a)
                && !["root", "admin", "administrator", "all"].contains(&a.as_str())
        })
}

fn judge(cmd: &Command, source: Source) -> Option<Hit> {
    let name = cmd
        .name
        .trim_matches(|c: char| c == '.' || c == '"' || c == '\'');
    if name.contains('=') {
        return assignment_of_command(cmd);
    }
    let name = if shell_words::known(name) || shell_words::unmistakable(name) {
        name
    } else {
        shell_words::without_version(name)
    };
    if !shell_words::known(name) && !shell_words::unmistakable(name) {
        return None;
    }
    let common = shell_words::common(name);
    let shell_args = shelly(&cmd.args) || cmd.plumbing;
    // Tool names are ordinary user agents (`Wget/1.21`): only shell syntax counts there.
    let start_needs_syntax = source == Source::Header && cmd.position == Position::Start;
    let http_client = [
        "wget", "curl", "lynx", "links", "w3m", "fetch", "aria2c", "httpie",
    ]
    .contains(&name);
    if start_needs_syntax
        && !shell_args
        && !cmd.evasion
        && (http_client || !shell_words::unmistakable(name))
    {
        return None;
    }
    // A route named like a command (`/whoami`, `/api/ping`) is a page: in the path, a command
    // at the start counts only with arguments, shell syntax or an evasion.
    if source == Source::Path
        && cmd.position == Position::Start
        && cmd.args.is_empty()
        && !shell_args
        && !cmd.evasion
    {
        return None;
    }
    let mut score = match cmd.position {
        Position::Substitution => {
            if common && !shell_args && cmd.args.is_empty() {
                12
            } else {
                8
            }
        }
        Position::Tight => match (common, shell_args) {
            (false, _) => 8,
            (true, true) => 10,
            (true, false) => 16,
        },
        Position::Loose => match (common, shell_args) {
            (false, true) => 8,
            (false, false) => 18,
            (true, true) => 12,
            (true, false) if probe_command(name, &cmd.args) => 14,
            (true, false) => 40,
        },
        Position::Start => match (common, shell_args) {
            _ if prose_args(&cmd.args) && !name.contains('-') => 40,
            _ if words_after(&cmd.args)
                && !shell_args
                && !cmd.evasion
                && !shell_words::unmistakable(name) =>
            {
                30
            }
            _ if shell_words::unmistakable(name)
                && (shell_args || !http_client || cmd.args.is_empty()) =>
            {
                12
            }
            (false, true) => 12,
            (true, true) => 16,
            (false, false) => 24,
            _ => 45,
        },
    };
    if cmd.evasion {
        score = score.min(6);
    }
    if cmd.with_path && !(source == Source::Path) {
        score = score.min(8);
    }
    if ["sh", "bash", "zsh", "ksh", "dash"].contains(&name)
        && cmd.args.iter().any(|a| a == "-c" || a == "-i")
    {
        score = score.min(6);
    }
    Some(Hit::new(
        score,
        "shell command",
        cmd.start,
        cmd.end.max(cmd.start),
    ))
}

/// `; id`, `; sleep 10`, `| whoami`: the commands injection probes run, alone or with a
/// number, which prose after a semicolon does not look like.
fn probe_command(name: &str, args: &[String]) -> bool {
    const PROBES: &[&str] = &[
        "id", "sleep", "ping", "ls", "pwd", "echo", "cat", "dir", "ver", "set", "uname", "hostname",
    ];
    PROBES.contains(&name)
        && args
            .iter()
            .all(|a| a.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// `a=curl; $a ...`, `garb=adduse[r]`: a variable set to a command name.
fn assignment_of_command(cmd: &Command) -> Option<Hit> {
    let (_, value) = cmd.name.split_once('=')?;
    let value = value.trim_matches(|c: char| c == '\'' || c == '"');
    let value = if value.contains(['?', '*', '[']) {
        shell_words::glob_match(value).unwrap_or(value)
    } else {
        value
    };
    (shell_words::known(value) && !shell_words::common(value)).then(|| {
        Hit::new(
            10,
            "command stored in a variable",
            cmd.start,
            cmd.end.max(cmd.start),
        )
    })
}

#[cfg(test)]
#[path = "shell_tests.rs"]
mod tests;
