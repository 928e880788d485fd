//! Command names the shell tokenizer recognises, split by how often they are also ordinary
//! words: a distinctive name in command position is evidence by itself, a common word only
//! with shell-shaped arguments around it.

/// Programs whose names are not everyday words.
pub const DISTINCTIVE: &[&str] = &[
    "whoami",
    "ifconfig",
    "ipconfig",
    "uname",
    "wget",
    "curl",
    "netcat",
    "nc",
    "ncat",
    "socat",
    "bash",
    "sh",
    "zsh",
    "ksh",
    "csh",
    "tcsh",
    "dash",
    "fish",
    "busybox",
    "python",
    "python2",
    "python3",
    "perl",
    "ruby",
    "irb",
    "php",
    "node",
    "nodejs",
    "lua",
    "tclsh",
    "wish",
    "gawk",
    "awk",
    "nawk",
    "sed",
    "xargs",
    "chmod",
    "chown",
    "chgrp",
    "chattr",
    "passwd",
    "useradd",
    "adduser",
    "usermod",
    "userdel",
    "visudo",
    "sudo",
    "su",
    "crontab",
    "nohup",
    "strace",
    "ltrace",
    "gdb",
    "nmap",
    "netstat",
    "ss",
    "telnet",
    "ssh",
    "scp",
    "sftp",
    "tftp",
    "rsync",
    "base64",
    "xxd",
    "hexdump",
    "od",
    "uuencode",
    "openssl",
    "gunzip",
    "gzip",
    "bzip2",
    "bunzip2",
    "unxz",
    "xz",
    "zstd",
    "zstdcat",
    "zcat",
    "bzcat",
    "xzcat",
    "unzip",
    "7z",
    "bsdtar",
    "cpio",
    "dd",
    "mkfifo",
    "mknod",
    "insmod",
    "rmmod",
    "modprobe",
    "lsmod",
    "iptables",
    "systemctl",
    "service",
    "journalctl",
    "dmesg",
    "lsof",
    "pkill",
    "killall",
    "ps",
    "pstree",
    "ls",
    "ll",
    "cat",
    "tac",
    "nl",
    "less",
    "grep",
    "egrep",
    "fgrep",
    "rgrep",
    "pwd",
    "cd",
    "rm",
    "rmdir",
    "mkdir",
    "cp",
    "mv",
    "ln",
    "touch",
    "echo",
    "printf",
    "env",
    "printenv",
    "export",
    "unset",
    "alias",
    "eval",
    "exec",
    "source",
    "chroot",
    "mount",
    "umount",
    "fdisk",
    "lsblk",
    "blkid",
    "hostname",
    "hostnamectl",
    "uptime",
    "lscpu",
    "lspci",
    "lsusb",
    "id",
    "groups",
    "last",
    "lastlog",
    "finger",
    "wall",
    "write",
    "nslookup",
    "dig",
    "host",
    "traceroute",
    "tracepath",
    "ping",
    "ping6",
    "arp",
    "route",
    "ip",
    "iwconfig",
    "ethtool",
    "tcpdump",
    "tshark",
    "wireshark",
    "msfconsole",
    "msfvenom",
    "sqlmap",
    "hydra",
    "john",
    "hashcat",
    "gcc",
    "cc",
    "c89",
    "c99",
    "g++",
    "clang",
    "make",
    "cmake",
    "ld",
    "as",
    "objdump",
    "readelf",
    "strings",
    "vi",
    "vim",
    "nvim",
    "nano",
    "emacs",
    "ed",
    "ex",
    "pico",
    "more",
    "head",
    "tail",
    "tee",
    "cut",
    "tr",
    "sort",
    "uniq",
    "wc",
    "diff",
    "cmp",
    "rev",
    "find",
    "locate",
    "which",
    "whereis",
    "file",
    "stat",
    "chsh",
    "newgrp",
    "pip",
    "pip3",
    "pipx",
    "npm",
    "npx",
    "yarn",
    "gem",
    "bundle",
    "cargo",
    "go",
    "java",
    "javac",
    "jshell",
    "groovy",
    "scala",
    "kotlin",
    "mono",
    "dotnet",
    "powershell",
    "pwsh",
    "cmd",
    "certutil",
    "bitsadmin",
    "mshta",
    "regedit",
    "reg",
    "regsvr32",
    "rundll32",
    "wmic",
    "wscript",
    "cscript",
    "net",
    "netsh",
    "schtasks",
    "tasklist",
    "taskkill",
    "systeminfo",
    "iwr",
    "iex",
    "iwmi",
    "invoke-webrequest",
    "invoke-expression",
    "start-process",
    "ansible",
    "ansible-config",
    "ansible-galaxy",
    "ansible-console",
    "ansible-doc",
    "ansible-inventory",
    "ansible-pull",
    "ansible-vault",
    "ansible-playbook",
    "chef",
    "chef-vault",
    "chef-shell",
    "chef-run",
    "chef-client",
    "chef-solo",
    "knife",
    "puppet",
    "salt",
    "cscli",
    "kubectl",
    "docker",
    "podman",
    "helm",
    "terraform",
    "aws",
    "gcloud",
    "az",
    "flock",
    "cpulimit",
    "timeout",
    "nice",
    "ionice",
    "stdbuf",
    "setsid",
    "perf",
    "rmt",
    "uconv",
    "iconv",
    "aa-disable",
    "aa-exec",
    "ssh-copy-id",
    "ssh-keygen",
    "lwp-download",
    "lwp-request",
    "lynx",
    "links",
    "w3m",
    "fetch",
    "ftp",
    "zip",
    "tar",
    "rc",
    "shutdown",
    "reboot",
    "halt",
    "poweroff",
    "init",
    "telinit",
    "kill",
    "time",
    "date",
    "who",
    "w",
    "top",
    "htop",
    "at",
    "batch",
    "watch",
    "sleep",
    "wait",
    "type",
    "dir",
    "del",
    "copy",
    "xcopy",
    "ren",
    "move",
    "set",
    "start",
    "call",
    "tree",
    "more.com",
    "sc",
    "bcdedit",
    "vssadmin",
    "wevtutil",
    "icacls",
    "takeown",
    "attrib",
    "cacls",
    "findstr",
    "whoami.exe",
    "tclsh8.6",
    "expect",
    "screen",
    "tmux",
    "script",
    "setfacl",
    "getfacl",
    "pkexec",
    "doas",
    "runuser",
    "unshare",
    "nsenter",
    "capsh",
    "getcap",
    "setcap",
    "xdg-open",
    "open",
    "osascript",
    "launchctl",
];

