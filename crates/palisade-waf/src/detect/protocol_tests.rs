use super::*;
use crate::extract::{Collector, Limits};
use crate::normalize::Plus;

fn score(raw: &str, source: Source) -> Option<u8> {
    let mut c = Collector::new(Limits::default());
    c.push(source, "x", raw.as_bytes().to_vec().into(), Plus::IsSpace);
    let input = &c.inputs[0];
    detect_value(input, &input.text, source).map(|h| h.score)
}

#[test]
fn injected_headers_after_line_breaks_are_certain() {
    assert!(score("foo%0d%0aSet-Cookie:%20a=b", Source::Arg).is_some_and(|s| s <= 8));
    assert!(score("x%0d%0a%0d%0aHTTP/1.1%20200%20OK", Source::Arg).is_some_and(|s| s <= 8));
    assert!(score("aaa%0aGET%20/admin%20HTTP/1.1", Source::Form).is_some_and(|s| s <= 8));
}

#[test]
fn mail_commands_after_line_breaks_are_recognised() {
    assert!(score("%0d%0aRCPT%20TO:<x@evil>", Source::Arg).is_some_and(|s| s <= 14));
    assert!(score("%0d%0aa001%20EXAMINE%20INBOX", Source::Arg).is_some_and(|s| s <= 14));
}

#[test]
fn line_breaks_in_prose_are_not_injection() {
    assert_eq!(
        score("Hello!%0d%0aThis%20is%20the%20second%20line.", Source::Form),
        None
    );
    assert_eq!(score("textarea%0adata%20not%20found.", Source::Form), None);
}

#[test]
fn nul_bytes_and_overlong_utf8_are_recognised() {
    assert!(score("file.php%00.jpg", Source::Arg).is_some_and(|s| s <= 12));
    assert!(score("%c0%ae%c0%ae/", Source::Arg).is_some_and(|s| s <= 12));
}

#[test]
fn ldap_filter_injection_is_recognised() {
    assert!(score("*)(uid=*))(|(uid=*", Source::Form).is_some_and(|s| s <= 12));
    assert_eq!(score("(objectSID=S-1-5-21)", Source::Form), None);
}

#[test]
fn scanners_are_known_by_their_user_agent() {
    assert!(scanner_agent("sqlmap/1.7 (https://sqlmap.org)").is_some());
    assert_eq!(scanner_agent("mozilla/5.0 (x11; linux x86_64)"), None);
}

#[test]
fn a_raw_percent_without_hex_digits_blocks_but_an_encoded_percent_does_not() {
    assert_eq!(score("new%w20x", Source::Arg), Some(20));
    assert_eq!(score("!@#$%^", Source::Form), Some(20));
    assert_eq!(score("100%25%20sure", Source::Form), None);
    assert_eq!(score("50%25+off", Source::Arg), None);
}

#[test]
fn a_long_run_of_line_breaks_is_read_as_one_break() {
    // Each break of a run used to read the whole rest of the run (quadratic time).
    let run = "\r\n".repeat(6000);
    assert_eq!(
        score(&format!("a{run}Set-Cookie: x=1"), Source::Arg),
        Some(6)
    );
    assert_eq!(score(&format!("a{run}b"), Source::Arg), None);
}
