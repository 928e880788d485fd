//! The rules file: the requirements' example, every key, and errors that point into the file.

use std::sync::Arc;

use palisade_expr::rules::{load_tables, load_yaml};
use palisade_expr::{Action, LimitKey, LoadErrors, Mode, RuleSet, RuleTable, Scheme, Threshold};

const REQUIREMENTS_EXAMPLE: &str = r#"rules:
  - name: Block SQL Injection
    expression: (http.request.uri.query contains "union" and http.request.uri.query contains "select")
    action: block
  - name: Rate Limit API
    expression: (http.request.uri.path contains "/api/")
    action: rate_limit
    threshold: 100/minute
  - name: Geo-blocking (if needed)
    expression: (ip.geoip.country in {"CN" "RU" "KP"})
    action: challenge
"#;

fn load(text: &str) -> Result<RuleSet, LoadErrors> {
    RuleSet::from_yaml("waf.yaml", text, Arc::new(Scheme::standard()))
}

fn first_error(text: &str) -> String {
    match load(text) {
        Ok(_) => panic!("loaded:\n{text}"),
        Err(e) => e.0[0].to_string(),
    }
}

#[test]
fn the_requirements_example_loads_unchanged() {
    let set = load(REQUIREMENTS_EXAMPLE).expect("loads");
    let rules = set.rules();
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[0].name, "Block SQL Injection");
    assert_eq!(
        rules[0].action,
        Action::Block {
            status: 403,
            body: None
        }
    );
    let minute = std::time::Duration::from_secs(60);
    let threshold = Threshold {
        limit: 100,
        period: minute,
    };
    assert_eq!(
        rules[1].action,
        Action::RateLimit {
            threshold,
            key: LimitKey::Ip
        }
    );
    assert_eq!(rules[2].action, Action::Challenge);
    assert_eq!((rules[0].origin.line, rules[0].origin.column), (3, 17));
    assert!(!set.needs_body());
    let scheme = set.scheme();
    assert!(set.fields().contains_name(scheme, "ip.src.country"));
    assert!(!set.fields().contains_name(scheme, "http.host"));
}

#[test]
fn expression_errors_point_into_the_file() {
    let text = "rules:\n  - name: Numbers\n    action: block\n    expression: http.request.uri.query contains 42\n";
    assert_eq!(
        first_error(text),
        "waf.yaml:4:49: expected a string after 'contains', found 42 (rule 'Numbers')"
    );
}

#[test]
fn expression_errors_in_quoted_values_skip_the_quote() {
    let text =
        "rules:\n  - name: Q\n    action: log\n    expression: \"ip.src contains \\\"x\\\"\"\n";
    assert!(
        first_error(text).starts_with("waf.yaml:4:25: 'contains' needs a string"),
        "{}",
        first_error(text)
    );
}

#[test]
fn expression_errors_in_block_scalars_point_at_the_right_line() {
    let text = "rules:\n  - name: Block\n    action: block\n    expression: |\n      http.host == \"a\"\n      and ip.src contains \"x\"\n";
    let error = first_error(text);
    assert!(
        error.starts_with("waf.yaml:6:18: 'contains' needs a string"),
        "{error}"
    );
    let folded = text.replace("expression: |", "expression: >");
    let error = first_error(&folded);
    assert!(error.starts_with("waf.yaml:6:18:"), "{error}");
}

#[test]
fn every_optional_key_is_read() {
    let text = r#"rules:
  - name: Admin
    description: keep people out
    expression: starts_with(http.request.uri.path, "/admin")
    action: block
    status: 451
    body: go away
    mode: log
    enabled: false
  - name: Per key
    expression: ssl
    action: rate_limit
    threshold: 10
    period: 10s
    key: header:X-Api-Key
  - name: Skipper
    expression: ip.src in {10.0.0.0/8}
    action: skip
    skip: [Later, managed, rate_limit]
  - name: Later
    expression: ssl
    action: allow
"#;
    let set = load(text).expect("loads");
    let r = set.rules();
    assert_eq!(r[0].description.as_deref(), Some("keep people out"));
    assert_eq!(
        r[0].action,
        Action::Block {
            status: 451,
            body: Some("go away".into())
        }
    );
    assert_eq!((r[0].mode, r[0].enabled), (Mode::Log, false));
    let period = std::time::Duration::from_secs(10);
    let threshold = Threshold { limit: 10, period };
    assert_eq!(
        r[1].action,
        Action::RateLimit {
            threshold,
            key: LimitKey::Header("x-api-key".into())
        }
    );
    let Action::Skip(targets) = &r[2].action else {
        panic!("skip")
    };
    assert_eq!(targets.len(), 3);
}