/// Names that are also everyday words (or parts of prose): evidence only with shell syntax.
pub const COMMON: &[&str] = &[
    "cat", "time", "date", "who", "w", "top", "at", "batch", "watch", "sleep", "wait", "type",
    "dir", "del", "copy", "move", "set", "start", "call", "tree", "more", "head", "tail", "cut",
    "sort", "find", "file", "last", "write", "host", "ping", "route", "make", "as", "ld", "ed",
    "ex", "which", "id", "ip", "go", "net", "reg", "cmd", "fetch", "links", "zip", "tar", "rc",
    "kill", "init", "halt", "open", "script", "expect", "screen", "nice", "timeout", "source",
    "export", "eval", "exec", "echo", "env", "groups", "wall", "tr", "wc", "diff", "rev", "dig",
    "uniq", "less", "cc", "chef", "salt", "puppet", "service", "mount", "finger", "stat", "touch",
    "alias", "tee", "ls", "cd", "pwd", "rm", "cp", "mv", "ln", "vi", "sh", "su", "perf", "flock",
    "john", "hydra", "knife", "bundle", "gem", "cargo", "helm", "az", "aws", "locate", "whereis",
    "ren", "sc", "ss", "ps", "od", "nl", "as", "pip", "printf", "grep",
];

/// Programs that never appear in prose: named on their own they are a command.
pub const UNMISTAKABLE: &[&str] = &[
    "whoami",
    "ifconfig",
    "ipconfig",
    "uname",
    "wget",
    "netcat",
    "ncat",
    "socat",
    "chmod",
    "chown",
    "visudo",
    "useradd",
    "adduser",
    "usermod",
    "crontab",
    "nohup",
    "strace",
    "netstat",
    "base64",
    "xxd",
    "gunzip",
    "zstdcat",
    "bsdtar",
    "bzcat",
    "xzcat",
    "unxz",
    "cscli",
    "certutil",
    "bitsadmin",
    "mshta",
    "regsvr32",
    "rundll32",
    "wmic",
    "powershell",
    "pwsh",
    "msfconsole",
    "msfvenom",
    "sqlmap",
    "nmap",
    "tcpdump",
    "busybox",
    "mkfifo",
    "systemctl",
    "iptables",
    "chattr",
    "pkexec",
    "setcap",
    "getcap",
    "lsof",
    "printenv",
    "hostnamectl",
    "schtasks",
    "tasklist",
    "taskkill",
    "systeminfo",
    "invoke-webrequest",
    "invoke-expression",
    "start-process",
    "knife",
    "kubectl",
    "chef-shell",
    "chef-client",
    "chef-solo",
    "chef-vault",
    "chef-run",
    "lwp-download",
    "lwp-request",
    "ssh-copy-id",
    "ssh-keygen",
    "aa-disable",
    "aa-exec",
    "rmt",
    "uconv",
    "cpulimit",
    "gdb",
    "ltrace",
];

