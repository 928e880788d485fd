//! The events' names, fields and JSON lines.

use super::*;

fn request() -> RequestInfo {
    RequestInfo {
        id: RequestId::new(1, 1),
        client_ip: "192.0.2.1".parse().expect("ip"),
        method: http::Method::POST,
        path: "/login".into(),
        user_id: None,
    }
}

#[test]
fn field_names_are_written_quoted_and_one_needing_an_escape_is_refused() {
    let mut text = String::new();
    let mut object = JsonObject::new(&mut text);
    object.num(key!("a.b"), 1);
    object.str(key!("c"), "d");
    object.num_named("waf.score.\"x", 2);
    object.finish();
    assert_eq!(text, r#"{"a.b":1,"c":"d","waf.score.\"x":2}"#);
    for bad in [",\"a\"b\":", ",\"a\\b\":", ",\"a\nb\":", "\"ab\":"] {
        assert!(
            std::panic::catch_unwind(|| Key::new(bad)).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn a_failed_tls_reload_is_named_apart_from_a_successful_one() {
    let failed = Event::TlsReloaded {
        ok: false,
        detail: "no private key in the file".into(),
    };
    let done = Event::TlsReloaded {
        ok: true,
        detail: String::new(),
    };
    assert_eq!(failed.name(), "tls.rejected");
    assert_eq!(done.name(), "tls.reloaded");
}

#[test]
fn rate_limit_events_have_stable_dotted_fields() {
    let event = Event::RateLimited {
        request: request(),
        rule: "default".into(),
        enforced: true,
        limit: 10,
        retry_after_secs: 4,
    };
    let json = Value::Object(event.to_json());
    assert_eq!(json["event"], "rate_limit.exceeded");
    assert_eq!(json["client.ip"], "192.0.2.1");
    assert_eq!(json["url.path"], "/login");
    assert_eq!(json["rule.name"], "default");
    assert_eq!(json["rate_limit.enforced"], true);
}

/// A path longer than a log line should be is cut (at a character's boundary), and
/// the whole length said beside it.
#[test]
fn long_paths_are_cut_in_events() {
    let mut long = request();
    long.path = format!("/{}", "é".repeat(40_000));
    let event = Event::RequestFailed {
        request: long,
        source: "client",
        kind: "uri_too_long",
        status: 414,
    };
    let json = Value::Object(event.to_json());
    let path = json["url.path"].as_str().expect("a path");
    assert!(
        path.len() <= MAX_LOGGED_PATH && path.len() > MAX_LOGGED_PATH - 2,
        "{}",
        path.len()
    );
    assert!(path.starts_with("/éé"));
    assert_eq!(json["url.path_length"], 80_001);
    let short = Value::Object(
        Event::RequestFailed {
            request: request(),
            source: "client",
            kind: "bad_framing",
            status: 400,
        }
        .to_json(),
    );
    assert_eq!(short["url.path"], "/login");
    assert!(short.get("url.path_length").is_none());
}

#[test]
fn strings_with_quotes_and_control_characters_stay_valid_json() {
    let event = Event::ConfigRejected {
        file: "a\"b\\c\n\u{1}.toml".into(),
        errors: vec!["x \"y\"".into()],
    };
    let json = Value::Object(event.to_json());
    assert_eq!(json["config.file"], "a\"b\\c\n\u{1}.toml");
    assert_eq!(json["config.errors"][0], "x \"y\"");
}

/// Escapes are found wherever they fall: in a 16-byte block, at its edges, or in the
/// bytes after the last whole block.
#[test]
fn escapes_are_found_at_every_position() {
    for len in [1, 15, 16, 17, 31, 32, 33, 40] {
        for at in 0..len {
            for special in ['"', '\\', '\n', '\u{1f}'] {
                let mut text: String = "a".repeat(len);
                text.replace_range(at..=at, &special.to_string());
                let mut out = String::new();
                escape_into(&mut out, &text);
                let expected = serde_json::to_string(&text).expect("json");
                assert_eq!(out, expected, "{len} {at} {special:?}");
            }
        }
        let plain = "b".repeat(len);
        assert!(!needs_escape(&plain));
    }
}

#[test]
fn upload_refusals_carry_the_signature_and_the_file() {
    let event = Event::UploadRefused {
        request: request(),
        refusal: crate::upload::UploadEvent {
            reason: "malware",
            status: 422,
            field: Some("doc".into()),
            filename: Some("notes.txt".into()),
            detail: "clamd found Eicar-Test".into(),
            signature: Some("Eicar-Test".into()),
            quarantined: None,
        },
    };
    let json = Value::Object(event.to_json());
    assert_eq!(json["event"], "upload.refused");
    assert_eq!(json["upload.reason"], "malware");
    assert_eq!(json["upload.signature"], "Eicar-Test");
    assert_eq!(json["upload.filename"], "notes.txt");
    assert_eq!(json["http.status"], 422);
    assert!(json.get("upload.quarantined").is_none());
}

#[test]
fn the_metrics_sink_counts_events_by_name() {
    let metrics = Arc::new(Metrics::default());
    let bus = EventBus::new(vec![Arc::new(MetricsSink(Arc::clone(&metrics)))]);
    bus.publish(Event::StateRecovered { backend: "redis" });
    assert_eq!(metrics.events.value(&["state.recovered"]), 1);
}