#[test]
fn unknown_keys_are_refused_where_they_are() {
    let text = "rules:\n  - name: A\n    expression: ssl\n    action: block\n    acton: log\n";
    assert!(first_error(text).starts_with("waf.yaml:5:5: unknown key 'acton' in rule"));
    assert!(
        first_error("rules: []\nextra: 1\n").starts_with("waf.yaml:2:1: unknown top-level key")
    );
}

/// Regression: an unknown key in one rule hid the mistakes of every other rule.
#[test]
fn an_unknown_key_does_not_hide_the_other_rules_errors() {
    let text = "rules:\n  - name: A\n    expression: ssl\n    acton: block\n  \
                - name: B\n    expression: ssl\n    action: explode\n  \
                - name: C\n    expression: ssl\n";
    let Err(errors) = load(text) else {
        panic!("loaded:\n{text}")
    };
    let lines: Vec<usize> = errors.0.iter().map(|e| e.line).collect();
    assert_eq!(lines.len(), 3, "{:?}", errors.0);
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
    assert!(errors.0[0].to_string().contains("unknown key 'acton'"));
    assert!(
        errors.0[1].to_string().contains("rule 'B'"),
        "{}",
        errors.0[1]
    );
    assert!(
        errors.0[2].to_string().contains("rule 'C'"),
        "{}",
        errors.0[2]
    );
}

#[test]
fn a_rule_without_an_action_is_refused() {
    let text = "rules:\n  - name: A\n    expression: ssl\n";
    assert_eq!(
        first_error(text),
        "waf.yaml:2:5: rule has no 'action'; use block, challenge, rate_limit, log, skip or allow (rule 'A')"
    );
}

#[test]
fn bad_thresholds_are_refused_at_the_threshold() {
    let text = "rules:\n  - name: A\n    expression: ssl\n    action: rate_limit\n    threshold: 100/fortnight\n";
    let error = first_error(text);
    assert!(
        error.starts_with("waf.yaml:5:16: unknown period 'fortnight' in threshold '100/fortnight'"),
        "{error}"
    );
    let text = "rules:\n  - name: A\n    expression: ssl\n    action: rate_limit\n";
    assert!(first_error(text).contains("action rate_limit needs a 'threshold'"));
}

#[test]
fn keys_of_other_actions_are_refused() {
    let text =
        "rules:\n  - name: A\n    expression: ssl\n    action: log\n    threshold: 1/second\n";
    assert!(first_error(text).contains("'threshold' only applies to action rate_limit, not log"));
    let text = "rules:\n  - name: A\n    expression: ssl\n    action: block\n    status: 200\n";
    assert!(first_error(text).contains("HTTP status from 400 to 599"));
}

#[test]
fn bad_values_are_refused() {
    let text = "rules:\n  - name: A\n    expression: ssl\n    action: explode\n";
    assert!(first_error(text).contains("unknown action 'explode'"));
    let text = "rules:\n  - name: A\n    expression: ssl\n    action: log\n    mode: loud\n";
    assert!(first_error(text).contains("expected 'enforce' or 'log' for mode"));
    let text = "rules:\n  - name: A\n    expression: ssl\n    action: log\n    enabled: yes\n";
    assert!(first_error(text).contains("expected true or false for enabled"));
}

#[test]
fn duplicate_names_and_bad_skips_are_refused() {
    let text = "rules:\n  - name: A\n    expression: ssl\n    action: log\n  - name: A\n    expression: ssl\n    action: log\n";
    assert!(first_error(text).contains("same name"));
    let text = "rules:\n  - name: A\n    expression: ssl\n    action: skip\n    skip: [Nope]\n";
    assert!(first_error(text).contains("neither a rule in this file nor a phase"));
    let text = "rules:\n  - name: A\n    expression: ssl\n    action: log\n  - name: B\n    expression: ssl\n    action: skip\n    skip: A\n";
    assert!(first_error(text).contains("runs before this rule"));
    let text = "rules:\n  - name: A\n    expression: ssl\n    action: skip\n";
    assert!(first_error(text).contains("needs a 'skip' list"));
}

#[test]
fn malformed_yaml_is_an_error_with_a_position() {
    let error = first_error("rules:\n  - name: [unclosed\n");
    assert!(error.starts_with("waf.yaml:"), "{error}");
    assert!(error.contains("invalid YAML"), "{error}");
    assert!(first_error("").contains("the file is empty"));
    assert!(first_error("- a\n- b\n").contains("expected 'rules:'"));
    assert!(first_error("rules: 5\n").contains("expected a list of rules"));
    assert!(first_error("rules:\n  - just text\n").contains("expected a rule"));
}

#[test]
fn aliases_and_deep_nesting_are_refused() {
    let text = "rules:\n  - &a\n    name: A\n    expression: ssl\n    action: log\n  - *a\n";
    assert!(first_error(text).contains("aliases"));
    let deep = format!("rules: {}{}\n", "[".repeat(100), "]".repeat(100));
    assert!(first_error(&deep).contains("nested too deeply"));
}