/// Whether `name` is a program that never appears in prose (hyphenated tool names count).
pub fn unmistakable(name: &str) -> bool {
    flags(name) & NEVER_PROSE != 0 || distinctive_head(name.as_bytes())
}

/// Whether `name` is hyphenated and its first part a known command that is no everyday
/// word (`ssh-keygen`, `nc-static`), its table entry read once.
fn distinctive_head(name: &[u8]) -> bool {
    // SSH key types (`ssh-rsa AAAA...`, a public key pasted into a form) name no program
    // (third red team's finding: every public key was blocked).
    // (`ssh-ed` is `ssh-ed25519` without its number, as `without_version` leaves it.)
    if matches!(
        name,
        b"ssh-rsa" | b"ssh-ed" | b"ssh-ed25519" | b"ssh-dss" | b"ssh-ed448" | b"ssh-ecdsa"
    ) {
        return false;
    }
    // A loop, not `memchr`: a word is at most 32 bytes, shorter than its setup.
    name.iter().position(|&b| b == b'-').is_some_and(|dash| {
        let found = flags_of(&name[..dash]);
        found & KNOWN != 0 && found & COMMON_WORD == 0
    })
}

/// Whether the word `lower` (lower case, its directory removed) names a program: known or
/// unmistakable once a version suffix is removed, or known as written. Every input's first
/// word is asked this, so the table is read once for the usual word (no version suffix, no
/// `-`), not three times. Read as bytes: the table holds ASCII names only, so bytes that
/// are not text name nothing, and no UTF-8 check is needed first.
pub(crate) fn names_program_bytes(lower: &[u8]) -> bool {
    if lower.is_empty() {
        return false;
    }
    // `without_version` on bytes.
    let name = match lower
        .iter()
        .rposition(|&b| !(b.is_ascii_digit() || b == b'.'))
    {
        Some(last) => &lower[..=last],
        None => &lower[..0],
    };
    if flags_of(name) & (KNOWN | NEVER_PROSE) != 0 || distinctive_head(name) {
        return true;
    }
    name.len() != lower.len() && flags_of(lower) & KNOWN != 0
}

/// `python3.10` → `python`, `gcc7.4` → `gcc`: version suffixes removed.
pub fn without_version(name: &str) -> &str {
    name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.')
}

/// Commands that only wrap another command: the next word is in command position too.
pub const WRAPPERS: &[&str] = &[
    "time", "nohup", "strace", "ltrace", "sudo", "doas", "env", "nice", "ionice", "timeout",
    "xargs", "busybox", "exec", "command", "builtin", "stdbuf", "setsid", "flock", "cpulimit",
    "chroot", "watch", "unbuffer", "runuser", "pkexec",
];

const KNOWN: u8 = 1;
const COMMON_WORD: u8 = 2;
const NEVER_PROSE: u8 = 4;

/// Every name with its flags, looked up once per word instead of scanning the lists.
static TABLE: std::sync::LazyLock<std::collections::HashMap<&'static [u8], u8, Fnv>> =
    std::sync::LazyLock::new(|| {
        let mut table = std::collections::HashMap::with_hasher(Fnv);
        for name in DISTINCTIVE {
            *table.entry(name.as_bytes()).or_insert(0) |= KNOWN;
        }
        for name in COMMON {
            *table.entry(name.as_bytes()).or_insert(0) |= KNOWN | COMMON_WORD;
        }
        for name in UNMISTAKABLE {
            *table.entry(name.as_bytes()).or_insert(0) |= NEVER_PROSE;
        }
        table
    });

/// FNV-1a: short keys from a fixed table need no protection from collisions crafted by
/// clients (lookups never insert), and SipHash costs more than the lookup itself.
#[derive(Clone, Copy, Default)]
pub(crate) struct Fnv;

impl std::hash::BuildHasher for Fnv {
    type Hasher = FnvHasher;
    fn build_hasher(&self) -> FnvHasher {
        FnvHasher(0xcbf2_9ce4_8422_2325)
    }
}

/// The running FNV-1a state.
pub(crate) struct FnvHasher(u64);

impl std::hash::Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    // A byte string's length prefix in one step rather than eight.
    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0 ^ n as u64).wrapping_mul(0x0100_0000_01b3);
    }
}

fn flags(name: &str) -> u8 {
    flags_of(name.as_bytes())
}

fn flags_of(name: &[u8]) -> u8 {
    TABLE.get(name).copied().unwrap_or(0)
}

/// Whether `name` is a known command.
pub fn known(name: &str) -> bool {
    flags(name) & KNOWN != 0
}

/// Whether `name` is a known command that is also an everyday word.
pub fn common(name: &str) -> bool {
    flags(name) & COMMON_WORD != 0
}

/// The known command a glob pattern (`c?t`, `/???/b??h`, `w*i`) stands for, if exactly the
/// pattern's shape fits one.
pub fn glob_match(pattern: &str) -> Option<&'static str> {
    DISTINCTIVE
        .iter()
        .chain(COMMON.iter())
        .find(|name| glob(pattern.as_bytes(), name.as_bytes()))
        .copied()
}

