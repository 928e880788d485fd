use std::path::Path;
use std::time::Duration;

use palisade_policy::ratelimit::Algorithm;
use tempfile::TempDir;

use super::rate_limit::{AssetFilter, KeySpec, Mode};
use super::*;

mod rate_limit;
mod redis_client_cert;
mod upstream;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(Path::new("palisade.toml"), text)
}

fn first_error(text: &str) -> String {
    parse(text)
        .expect_err("config should be refused")
        .diagnostics[0]
        .to_string()
}

#[test]
fn an_empty_file_gives_the_safe_defaults() {
    let config = parse("").expect("empty config is valid");
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:8080");
    assert!(config.server.trusted_proxies.is_empty());
    assert_eq!(config.admin.listen.to_string(), "127.0.0.1:9090");
    let rules = config.rate_limit_rules();
    let default = rules
        .iter()
        .find(|r| r.name == "default")
        .expect("default rule");
    assert_eq!(default.quota.limit, 10);
    assert_eq!(default.quota.window, Duration::from_secs(10));
    assert_eq!(default.quota.algorithm, Algorithm::SlidingWindow);
    assert_eq!(default.static_assets, AssetFilter::Exclude);
}

#[test]
fn an_empty_rate_limit_array_turns_limits_off() {
    let config = parse("rate_limit = []").expect("valid");
    assert!(config.rate_limit_rules().is_empty());
}

#[test]
fn rate_limit_tables_replace_the_defaults() {
    let config = parse(
        r#"
[[rate_limit]]
name = "login"
path = "/login"
methods = ["post"]
key = "header:X-Api-Key"
algorithm = "token_bucket"
limit = 5
window = "1m"
mode = "log"
allow = ["10.0.0.0/8", "::1"]
"#,
    )
    .expect("valid");
    let rules = config.rate_limit_rules();
    assert_eq!(rules.len(), 1);
    let rule = &rules[0];
    assert_eq!(rule.methods, vec![http::Method::POST]);
    assert_eq!(
        rule.key,
        KeySpec::Header("x-api-key".parse().expect("name"))
    );
    assert_eq!(rule.quota.algorithm, Algorithm::TokenBucket);
    assert_eq!(rule.quota.window, Duration::from_secs(60));
    assert_eq!(rule.mode, Mode::Log);
    assert!(rule.allow[0].contains("10.2.3.4".parse().expect("ip")));
}

#[test]
fn unknown_keys_are_reported_with_line_and_column() {
    let message = first_error("[server]\nlisten = \"127.0.0.1:1\"\nlsiten = 3\n");
    assert!(
        message.starts_with("palisade.toml:3:1: unknown field `lsiten`"),
        "{message}"
    );
    assert!(message.contains("expected one of"), "{message}");
}

#[test]
fn a_host_name_as_listen_address_says_what_is_expected() {
    let message = first_error("[server]\nlisten = \"localhost:8080\"\n");
    assert!(
        message.starts_with("palisade.toml:2:10: invalid listen address"),
        "{message}"
    );
    assert!(message.contains("\"0.0.0.0:8080\""), "{message}");
    let message = first_error("[admin]\nlisten = \"9090\"\n");
    assert!(
        message.contains("expected an IP address and a port"),
        "{message}"
    );
    let config = parse("[server]\nlisten = \"[::1]:8080\"\n").expect("an IPv6 address");
    assert_eq!(config.server.listen.to_string(), "[::1]:8080");
}

#[test]
fn bad_durations_point_at_the_value() {
    let message = first_error("[server]\nheader_read_timeout = \"10 fortnights\"\n");
    assert!(message.starts_with("palisade.toml:2:23:"), "{message}");
    assert!(message.contains("for example"), "{message}");
}

