//! `palisade rules eval` and `palisade check` on rules files, through the real binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::config_file;

const REQUIREMENTS: &str = r#"rules:
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

fn palisade(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .output()
        .expect("palisade runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A directory with `palisade.toml` (naming `waf.yaml` and the test geo database) and
/// `waf.yaml` holding `rules`.
fn files(rules: &str) -> (PathBuf, PathBuf) {
    let shared = std::env::var_os("PALISADE_SHARED").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
        PathBuf::from,
    );
    let geo = shared.join("fixtures/geoip/GeoLite2-Country-Test.mmdb");
    let config = config_file(&format!(
        "[waf]\nrules = \"waf.yaml\"\ngeoip_country_db = \"{}\"\n",
        geo.display()
    ));
    let yaml = config.with_file_name("waf.yaml");
    std::fs::write(&yaml, rules).expect("rules");
    (config, yaml)
}

#[test]
fn eval_prints_the_matching_rule_its_action_and_the_verdict() {
    let (_, yaml) = files(REQUIREMENTS);
    let yaml = yaml.to_str().expect("utf-8 path");
    let request = "GET /search?q=union+select HTTP/1.1";
    let (ok, out, err) = palisade(&["rules", "eval", "--rules", yaml, "--request", request]);
    assert!(ok, "{err}");
    assert!(
        out.contains("matched: Block SQL Injection -> block (403)"),
        "{out}"
    );
    assert!(
        out.contains("http.request.uri.query = q=union+select"),
        "{out}"
    );
    assert!(out.contains("verdict: block 403"), "{out}");

    let request = "GET /search?q=union HTTP/1.1";
    let (_, out, _) = palisade(&["rules", "eval", "--rules", yaml, "--request", request]);
    assert!(
        out.contains("no rule matched") && out.contains("verdict: continue"),
        "{out}"
    );
}

/// Without a source the usage error used to name only `--rules`, hiding `--config`.
#[test]
fn eval_without_rules_names_both_ways_to_give_them() {
    let (ok, _, err) = palisade(&["rules", "eval", "--request", "GET /"]);
    assert!(!ok);
    assert!(err.contains("--rules <RULES>|--config <CONFIG>"), "{err}");
    let (ok, _, err) = palisade(&["rules", "eval", "--rules", "a", "--config", "b"]);
    assert!(!ok);
    assert!(err.contains("cannot be used with"), "{err}");
}

/// A rules file that cannot be read is named with the wording `check` uses, and an endless
/// one is refused instead of read until memory runs out.
#[test]
fn eval_names_an_unreadable_rules_file_and_refuses_an_endless_one() {
    let (ok, _, err) = palisade(&[
        "rules",
        "eval",
        "--rules",
        "/nonexistent/waf.yaml",
        "--request",
        "GET /",
    ]);
    assert!(!ok);
    assert!(
        err.contains(
            "/nonexistent/waf.yaml: cannot read the rules file: no such file or directory"
        ),
        "{err}"
    );
    let (ok, _, err) = palisade(&[
        "rules",
        "eval",
        "--rules",
        "/dev/zero",
        "--request",
        "GET /",
    ]);
    assert!(!ok);
    assert!(
        err.contains("/dev/zero: cannot read the rules file: larger than"),
        "{err}"
    );
}

#[test]
fn eval_reads_headers_bodies_and_the_client_address() {
    let rules = r#"rules:
  - name: Debug header
    expression: http.request.headers["x-debug"][0] eq "1" and ip.src in {10.0.0.0/8}
    action: log
  - name: Body
    expression: http.request.body.raw contains "DROP TABLE"
    action: block
    status: 400
"#;
    let (_, yaml) = files(rules);
    let body = yaml.with_file_name("body.txt");
    std::fs::write(&body, "x=1; DROP TABLE users").expect("body");
    let body_arg = format!("@{}", body.display());
    let (ok, out, err) = palisade(&[
        "rules",
        "eval",
        "--rules",
        yaml.to_str().expect("path"),
        "--request",
        "POST /q",
        "--header",
        "X-Debug: 1",
        "--ip",
        "10.1.2.3",
        "--body",
        &body_arg,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("matched: Debug header -> log"), "{out}");
    assert!(out.contains("verdict: block 400 (rule 'Body')"), "{out}");
}

#[test]
fn eval_with_a_config_uses_its_geo_database() {
    let (config, _) = files(REQUIREMENTS);
    let config = config.to_str().expect("path");
    let (ok, out, err) = palisade(&[
        "rules",
        "eval",
        "--config",
        config,
        "--request",
        "GET /",
        "--ip",
        "111.235.160.9",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("ip.src.country = CN"), "{out}");
    assert!(
        out.contains("verdict: challenge (rule 'Geo-blocking (if needed)')"),
        "{out}"
    );
}

#[test]
fn check_validates_the_rules_file_with_file_line_and_column() {
    let (config, yaml) = files(REQUIREMENTS);
    let config = config.to_str().expect("path");
    let (ok, out, _) = palisade(&["check", "--config", config]);
    assert!(ok && out.ends_with(": ok\n"), "{out}");

    let broken = REQUIREMENTS.replace("contains \"select\"", "contains 42");
    std::fs::write(&yaml, broken).expect("rules");
    let (ok, _, err) = palisade(&["check", "--config", config]);
    assert!(!ok);
    let expected = format!(
        "{}:3:94: expected a string after 'contains', found 42 (rule 'Block SQL Injection')",
        yaml.display()
    );
    assert!(err.contains(&expected), "{err}");

    std::fs::write(&yaml, REQUIREMENTS.replace("100/minute", "100/fortnight")).expect("rules");
    let (ok, _, err) = palisade(&["check", "--config", config]);
    assert!(
        !ok && err.contains(":8:16: unknown period 'fortnight'"),
        "{err}"
    );

    let (ok, _, err) = palisade(&[
        "rules",
        "eval",
        "--rules",
        yaml.to_str().expect("p"),
        "--request",
        "GET /",
    ]);
    assert!(
        !ok && err.contains("fortnight"),
        "eval refuses a broken file too: {err}"
    );
}

#[test]
fn serving_geo_rules_without_a_database_warns_once_at_start() {
    let config =
        config_file("rate_limit = []\n[waf]\nrules = \"waf.yaml\"\n[log]\nsecurity = \"off\"\n");
    std::fs::write(config.with_file_name("waf.yaml"), REQUIREMENTS).expect("rules");
    // `check` says so too, before anything is deployed, and still passes the file.
    let (ok, out, err) = palisade(&["check", "--config", config.to_str().expect("path")]);
    assert!(ok && out.ends_with(": ok\n"), "{out}");
    for warning in [
        "warning: a WAF rule reads ip.src.country",
        "warning: no challenge secret",
        "warning: no [[rate_limit]] tables (rate_limit = []): only the WAF rules with action",
    ] {
        assert!(err.contains(warning), "{warning}: {err}");
    }
    let (proxy, admin) = (common::free_port(), common::free_port());
    let stderr = config.with_file_name("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["serve", "--upstream", "http://127.0.0.1:9", "--config"])
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{proxy}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("palisade starts");
    let mut log = String::new();
    for _ in 0..100 {
        log = std::fs::read_to_string(&stderr).unwrap_or_default();
        if log.contains("palisade started") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(log.contains("palisade started"), "{log}");
    assert_eq!(
        log.matches("geoip_country_db is not set").count(),
        1,
        "{log}"
    );
    assert!(log.contains("no challenge secret"), "{log}");
}
