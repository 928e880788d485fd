//! Rule evaluation order and the meaning of each action and mode.

mod common;
use std::sync::Arc;

use common::request;
use palisade_expr::request::{RequestFields, RequestInfo};
use palisade_expr::{Phase, RuleSet, Scheme, Verdict};

fn set(text: &str) -> RuleSet {
    RuleSet::from_yaml("waf.yaml", text, Arc::new(Scheme::standard()))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn rule(name: &str, expression: &str, action: &str, extra: &str) -> String {
    format!("  - name: {name}\n    expression: '{expression}'\n    action: {action}\n{extra}")
}

fn names<'r>(outcome: &palisade_expr::Outcome<'r>) -> Vec<&'r str> {
    outcome
        .matches
        .iter()
        .map(|m| m.rule.name.as_str())
        .collect()
}

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

fn run<'r>(set: &'r RuleSet, req: &RequestInfo) -> palisade_expr::Outcome<'r> {
    set.evaluate(&RequestFields::new(req))
}

#[test]
fn union_select_is_blocked_and_one_word_alone_is_not() {
    let rules = set(REQUIREMENTS_EXAMPLE);
    let outcome = run(&rules, &request("/search?q=union+select"));
    assert!(matches!(
        outcome.verdict,
        Verdict::Block { status: 403, .. }
    ));
    assert_eq!(
        outcome.verdict.rule().map(|r| r.name.as_str()),
        Some("Block SQL Injection")
    );
    let decided = &outcome.matches[0].decided;
    assert_eq!(decided[0].field, "http.request.uri.query");
    assert_eq!(decided[0].value, "q=union+select");
    assert!(matches!(
        run(&rules, &request("/search?q=union")).verdict,
        Verdict::Continue
    ));
    assert!(matches!(
        run(&rules, &request("/search?q=select")).verdict,
        Verdict::Continue
    ));
}

#[test]
fn api_paths_ask_for_the_rules_rate_limit() {
    let rules = set(REQUIREMENTS_EXAMPLE);
    let outcome = run(&rules, &request("/api/items"));
    assert!(matches!(outcome.verdict, Verdict::Continue));
    assert_eq!(outcome.rate_limits.len(), 1);
    let limit = &outcome.rate_limits[0];
    assert_eq!(
        (
            limit.rule.name.as_str(),
            limit.threshold.limit,
            limit.enforce
        ),
        ("Rate Limit API", 100, true)
    );
    assert_eq!(limit.threshold.to_string(), "100/minute");
}

#[test]
fn listed_countries_get_the_challenge() {
    let rules = set(REQUIREMENTS_EXAMPLE);
    let mut req = request("/");
    req.country = Some("CN".into());
    let outcome = run(&rules, &req);
    assert!(
        matches!(outcome.verdict, Verdict::Challenge(r) if r.name == "Geo-blocking (if needed)")
    );
    assert_eq!(outcome.matches[0].decided[0].value, "CN");
}

#[test]
fn a_cleared_client_passes_challenge_rules_and_later_rules_still_run() {
    let text = format!(
        "rules:\n{}{}{}",
        rule("Challenge", "ssl", "challenge", ""),
        rule("Log", "ssl", "log", ""),
        rule("Block", "ssl", "block", ""),
    );
    let rules = set(&text);
    let mut req = request("/");
    req.tls = true;
    let provider = RequestFields::new(&req);
    let cx = rules.context(&provider);
    let first = rules.evaluate_in(&cx);
    assert!(matches!(first.verdict, Verdict::Challenge(r) if r.name == "Challenge"));
    let cleared = rules.evaluate_cleared_in(&cx);
    assert_eq!(names(&cleared), ["Challenge", "Log", "Block"]);
    assert!(matches!(cleared.verdict, Verdict::Block { rule, .. } if rule.name == "Block"));
}

#[test]
fn block_ends_evaluation_and_log_goes_on() {
    let text = format!(
        "rules:\n{}{}{}",
        rule("Log", "ssl", "log", ""),
        rule(
            "Block",
            "ssl",
            "block",
            "    status: 418\n    body: no tea\n"
        ),
        rule("Never", "ssl", "log", ""),
    );
    let rules = set(&text);
    let outcome = run(&rules, &request("/"));
    assert_eq!(names(&outcome), ["Log", "Block"]);
    assert!(matches!(
        outcome.verdict,
        Verdict::Block {
            status: 418,
            body: Some("no tea"),
            ..
        }
    ));
}