#[test]
fn upstream_urls_must_be_http_or_https_host_and_port() {
    let message = first_error("[upstream]\nurl = \"ftp://x\"\n");
    assert!(
        message.contains("must use http:// or https://"),
        "{message}"
    );
    assert!(first_error("[upstream]\nurl = \"http://x/app\"\n").contains("without a path"));
    let config = parse("[upstream]\nurl = \"http://127.0.0.1:3000\"\n").expect("valid");
    assert_eq!(
        config.upstream.url.map(|u| u.to_string()),
        Some("http://127.0.0.1:3000".into())
    );
}

#[test]
fn flags_override_the_file() {
    let mut config = parse("[server]\nlisten = \"127.0.0.1:1\"\n").expect("valid");
    config.apply(&Overrides {
        listen: Some("127.0.0.1:2".parse().expect("addr")),
        ..Overrides::default()
    });
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:2");
}

#[test]
fn syntax_errors_point_at_the_line() {
    let message = first_error("[server\n");
    assert!(message.starts_with("palisade.toml:1:"), "{message}");
}

/// Regression: serde stops at the first value it cannot read, which hid every later mistake;
/// each broken table is now reported, in file order, with the checks serde cannot make.
#[test]
fn every_broken_table_is_reported_in_file_order() {
    let text = "[server]\nmax_headers = -3\n\n[upstream]\nurl = \"http://127.0.0.1:3000\"\n\
                connect_timeout = 5\n\n[headers]\nbogus = true\n\n[[rate_limit]]\nname = \"x\"\n\
                limit = \"ten\"\n";
    let error = parse(text).expect_err("four mistakes");
    let places: Vec<(usize, usize)> = error
        .diagnostics
        .iter()
        .map(|d| (d.line, d.column))
        .collect();
    assert_eq!(places, vec![(2, 15), (6, 19), (9, 1), (13, 9)], "{error}");
    assert!(
        error.diagnostics[0].to_string().contains("0 or greater"),
        "{error}"
    );
    assert!(
        error.diagnostics[2]
            .to_string()
            .contains("unknown field `bogus`"),
        "{error}"
    );
}

#[test]
fn a_table_written_twice_names_its_first_line() {
    let message = first_error("[server]\nlisten = \"127.0.0.1:1\"\n[server]\nmax_headers = 1\n");
    assert!(message.starts_with("palisade.toml:3:"), "{message}");
    assert!(message.contains("first written on line 1"), "{message}");
}

#[test]
fn trusted_proxies_accept_ranges_and_single_addresses() {
    let config =
        parse("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\"]\n").expect("valid");
    let proxies = &config.server.trusted_proxies;
    assert!(proxies[0].contains("10.9.9.9".parse().expect("ip")));
    assert!(proxies[1].contains("192.0.2.7".parse().expect("ip")));
    assert!(!proxies[1].contains("192.0.2.8".parse().expect("ip")));
    assert!(first_error("[server]\ntrusted_proxies = [\"10.0.0.0/99\"]\n").contains("CIDR"));
}

#[test]
fn redis_credentials_in_the_file_are_refused_at_their_line() {
    let message =
        first_error("[state]\nbackend = \"redis\"\nredis_url = \"redis://:pw@127.0.0.1:6379\"\n");
    assert!(message.starts_with("palisade.toml:3:1:"), "{message}");
    assert!(message.contains("PALISADE_REDIS_URL"), "{message}");
}

#[test]
fn section_validation_errors_point_at_the_section() {
    let message = first_error("[state]\nbackend = \"redis\"\n");
    assert!(
        message.starts_with("palisade.toml:1:1: state.redis_url"),
        "{message}"
    );
}

#[test]
fn headers_section_is_parsed_with_its_defaults() {
    let config = parse("[headers]\nx_xss_protection = \"0\"\n").expect("valid");
    assert!(config.headers.enabled);
    assert!(first_error("[headers]\nx_frame_option = \"DENY\"\n").contains("unknown field"));
}

