//! `[state] redis_client_cert` and `redis_client_key`: the certificate `rediss://`
//! connections present to a Redis that checks its clients, as `palisade check` reports them.

use super::*;

const TLS_REDIS: &str = "[state]\nbackend = \"redis\"\nredis_url = \"rediss://127.0.0.1:6380\"\n";

#[test]
fn a_client_certificate_and_its_key_are_resolved_and_checked_together() {
    let (cert, key) = certificate();
    let toml = format!(
        "{TLS_REDIS}redis_client_cert = \"tls/client.pem\"\nredis_client_key = \"tls/client.key\"\n"
    );
    let files: &[(&str, &[u8])] = &[
        ("tls/client.pem", cert.as_bytes()),
        ("tls/client.key", key.as_bytes()),
    ];
    let (result, dir) = load_in_dir(&toml, files);
    let config = result.expect("valid");
    assert_eq!(
        config.state.redis_client_cert,
        Some(dir.path().join("tls/client.pem"))
    );
    assert_eq!(
        config.state.redis_client_key,
        Some(dir.path().join("tls/client.key"))
    );

    // Another certificate's key: refused at the key's line.
    let (_, stranger_key) = certificate();
    let files: &[(&str, &[u8])] = &[
        ("tls/client.pem", cert.as_bytes()),
        ("tls/client.key", stranger_key.as_bytes()),
    ];
    let (result, dir) = load_in_dir(&toml, files);
    let errors = errors_of(result, &dir);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("palisade.toml:5:1: state.redis_client_key: tls/client.key:"),
        "{errors:?}"
    );
    assert!(
        errors[0].contains("not the private key of the client certificate"),
        "{errors:?}"
    );

    // A missing file is named at its own line.
    let (result, dir) = load_in_dir(&toml, &[("tls/client.key", key.as_bytes())]);
    let errors = errors_of(result, &dir);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(
            "palisade.toml:4:1: state.redis_client_cert: tls/client.pem: no such file"
        ),
        "{errors:?}"
    );
}

#[test]
fn a_client_certificate_needs_its_key_and_tls() {
    let message = first_error(&format!("{TLS_REDIS}redis_client_cert = \"c.pem\"\n"));
    assert!(
        message.contains("state.redis_client_key: missing"),
        "{message}"
    );
    let message = first_error(&format!("{TLS_REDIS}redis_client_key = \"c.key\"\n"));
    assert!(
        message.contains("state.redis_client_cert: missing"),
        "{message}"
    );

    let plain = "[state]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\n\
                 redis_client_cert = \"c.pem\"\nredis_client_key = \"c.key\"\n";
    let message = first_error(plain);
    assert!(message.contains("state.redis_client_cert:"), "{message}");
    assert!(message.contains("write rediss://"), "{message}");
}