#[test]
fn allow_ends_rule_evaluation() {
    let text = format!(
        "rules:\n{}{}",
        rule("Allow", "ssl", "allow", ""),
        rule("Block", "ssl", "block", "")
    );
    let rules = set(&text);
    let outcome = run(&rules, &request("/"));
    assert!(matches!(outcome.verdict, Verdict::Allow(r) if r.name == "Allow"));
    assert_eq!(names(&outcome), ["Allow"]);
}

#[test]
fn log_mode_records_without_acting() {
    let text = format!(
        "rules:\n{}{}",
        rule("Would block", "ssl", "block", "    mode: log\n"),
        rule(
            "Would limit",
            "ssl",
            "rate_limit",
            "    threshold: 1/second\n    mode: log\n"
        ),
    );
    let rules = set(&text);
    let outcome = run(&rules, &request("/"));
    assert!(matches!(outcome.verdict, Verdict::Continue));
    assert_eq!(names(&outcome), ["Would block", "Would limit"]);
    assert!(outcome.matches.iter().all(|m| !m.enforced));
    assert!(!outcome.rate_limits[0].enforce);
}

#[test]
fn disabled_rules_never_run_and_their_fields_are_not_needed() {
    let text = format!(
        "rules:\n{}",
        rule(
            "Off",
            "http.request.body.raw contains \"x\"",
            "block",
            "    enabled: false\n"
        )
    );
    let rules = set(&text);
    assert!(!rules.needs_body());
    let mut req = request("/");
    req.body = Some(palisade_expr::request::Body::complete(b"x".to_vec()));
    assert!(run(&rules, &req).matches.is_empty());
}

#[test]
fn body_rules_make_the_set_need_the_body() {
    let text = format!(
        "rules:\n{}",
        rule("Body", "http.request.body.raw contains \"x\"", "block", "")
    );
    assert!(set(&text).needs_body());
}

#[test]
fn skip_skips_named_rules_and_reports_phases() {
    let text = format!(
        "rules:\n{}{}{}",
        rule(
            "Trusted",
            "ip.src in {203.0.113.0/24}",
            "skip",
            "    skip: [Block, managed, csrf]\n"
        ),
        rule("Block", "ssl", "block", ""),
        rule("Log", "ssl", "log", ""),
    );
    let rules = set(&text);
    let outcome = run(&rules, &request("/"));
    assert_eq!(names(&outcome), ["Trusted", "Log"]);
    assert!(matches!(outcome.verdict, Verdict::Continue));
    assert_eq!(outcome.skipped_phases, [Phase::Managed, Phase::Csrf]);
}

#[test]
fn skipping_the_rules_phase_ends_rule_evaluation() {
    let text = format!(
        "rules:\n{}{}",
        rule("Trusted", "ssl", "skip", "    skip: rules\n"),
        rule("Block", "ssl", "block", ""),
    );
    let rules = set(&text);
    let outcome = run(&rules, &request("/"));
    assert_eq!(names(&outcome), ["Trusted"]);
    assert!(matches!(outcome.verdict, Verdict::Continue));
}

#[test]
fn decided_fields_name_the_true_side_of_an_or() {
    let text = format!(
        "rules:\n{}",
        rule(
            "Either",
            r#"http.host == "nope" or http.request.headers["user-agent"][0] contains "Firefox""#,
            "log",
            ""
        )
    );
    let rules = set(&text);
    let outcome = run(&rules, &request("/"));
    let decided = &outcome.matches[0].decided;
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0].field, r#"http.request.headers["user-agent"][0]"#);
}