/// A directory holding `palisade.toml` with `toml` and each `(name, contents)` file; the
/// configuration as `from_file` reads it, and the directory (kept alive by the caller).
fn load_in_dir(toml: &str, files: &[(&str, &[u8])]) -> (Result<Config, ConfigError>, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, contents) in files {
        let file = dir.path().join(name);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(file, contents).expect("write");
    }
    let path = dir.path().join("palisade.toml");
    std::fs::write(&path, toml).expect("write config");
    (Config::from_file(&path), dir)
}

fn errors_of(result: Result<Config, ConfigError>, dir: &TempDir) -> Vec<String> {
    let prefix = format!("{}/", dir.path().display());
    let err = result.expect_err("refused");
    err.diagnostics
        .iter()
        .map(|d| d.to_string().replace(&prefix, ""))
        .collect()
}

const RELATIVE: &str = "is read from the configuration file's directory";

/// A self-signed certificate and its key, in PEM.
fn certificate() -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    (made.cert.pem(), made.signing_key.serialize_pem())
}

#[test]
fn every_relative_path_is_resolved_from_the_configuration_directory() {
    let text = "[server.tls]\ncert = \"tls/c.pem\"\nkey = \"/abs/k.pem\"\n\
                [log]\nsecurity = \"events.log\"\n\
                [session]\nsqlite_path = \"data/s.db\"\n[csrf]\nsecret_file = \"csrf.key\"\n\
                [identity.jwt]\njwks_file = \"keys.json\"\n\
                [waf]\nrules = \"waf.yaml\"\ngeoip_country_db = \"c.mmdb\"\n\
                geoip_asn_db = \"a.mmdb\"\n[waf.challenge]\nsecret_file = \"ch.key\"\n\
                [[upload]]\npath = \"/up\"\nquarantine_dir = \"q\"\n\
                [state]\nredis_ca_file = \"redis-ca.pem\"\n";
    let mut config: Config = toml::from_str(text).expect("valid");
    paths::resolve(&mut config, Path::new("/etc/palisade"));
    let etc = |name: &str| Some(Path::new("/etc/palisade").join(name));
    let tls = config.server.tls.expect("tls");
    assert_eq!(Some(tls.cert), etc("tls/c.pem"));
    assert_eq!(tls.key, Path::new("/abs/k.pem"));
    assert_eq!(
        config.log.security,
        server::LogTarget::File("/etc/palisade/events.log".into())
    );
    assert_eq!(Some(config.session.file.sqlite_path), etc("data/s.db"));
    assert_eq!(config.csrf.file.secret_file, etc("csrf.key"));
    let keys = config.identity.jwt.map(|j| j.keys);
    let jwks = etc("keys.json").map(palisade_policy::identity::KeySource::JwksFile);
    assert_eq!(keys, jwks);
    assert_eq!(config.waf.rules, etc("waf.yaml"));
    assert_eq!(config.waf.geoip_country_db, etc("c.mmdb"));
    assert_eq!(config.waf.geoip_asn_db, etc("a.mmdb"));
    assert_eq!(config.waf.challenge.secret_file, etc("ch.key"));
    assert_eq!(config.upload[0].quarantine_dir, etc("q"));
    assert_eq!(config.state.redis_ca_file, etc("redis-ca.pem"));
}

#[test]
fn files_found_next_to_the_configuration_are_accepted_and_resolved() {
    let (cert, key) = certificate();
    let toml = "[server.tls]\ncert = \"tls/cert.pem\"\nkey = \"tls/key.pem\"\n\
                [log]\nsecurity = \"events.log\"\n[csrf]\nsecret_file = \"csrf.key\"\n\
                [[upload]]\npath = \"/up\"\nquarantine_dir = \"q/refused\"\n";
    let files: &[(&str, &[u8])] = &[
        ("tls/cert.pem", cert.as_bytes()),
        ("tls/key.pem", key.as_bytes()),
        ("csrf.key", &[b'k'; 40]),
    ];
    let (result, dir) = load_in_dir(toml, files);
    let config = result.expect("valid");
    let tls = config.server.tls.expect("tls");
    assert_eq!(tls.cert, dir.path().join("tls/cert.pem"));
    assert_eq!(
        config.uploads.rules[0].quarantine_dir,
        Some(dir.path().join("q/refused"))
    );
    assert_eq!(
        config.session.file.sqlite_path,
        dir.path().join("palisade-sessions.db")
    );
    assert!(
        !dir.path().join("events.log").exists(),
        "check creates nothing"
    );
    assert!(!dir.path().join("q").exists(), "check creates nothing");
}