/// Shell glob matching with `?`, `*` and `[...]`, in at most `pattern × name` steps: a
/// `*` that fails is retried only from the last `*` (the classic wildcard walk), never by
/// trying every split for every `*`, which takes exponential time on `;**********Q`.
pub fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    // After the last `*`: where the pattern resumes and the name position it stands for.
    let mut last_star: Option<(usize, usize)> = None;
    while n < name.len() {
        match glob_step(pattern, p, name[n]) {
            GlobStep::Star => {
                last_star = Some((p + 1, n));
                p += 1;
            }
            GlobStep::Matched(next) => {
                p = next;
                n += 1;
            }
            GlobStep::Failed => {
                let Some((resume, at)) = last_star else {
                    return false;
                };
                last_star = Some((resume, at + 1));
                p = resume;
                n = at + 1;
            }
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&b| b == b'*')
}

/// What the pattern element at `p` does with the name byte `c`.
enum GlobStep {
    Star,
    Matched(usize),
    Failed,
}

fn glob_step(pattern: &[u8], p: usize, c: u8) -> GlobStep {
    match pattern.get(p) {
        None => GlobStep::Failed,
        Some(b'*') => GlobStep::Star,
        Some(b'?') => GlobStep::Matched(p + 1),
        Some(b'[') => {
            let Some(close) = pattern[p..].iter().position(|&b| b == b']') else {
                return if c == b'[' {
                    GlobStep::Matched(p + 1)
                } else {
                    GlobStep::Failed
                };
            };
            let class = &pattern[p + 1..p + close];
            let (negate, class) = match class.first() {
                Some(b'!' | b'^') => (true, &class[1..]),
                _ => (false, class),
            };
            if class_contains(class, c) != negate {
                GlobStep::Matched(p + close + 1)
            } else {
                GlobStep::Failed
            }
        }
        Some(&literal) if literal == c => GlobStep::Matched(p + 1),
        Some(_) => GlobStep::Failed,
    }
}

fn class_contains(class: &[u8], c: u8) -> bool {
    let mut i = 0;
    while i < class.len() {
        if i + 2 < class.len() && class[i + 1] == b'-' {
            if (class[i]..=class[i + 2]).contains(&c) {
                return true;
            }
            i += 3;
        } else {
            if class[i] == c {
                return true;
            }
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `names_program_bytes` answers as the three lookups it replaced, for every listed name,
    /// its versioned and hyphenated forms, and words that name nothing.
    #[test]
    fn names_program_agrees_with_the_separate_lookups() {
        let reference = |lower: &str| {
            let name = without_version(lower);
            known(name) || unmistakable(name) || known(lower)
        };
        let mut words: Vec<String> = [
            "",
            "1",
            "123",
            "3.10",
            "users",
            "dashboard",
            "-",
            "a-b",
            "nmap-",
            "-nmap",
            "7-zip",
        ]
        .iter()
        .map(|w| (*w).to_owned())
        .collect();
        for name in DISTINCTIVE
            .iter()
            .chain(COMMON.iter())
            .chain(WRAPPERS.iter())
        {
            words.push((*name).to_owned());
            words.push(format!("{name}3.10"));
            words.push(format!("{name}-extra"));
            words.push(format!("x-{name}"));
        }
        for word in &words {
            assert_eq!(
                names_program_bytes(word.as_bytes()),
                reference(word),
                "{word:?}"
            );
        }
    }

    #[test]
    fn globs_match_like_the_shell() {
        assert!(glob(b"c?t", b"cat"));
        assert!(glob(b"w*i", b"whoami"));
        assert!(glob(b"[!q]asswd", b"passwd"));
        assert!(glob(b"[m-z]asswd", b"passwd"));
        assert!(!glob(b"c?t", b"cart"));
        assert!(glob(b"*", b""));
        assert!(glob(b"c*t*", b"cat"));
        assert!(glob(b"*[!x]sswd", b"passwd"));
        assert!(!glob(b"[abc", b"a"));
        assert!(glob(b"[abc", b"[abc"));
    }

    #[test]
    fn many_stars_that_cannot_match_are_judged_without_trying_every_split() {
        // Exponential backtracking never finished this (a request of 30 bytes held a
        // worker thread for minutes).
        let pattern = format!("{}Q", "*".repeat(40));
        assert!(!glob(pattern.as_bytes(), b"abcdefghijklmnopqrstuvwxyz"));
        assert_eq!(glob_match(&pattern), None);
    }

    #[test]
    fn glob_match_names_the_command() {
        assert_eq!(glob_match("b??h"), Some("bash"));
        assert_eq!(glob_match("zzz?"), None);
    }
}
