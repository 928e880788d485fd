//! `[[rate_limit]]` tables refused, and where `palisade check` places the error.

use super::*;

#[test]
fn invalid_rules_say_what_was_expected() {
    let message =
        first_error("[[rate_limit]]\nname = \"a\"\nkey = \"cookie\"\nlimit = 1\nwindow = \"1s\"\n");
    assert!(message.contains("expected \\\"ip\\\"") || message.contains("expected \"ip\""));
    assert!(message.starts_with("palisade.toml:3:7:"), "{message}");
}

#[test]
fn duplicate_rule_names_are_refused() {
    let rule = "[[rate_limit]]\nname = \"a\"\nlimit = 1\nwindow = \"1s\"\n";
    let other = "[[rate_limit]]\nname = \"b\"\nlimit = 1\nwindow = \"1s\"\n";
    let message = first_error(&format!("{rule}{other}{rule}"));
    assert!(message.contains("duplicate rate_limit name"), "{message}");
    // At the repeating table's name; the message says which table it repeats.
    assert!(message.starts_with("palisade.toml:10:8: "), "{message}");
    assert!(
        message.contains("table 3 repeats the name of table 1"),
        "{message}"
    );
    // Headers written with spaces and a comment are found too.
    let spaced = rule.replace("[[rate_limit]]", "  [[ rate_limit ]] # again");
    let message = first_error(&format!("{rule}{other}{spaced}"));
    assert!(message.starts_with("palisade.toml:10:8: "), "{message}");
}

#[test]
fn a_missing_required_key_says_what_the_table_needs() {
    let message = first_error("[[rate_limit]]\nname = \"a\"\nwindow = \"1s\"\n");
    assert!(
        message.starts_with("palisade.toml:1:1: missing field `limit` (expected `limit = ...`"),
        "{message}"
    );
}

#[test]
fn zero_limits_are_refused() {
    let message = first_error("[[rate_limit]]\nname = \"a\"\nlimit = 0\nwindow = \"1s\"\n");
    assert!(message.contains("at least 1"), "{message}");
}

/// A rule's checks that serde cannot make (serde places their errors at the whole table)
/// point at the value they are about, in the table they are in.
#[test]
fn rule_check_errors_point_at_the_value() {
    let ok = "[[rate_limit]]\nname = \"ok\"\nlimit = 1\nwindow = \"1s\"\n\n";
    for (table, place) in [
        (
            "[[rate_limit]]\nname = \"a\"\n  limit   =  0 \nwindow = \"1s\"\n",
            "8:14:",
        ),
        (
            "[[rate_limit]]\nname = \"a\"\nlimit = 1\nwindow = \"0s\"\n",
            "9:10:",
        ),
        // Past what the stores keep exact.
        (
            "[[rate_limit]]\nname = \"a\"\nlimit = 1000001\nwindow = \"1s\"\n",
            "8:9:",
        ),
        (
            "[[rate_limit]]\nname = \"a\"\nlimit = 1\nwindow = \"31d\"\n",
            "9:10:",
        ),
        (
            "[[rate_limit]]\nname = \"a b\"\nlimit = 1\nwindow = \"1s\"\n",
            "7:8:",
        ),
        (
            "[[rate_limit]]\nname = \"a\"\npath = \"api\"\nlimit = 1\nwindow = \"1s\"\n",
            "8:8:",
        ),
        (
            "[[rate_limit]]\nname = \"a\"\nmethods = [\"G T\"]\nlimit = 1\nwindow = \"1s\"\n",
            "8:11:",
        ),
        (
            "[[rate_limit]]\nname = \"a\"\nkey = \"cookie\"\nlimit = 1\nwindow = \"1s\"\n",
            "8:7:",
        ),
        (
            "[[rate_limit]]\nname = \"a\"\nkey = \"header:a b\"\nlimit = 1\nwindow = \"1s\"\n",
            "8:7:",
        ),
    ] {
        let message = first_error(&format!("{ok}{table}"));
        assert!(
            message.starts_with(&format!("palisade.toml:{place} rate_limit"))
                || message.starts_with(&format!("palisade.toml:{place} invalid rate_limit")),
            "{message}"
        );
    }
    // The table's own place when the key is not on a line of its own.
    let inline = "rate_limit = [{ name = \"a\", limit = 0, window = \"1s\" }]\n";
    let message = first_error(inline);
    assert!(message.starts_with("palisade.toml:1:"), "{message}");
    assert!(message.contains("at least 1"), "{message}");
}