#[test]
fn missing_files_are_reported_at_the_key_that_names_them() {
    let toml = "[server.tls]\ncert = \"cert.pem\"\nkey = \"/nonexistent/key.pem\"\n\n\
                [log]\nsecurity = \"logs/events.log\"\n\n\
                [session]\nsqlite_path = \"db/s.db\"\n\n\
                [csrf]\nsecret_file = \"csrf.key\"\n\n\
                [identity.jwt]\njwks_file = \"keys.json\"\n\n\
                [[upload]]\npath = \"/up\"\nquarantine_dir = \"plain/q\"\n";
    let (result, dir) = load_in_dir(toml, &[("plain", b"a file, not a directory")]);
    let errors = errors_of(result, &dir);
    let expected = [
        format!(
            "palisade.toml:2:1: server.tls.cert: cert.pem: no such file or directory (the relative path \"cert.pem\" {RELATIVE})"
        ),
        "palisade.toml:3:1: server.tls.key: /nonexistent/key.pem: no such file or directory"
            .to_owned(),
        format!(
            "palisade.toml:6:1: log.security: logs/events.log: cannot create the file in logs: no such file or directory (the relative path \"logs/events.log\" {RELATIVE})"
        ),
        format!(
            "palisade.toml:9:1: session.sqlite_path: db/s.db: cannot create the file in db: no such file or directory (the relative path \"db/s.db\" {RELATIVE})"
        ),
        format!(
            "palisade.toml:12:1: csrf.secret_file: csrf.key: no such file or directory (the relative path \"csrf.key\" {RELATIVE})"
        ),
        format!(
            "palisade.toml:15:1: identity.jwt.jwks_file: keys.json: no such file or directory (the relative path \"keys.json\" {RELATIVE})"
        ),
        format!(
            "palisade.toml:19:18: upload[0].quarantine_dir: plain/q: cannot be created in plain: not a directory (the relative path \"plain/q\" {RELATIVE})"
        ),
    ];
    assert_eq!(errors, expected);
}

#[test]
fn a_directory_where_a_file_belongs_and_a_file_where_a_directory_belongs_are_refused() {
    let toml = "[log]\nsecurity = \"logs\"\n[[upload]]\npath = \"/up\"\n\
                quarantine_dir = \"q\"\n";
    let (result, dir) = load_in_dir(toml, &[("logs/x", b""), ("q", b"")]);
    let errors = errors_of(result, &dir);
    assert!(errors[0].contains("log.security: logs: is a directory, expected a file"));
    assert!(errors[1].contains("upload[0].quarantine_dir: q: not a directory"));
}

#[test]
fn unreadable_secret_files_say_permission_denied() {
    use std::os::unix::fs::PermissionsExt;
    let toml = "[csrf]\nsecret_file = \"csrf.key\"\n";
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = dir.path().join("csrf.key");
    std::fs::write(&secret, [b'k'; 40]).expect("write");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    if std::fs::File::open(&secret).is_ok() {
        return; // root reads anything: nothing to see here
    }
    let result = Config::from_toml(&dir.path().join("palisade.toml"), toml);
    let errors = errors_of(result, &dir);
    assert!(
        errors[0].starts_with("palisade.toml:2:1: csrf.secret_file: csrf.key: permission denied"),
        "{errors:?}"
    );
}