#[test]
fn long_values_are_cut_in_decided_fields() {
    let text = format!(
        "rules:\n{}",
        rule("Long", r#"http.request.uri.query contains "a""#, "log", "")
    );
    let rules = set(&text);
    let long = format!("/?{}", "a".repeat(5000));
    let outcome = run(&rules, &request(&long));
    assert!(outcome.matches[0].decided[0].value.len() < 300);
    assert!(outcome.matches[0].decided[0].value.ends_with("..."));
}

#[test]
fn an_empty_set_continues() {
    let rules = RuleSet::empty(Arc::new(Scheme::standard()));
    assert!(matches!(
        run(&rules, &request("/")).verdict,
        Verdict::Continue
    ));
}

#[test]
fn shared_call_results_give_every_rule_the_right_answer() {
    let text = format!(
        "rules:\n{}{}{}{}",
        rule(
            "A",
            r#"lower(http.request.uri.query) contains "zzz""#,
            "log",
            ""
        ),
        rule(
            "B",
            r#"url_decode(http.request.uri.query) contains "a b""#,
            "log",
            ""
        ),
        rule(
            "C",
            r#"lower(http.request.uri.query) contains "union""#,
            "log",
            ""
        ),
        rule(
            "D",
            r#"any(lower(http.request.uri.args.names[*]) == "q")"#,
            "log",
            ""
        ),
    );
    let rules = set(&text);
    let outcome = run(&rules, &request("/?Q=UNION%20x&w=a+b"));
    assert_eq!(names(&outcome), ["B", "C", "D"]);
    let outcome = run(&rules, &request("/?zzz"));
    assert_eq!(names(&outcome), ["A"]);
}

#[test]
fn a_context_of_another_rule_set_does_not_lend_its_shared_results() {
    let a = set(&format!(
        "rules:\n{}",
        rule("A", r#"lower(http.host) == "shop.example""#, "log", "")
    ));
    let b = set(&format!(
        "rules:\n{}",
        rule(
            "B",
            r#"lower(http.user_agent) == "shop.example""#,
            "log",
            ""
        )
    ));
    let req = request("/");
    let fields = RequestFields::new(&req);
    let cx = a.context(&fields);
    assert_eq!(a.evaluate_in(&cx).matches.len(), 1);
    assert!(b.evaluate_in(&cx).matches.is_empty());
}

#[test]
fn shared_star_results_still_mean_one_value_per_element() {
    let text = format!(
        "rules:\n{}{}",
        rule(
            "Names",
            r#"any(lower(http.request.uri.args.names[*]) == "q")"#,
            "log",
            ""
        ),
        rule(
            "Lengths",
            r#"all(len(lower(http.request.uri.args.names[*])) == 1)"#,
            "log",
            ""
        ),
    );
    let rules = set(&text);
    assert_eq!(
        names(&run(&rules, &request("/?Q=1&w=2"))),
        ["Names", "Lengths"]
    );
    assert_eq!(names(&run(&rules, &request("/?Q=1&ww=2"))), ["Names"]);
}

#[test]
fn single_map_entries_are_looked_up_without_building_the_map() {
    let text = format!(
        "rules:\n{}{}",
        rule(
            "Key",
            r#"http.request.headers["x-api-key"][0] == "k1""#,
            "log",
            ""
        ),
        rule(
            "Star",
            r#"any(http.request.headers["accept"][*] contains "json")"#,
            "log",
            ""
        ),
    );
    let rules = set(&text);
    let req = request("/").with_header("X-Api-Key", "k1");
    let fields = RequestFields::new(&req);
    let cx = rules.context(&fields);
    assert_eq!(names(&rules.evaluate_in(&cx)), ["Key", "Star"]);
    let headers = rules
        .scheme()
        .lookup("http.request.headers")
        .expect("field")
        .id();
    assert!(!cx.is_computed(headers));
}

#[test]
fn entry_lookups_agree_with_whole_maps() {
    let expressions = [
        r#"http.request.headers["accept"][1] == "application/json""#,
        r#"http.request.headers["Accept"][0] == "text/html""#,
        r#"http.request.cookies["theme"][0] == "dark""#,
        r#"http.request.uri.args["tag"][1] == "b""#,
        r#"len(http.request.uri.args["none"]) == 0"#,
        r#"http.request.body.form["user"][0] == "admin""#,
    ];
    let mut req = common::form_post("/?tag=a&tag=b", "user=ad%6din");
    req.headers
        .push(("accept".into(), b"application/json".to_vec()));
    for expression in expressions {
        let text = format!("rules:\n{}", rule("R", expression, "log", ""));
        let shared = !run(&set(&text), &req).matches.is_empty();
        let alone = common::eval(expression, &req);
        assert_eq!(shared, alone, "{expression}");
    }
}