#[test]
fn every_rule_with_a_mistake_is_reported() {
    let text = "rules:\n  - name: A\n    expression: ssl contains 1\n    action: log\n  - name: B\n    expression: nope\n    action: log\n";
    let errors = load(text).expect_err("two bad rules").0;
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[1].rule.as_deref(), Some("B"));
    assert_eq!((errors[1].line, errors[1].column), (6, 17));
}

#[test]
fn empty_rule_lists_load() {
    assert!(load("rules: []\n").expect("loads").rules().is_empty());
    assert!(load("rules:\n").expect("loads").rules().is_empty());
}

#[derive(serde::Deserialize)]
struct Config {
    waf: Waf,
}

#[derive(serde::Deserialize)]
struct Waf {
    rule: Vec<RuleTable>,
}

#[test]
fn toml_tables_load_with_the_same_keys() {
    let source = r#"
[[waf.rule]]
name = "Block SQL Injection"
expression = '(http.request.uri.query contains "union" and http.request.uri.query contains "select")'
action = "block"

[[waf.rule]]
name = "API"
expression = 'http.request.uri.path contains "/api/"'
action = "rate_limit"
threshold = 100
period = "1m"
enabled = true
"#;
    let config: Config = toml::from_str(source).expect("toml");
    let scheme = Scheme::standard();
    let rules = load_tables("palisade.toml", source, &config.waf.rule, &scheme).expect("loads");
    assert_eq!(rules.len(), 2);
    assert_eq!((rules[0].origin.line, rules[0].origin.column), (4, 15));
    let set = RuleSet::from_tables("palisade.toml", source, &config.waf.rule, Arc::new(scheme))
        .expect("set");
    assert_eq!(set.rules()[1].action.name(), "rate_limit");
}

#[test]
fn toml_expression_errors_point_into_the_toml_file() {
    let source = "[[waf.rule]]\nname = \"A\"\nexpression = \"ip.src contains \\\"x\\\"\"\naction = \"block\"\n";
    let config: Config = toml::from_str(source).expect("toml");
    let errors = load_tables(
        "palisade.toml",
        source,
        &config.waf.rule,
        &Scheme::standard(),
    )
    .expect_err("bad");
    assert!(
        errors
            .to_string()
            .starts_with("palisade.toml:3:22: 'contains' needs a string"),
        "{errors}"
    );
    let source = "[[waf.rule]]\nname = \"A\"\nexpression = \"ssl\"\naction = \"rate_limit\"\nthreshold = \"100/fortnight\"\n";
    let config: Config = toml::from_str(source).expect("toml");
    let errors = load_tables(
        "palisade.toml",
        source,
        &config.waf.rule,
        &Scheme::standard(),
    )
    .expect_err("bad");
    assert!(
        errors
            .to_string()
            .starts_with("palisade.toml:5:13: unknown period"),
        "{errors}"
    );
}

#[test]
fn toml_tables_refuse_unknown_keys() {
    let source = "[[waf.rule]]\nname = \"A\"\nexpression = \"ssl\"\naction = \"log\"\nbogus = 1\n";
    assert!(toml::from_str::<Config>(source).is_err());
}

#[test]
fn yaml_rules_can_be_loaded_without_a_rule_set() {
    let rules = load_yaml("waf.yaml", REQUIREMENTS_EXAMPLE, &Scheme::standard()).expect("loads");
    assert_eq!(rules.len(), 3);
}

#[test]
fn plain_multi_line_expressions_map_their_continuation_lines() {
    let text = "rules:\n  - name: A\n    action: log\n    expression: http.host == \"a\"\n      and ip.src contains \"x\"\n";
    let error = first_error(text);
    assert!(
        error.starts_with("waf.yaml:5:18: 'contains' needs a string"),
        "{error}"
    );
}

#[test]
fn windows_line_endings_keep_positions() {
    let text = "rules:\r\n  - name: A\r\n    action: log\r\n    expression: ssl contains \"x\"\r\n";
    let error = first_error(text);
    assert!(
        error.starts_with("waf.yaml:4:21: 'contains' needs a string"),
        "{error}"
    );
}

#[test]
fn a_rules_file_of_ten_thousand_rules_points_at_the_last_line_without_rescanning() {
    // Every expression's position was found by scanning the file from its start: a file of
    // 50,000 rules took minutes to check. Positions now come from the parser or a line
    // index, and must still be exact at the end of a large file.
    let mut text = String::from("rules:\n");
    for i in 0..9_999 {
        text.push_str(&format!(
            "  - name: r{i}\n    expression: http.host eq \"a{i}\"\n    action: block\n"
        ));
    }
    text.push_str("  - name: last\n    expression: http.host eq \"é\" and\n    action: block\n");
    let error = first_error(&text);
    assert!(error.starts_with("waf.yaml:30000:37: "), "{error}");
}