#[test]
fn tls_files_must_hold_a_matching_pem_certificate_and_key() {
    let (cert, key) = certificate();
    let (_, other_key) = certificate();
    let toml = "[server.tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n";
    let files: &[(&str, &[u8])] = &[("cert.pem", b"not pem"), ("key.pem", key.as_bytes())];
    let errors = errors_of(
        load_in_dir(toml, files).0,
        &tempfile::tempdir().expect("dir"),
    );
    assert!(
        errors[0].contains(":2:1: server.tls.cert: cannot load TLS certificate"),
        "{errors:?}"
    );
    let files: &[(&str, &[u8])] = &[("cert.pem", cert.as_bytes()), ("key.pem", b"not pem\n")];
    let errors = errors_of(
        load_in_dir(toml, files).0,
        &tempfile::tempdir().expect("dir"),
    );
    assert!(
        errors[0].contains(":3:1: server.tls.key: cannot load TLS private key from ")
            && errors[0].contains(": no private key in the file (expected a PEM block"),
        "{errors:?}"
    );
    let files: &[(&str, &[u8])] = &[
        ("cert.pem", cert.as_bytes()),
        ("key.pem", other_key.as_bytes()),
    ];
    let errors = errors_of(
        load_in_dir(toml, files).0,
        &tempfile::tempdir().expect("dir"),
    );
    assert!(errors[0].contains(":3:1: server.tls.key: "), "{errors:?}");
    assert!(
        errors[0].contains("does not match the certificate: its public key is not the one"),
        "{errors:?}"
    );
    assert!(!errors[0].contains("KeyMismatch"), "{errors:?}");
    let files: &[(&str, &[u8])] = &[("cert.pem", cert.as_bytes()), ("key.pem", key.as_bytes())];
    load_in_dir(toml, files)
        .0
        .expect("a matching pair is valid");

    let endless = "[server.tls]\ncert = \"/dev/zero\"\nkey = \"key.pem\"\n";
    let files: &[(&str, &[u8])] = &[("key.pem", key.as_bytes())];
    let errors = errors_of(
        load_in_dir(endless, files).0,
        &tempfile::tempdir().expect("dir"),
    );
    assert!(errors[0].contains("/dev/zero: larger than"), "{errors:?}");
}

#[test]
fn secret_and_key_files_are_read_as_serve_reads_them() {
    let toml = "[csrf]\nsecret_file = \"csrf.key\"\n[identity.jwt]\njwks_file = \"keys.json\"\n";
    let files: &[(&str, &[u8])] = &[("csrf.key", b"short\n"), ("keys.json", b"{\"keys\": 3}")];
    let (result, dir) = load_in_dir(toml, files);
    let errors = errors_of(result, &dir);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with("palisade.toml:2:1: csrf.secret_file: csrf.key: "),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("palisade.toml:4:1: identity.jwt.jwks_file: keys.json: "),
        "{errors:?}"
    );
}

/// `workers = 100000` used to pass `check` and then try to start 100000 threads.
#[test]
fn counts_that_size_threads_queues_and_buffers_are_bounded_at_their_key() {
    let text = "[server]\nworkers = 100000\nmax_connections = 0\nmax_headers = 5000\n\
                max_header_size = \"1GB\"\n\n[server.tls]\ncert = \"/c\"\nkey = \"/k\"\n\
                reload_interval = \"0s\"\n\n[upstream]\npool_max_idle = 1000000\n\n\
                [log]\nqueue = 0\n";
    let config: Config = toml::from_str(text).expect("serde reads it");
    let errors: Vec<String> = validate::sections(&config, Path::new("p.toml"), text)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            "p.toml:2:1: server.workers: must be between 0 and 1024 (each is a thread; 0 means \
             one per core), found 100000",
            "p.toml:3:1: server.max_connections: must be between 1 and 1000000 (such as 10000), \
             found 0",
            "p.toml:4:1: server.max_headers: must be between 1 and 1024 (such as 100), found 5000",
            "p.toml:13:1: upstream.pool_max_idle: must be between 0 and 65536 (such as 256), \
             found 1000000",
            "p.toml:16:1: log.queue: must be between 1 and 1048576 (such as 8192), found 0",
            "p.toml:5:1: server.max_header_size: must be between 1B and 1MB, such as \"32KB\"",
            "p.toml:10:1: server.tls.reload_interval: must be longer than 0s, such as \"10s\"",
        ]
    );
    let error = first_error("[server]\nheader_read_timeout = \"0s\"\n");
    assert_eq!(
        error,
        "palisade.toml:2:1: server.header_read_timeout: must be longer than 0s, such as \"10s\""
    );
    let edges = "[server]\nworkers = 1024\nmax_connections = 1000000\nmax_headers = 1024\n\
                 max_header_size = \"1MB\"\n[upstream]\npool_max_idle = 0\n[log]\nqueue = 1\n";
    parse(edges).expect("the limits themselves are valid");
    let error = first_error("[log]\nqueue = 10\nrepeat_window = \"2h\"\n");
    assert_eq!(
        error,
        "palisade.toml:3:1: log.repeat_window: must be at most 1h, such as \"10s\" (\"0s\" \
         writes every event)"
    );
    parse("[log]\nrepeat_window = \"1h\"\n").expect("an hour is valid");
    parse("[log]\nrepeat_window = \"0s\"\n").expect("folding can be turned off");
}

#[test]
fn state_key_bounds_are_capped() {
    let error = first_error("[state]\nmemory_max_keys = 20000000\n");
    assert!(
        error.starts_with("palisade.toml:2:1: state.memory_max_keys: must be at most 10000000"),
        "{error}"
    );
    let error = first_error("[state]\nblocked_cache_max_keys = 20000000\n");
    assert!(error.contains("state.blocked_cache_max_keys"), "{error}");
}

#[test]
fn a_reload_names_each_restart_only_key_it_changes() {
    let old = parse("[server]\nworkers = 1\n[session]\nstore = \"memory\"\n").expect("valid");
    let new = parse(
        "[server]\nworkers = 2\nlisten = \"127.0.0.1:8081\"\nmax_body_size = \"1MB\"\n\
         [admin]\nlisten = \"127.0.0.1:9091\"\n[log]\nqueue = 100\nrepeat_window = \"1m\"\n\
         [state]\nredis_url = \"redis://127.0.0.1:6379\"\n\
         [session]\nstore = \"memory\"\nidle_timeout = \"1d\"\n\
         [identity.jwt]\nsecret_env = \"JWT_SECRET\"\n\
         [[rate_limit]]\nname = \"r\"\nlimit = 5\nwindow = \"1s\"\n",
    )
    .expect("valid");
    let changed = restart::changed_keys(&old, &new);
    assert_eq!(
        changed,
        [
            "server.listen",
            "server.workers",
            "admin.listen",
            "log.queue",
            "log.repeat_window",
            "state.redis_url",
            "session.idle_timeout",
            "identity.jwt",
        ],
        "max_body_size and rate limits apply on reload, so they are not named"
    );
    assert!(restart::changed_keys(&new, &new).is_empty());
}

#[test]
fn a_spool_directory_start_up_would_refuse_or_cannot_create_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let open = dir.path().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let text = format!("[spool]\ndir = \"{}\"\n", open.display());
    let error = first_error(&text);
    assert!(
        error.starts_with("palisade.toml:2:7: spool.dir: upload spool "),
        "{error}"
    );
    assert!(error.contains("writable by other users"), "{error}");

    let text = format!("[spool]\ndir = \"{}\"\n", dir.path().join("a/b").display());
    let error = first_error(&text);
    assert!(error.contains("cannot be created in"), "{error}");
    assert!(error.contains("no such file or directory"), "{error}");

    let text = format!("[spool]\ndir = \"{}\"\n", dir.path().join("new").display());
    parse(&text).expect("a missing directory in a writable parent is created at start-up");
    assert!(!dir.path().join("new").exists(), "check creates nothing");
}

/// A configuration file that cannot be read says why in the words the keys' file checks
/// use, not as the operating system's `No such file or directory (os error 2)`.
#[test]
fn an_unreadable_configuration_file_says_why_in_words() {
    let dir = tempfile::tempdir().expect("dir");
    for (path, why) in [
        (dir.path().join("missing.toml"), "no such file or directory"),
        (dir.path().to_path_buf(), "is a directory, expected a file"),
    ] {
        let err = Config::from_file(&path).expect_err("refused");
        let message = err.diagnostics[0].to_string();
        assert_eq!(
            message,
            format!(
                "{}: cannot read the configuration file: {why}",
                path.display()
            )
        );
    }
}

#[test]
fn a_value_of_the_wrong_type_names_its_key() {
    let message = first_error("[server]\nmax_headers = \"many\"\n");
    assert!(
        message.starts_with("palisade.toml:2:15: invalid type"),
        "{message}"
    );
    assert!(message.ends_with("(key `max_headers`)"), "{message}");
}

#[test]
fn a_redis_ca_file_must_hold_pem_certificates() {
    let (cert, _) = certificate();
    let toml = "[state]\nbackend = \"redis\"\nredis_url = \"rediss://127.0.0.1:6380\"\n\
                redis_ca_file = \"redis/ca.pem\"\n";
    let files: &[(&str, &[u8])] = &[("redis/ca.pem", cert.as_bytes())];
    let (result, dir) = load_in_dir(toml, files);
    let config = result.expect("valid");
    let resolved = config.state.redis_ca_file.expect("set");
    assert_eq!(resolved, dir.path().join("redis/ca.pem"));

    let (result, dir) = load_in_dir(toml, &[]);
    let errors = errors_of(result, &dir);
    assert_eq!(
        errors,
        [format!(
            "palisade.toml:4:1: state.redis_ca_file: redis/ca.pem: no such file or directory (the relative path \"redis/ca.pem\" {RELATIVE})"
        )]
    );
    let (result, dir) = load_in_dir(toml, &[("redis/ca.pem", b"not a certificate\n")]);
    let errors = errors_of(result, &dir);
    assert!(
        errors[0].starts_with(
            "palisade.toml:4:1: state.redis_ca_file: redis/ca.pem: no certificate found"
        ),
        "{errors:?}"
    );
}

#[test]
fn redis_tls_without_verification_is_refused_at_its_line() {
    let message = first_error(
        "[state]\nbackend = \"redis\"\nredis_url = \"rediss://127.0.0.1:6380/#insecure\"\n",
    );
    assert!(
        message.starts_with("palisade.toml:3:1: state.redis_url:"),
        "{message}"
    );
    assert!(message.contains("always verifies"), "{message}");
}

#[test]
fn a_ca_for_a_plain_text_session_redis_is_refused() {
    let (cert, _) = certificate();
    let toml = "[state]\nredis_ca_file = \"ca.pem\"\n\
                [session]\nstore = \"redis\"\nredis_url = \"redis://db:6379\"\n";
    let (result, dir) = load_in_dir(toml, &[("ca.pem", cert.as_bytes())]);
    let errors = errors_of(result, &dir);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("palisade.toml:2:1: state.redis_ca_file:"),
        "{errors:?}"
    );
    assert!(errors[0].contains("write rediss://"), "{errors:?}");
}

/// Sessions take `[state]`'s Redis URL whatever the backend; with `backend = "memory"` it
/// was not checked, so `#insecure` there passed `check` (and only failed at start-up).
#[test]
fn the_state_redis_url_sessions_use_is_checked_when_rate_limits_keep_to_memory() {
    let message = first_error(
        "[state]\nredis_url = \"rediss://db:6380/#insecure\"\n[session]\nstore = \"redis\"\n",
    );
    assert!(
        message.starts_with("palisade.toml:2:1: state.redis_url: rediss://...#insecure"),
        "{message}"
    );
}

/// Regression: with rate limits in memory and sessions in Redis, a plain-text
/// `PALISADE_REDIS_URL=redis://:pw@db:6379` beside `redis_ca_file` and a `rediss://`
/// `[session] redis_url` was taken without a word: sessions (and their password) went over
/// plain text and the CA was silently unused.
#[test]
fn a_plain_text_redis_url_from_the_environment_does_not_drop_the_sessions_tls() {
    let (cert, _) = certificate();
    let toml = "[state]\nredis_ca_file = \"ca.pem\"\n\
                [session]\nstore = \"redis\"\nredis_url = \"rediss://db:6380\"\n";
    let (result, _dir) = load_in_dir(toml, &[("ca.pem", cert.as_bytes())]);
    let mut config = result.expect("the file alone is valid");
    let error = config
        .use_redis_url("redis://:hunter2@db:6379".into())
        .expect_err("plain text beside a CA");
    assert!(
        error.starts_with("state.redis_ca_file:") && error.contains(REDIS_URL_ENV),
        "{error}"
    );
    assert!(!error.contains("hunter2"), "{error}");
    config
        .use_redis_url("rediss://:hunter2@db:6380".into())
        .expect("TLS with the CA");
}

/// `PALISADE_REDIS_URL` set but empty (`PALISADE_REDIS_URL=${UNSET}` in a compose file),
/// upper case or `#insecure`: refused for sessions as for rate limits, and the error names
/// the variable rather than the file's `redis_url`, which may be fine.
#[test]
fn the_environments_redis_url_is_checked_for_sessions_and_named_in_errors() {
    let mut config = parse("[session]\nstore = \"redis\"\n").expect("valid");
    for (url, expected) in [
        ("", "expected a URL starting with redis://"),
        (
            "REDISS://:hunter2@db:6380",
            "expected a URL starting with redis://",
        ),
        ("rediss://:hunter2@db:6380/#insecure", "#insecure"),
    ] {
        let error = config.use_redis_url(url.into()).expect_err(url);
        assert!(
            error.starts_with("PALISADE_REDIS_URL: ") && error.contains(expected),
            "{error}"
        );
        assert!(!error.contains("hunter2"), "{error}");
    }
    let toml = "[state]\nbackend = \"redis\"\nredis_url = \"redis://db:6379\"\n";
    let mut config = parse(toml).expect("valid");
    let error = config.use_redis_url(String::new()).expect_err("empty");
    assert!(error.starts_with("PALISADE_REDIS_URL: expected"), "{error}");
}

/// The errors of loading `toml` from a directory in which `fifo` is a named pipe with no
/// writer; fails if loading waits for one.
fn errors_with_a_fifo(toml: &str, fifo: &str) -> Vec<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let status = std::process::Command::new("mkfifo")
        .arg(dir.path().join(fifo))
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
    let path = dir.path().join("palisade.toml");
    std::fs::write(&path, toml).expect("write config");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(Config::from_file(&path));
    });
    let result = receiver
        .recv_timeout(Duration::from_secs(10))
        .expect("the check ends without a writer on the pipe");
    errors_of(result, &dir)
}

/// Regression: a file key naming a FIFO (`redis_ca_file = "ca.pem"` where `ca.pem` is a
/// named pipe) hung `palisade check`, and a reload, in `open` waiting for a writer.
#[test]
fn a_named_pipe_for_a_file_is_refused_without_waiting_for_a_writer() {
    let toml = "[state]\nbackend = \"redis\"\nredis_url = \"rediss://127.0.0.1:6380\"\n\
                redis_ca_file = \"ca.pem\"\n";
    let errors = errors_with_a_fifo(toml, "ca.pem");
    assert_eq!(
        errors,
        [format!(
            "palisade.toml:4:1: state.redis_ca_file: ca.pem: is a named pipe (FIFO), expected a \
             file (the relative path \"ca.pem\" {RELATIVE})"
        )]
    );
}
