//! `[upstream]`: `https://` URLs and `ca_file`, as `palisade check` reports them.

use super::*;

#[test]
fn https_upstreams_default_to_port_443_and_print_their_scheme() {
    let config = parse("[upstream]\nurl = \"https://app.example.com\"\n").expect("valid");
    let url = config.upstream.url.expect("set");
    assert!(url.tls);
    assert_eq!(url.host(), "app.example.com");
    assert_eq!(url.connect_address(), "app.example.com:443");
    assert_eq!(url.to_string(), "https://app.example.com");

    let plain: UpstreamUrl = "http://app.internal".parse().expect("valid");
    assert!(!plain.tls);
    assert_eq!(plain.connect_address(), "app.internal:80");
    assert_eq!(plain.to_string(), "http://app.internal");

    let v6: UpstreamUrl = "https://[::1]:8443".parse().expect("valid");
    assert_eq!(v6.host(), "::1");
    assert_eq!(v6.connect_address(), "[::1]:8443");
}

#[test]
fn upstream_urls_with_a_path_or_user_name_are_refused_at_their_line() {
    let message = first_error("[upstream]\nurl = \"https://app.example.com/v1\"\n");
    assert!(message.starts_with("palisade.toml:2:7: "), "{message}");
    assert!(message.contains("without a path"), "{message}");
    let message = first_error("[upstream]\nurl = \"https://me:pw@app.example.com\"\n");
    assert!(message.contains("user name"), "{message}");
    // Regression: a fragment was dropped without a word.
    let message = first_error("[upstream]\nurl = \"https://app.example.com#v1\"\n");
    assert!(message.contains("fragment"), "{message}");
    let message = first_error("[upstream]\nurl = \"wss://app.example.com\"\n");
    assert!(
        message.contains("must use http:// or https://"),
        "{message}"
    );
}

#[test]
fn an_upstream_ca_file_is_resolved_and_must_hold_pem_certificates() {
    let (cert, _) = certificate();
    let toml = "[upstream]\nurl = \"https://app.internal:8443\"\nca_file = \"tls/app-ca.pem\"\n";
    let files: &[(&str, &[u8])] = &[("tls/app-ca.pem", cert.as_bytes())];
    let (result, dir) = load_in_dir(toml, files);
    let config = result.expect("valid");
    assert_eq!(
        config.upstream.ca_file,
        Some(dir.path().join("tls/app-ca.pem"))
    );

    let (result, dir) = load_in_dir(toml, &[]);
    assert_eq!(
        errors_of(result, &dir),
        [format!(
            "palisade.toml:3:1: upstream.ca_file: tls/app-ca.pem: no such file or directory \
             (the relative path \"tls/app-ca.pem\" {RELATIVE})"
        )]
    );
    let (result, dir) = load_in_dir(toml, &[("tls/app-ca.pem", b"not a certificate\n")]);
    let errors = errors_of(result, &dir);
    assert!(
        errors[0]
            .starts_with("palisade.toml:3:1: upstream.ca_file: tls/app-ca.pem: no certificate"),
        "{errors:?}"
    );
}

#[test]
fn an_upstream_ca_file_named_pipe_is_refused_without_waiting_for_a_writer() {
    let toml = "[upstream]\nurl = \"https://app.internal\"\nca_file = \"ca.pem\"\n";
    let errors = errors_with_a_fifo(toml, "ca.pem");
    assert!(
        errors[0].starts_with("palisade.toml:3:1: upstream.ca_file: ca.pem: is a named pipe"),
        "{errors:?}"
    );
}

/// A CA says TLS was meant: beside `http://` the requests would go out in the clear.
#[test]
fn an_upstream_ca_file_beside_an_http_url_is_refused() {
    let (cert, _) = certificate();
    let toml = "[upstream]\nurl = \"http://app.internal\"\nca_file = \"ca.pem\"\n";
    let (result, dir) = load_in_dir(toml, &[("ca.pem", cert.as_bytes())]);
    let errors = errors_of(result, &dir);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(
            "palisade.toml:3:1: upstream.ca_file: is set but the upstream URL \
                               is http://"
        ),
        "{errors:?}"
    );

    // The same when the http:// URL comes from --upstream over a file written for https.
    let toml = "[upstream]\nurl = \"https://app.internal\"\nca_file = \"ca.pem\"\n";
    let (result, dir) = load_in_dir(toml, &[("ca.pem", cert.as_bytes())]);
    result.expect("valid as written");
    let source = ConfigSource {
        file: Some(dir.path().join("palisade.toml")),
        overrides: Overrides {
            upstream: Some("http://127.0.0.1:3000".parse().expect("url")),
            ..Overrides::default()
        },
    };
    let message = source.load().expect_err("refused").to_string();
    assert!(
        message.contains("upstream.ca_file: is set but"),
        "{message}"
    );
    // Regression: the message said "the upstream URL is http://" of a file that says
    // https://, without naming the flag that replaced it.
    assert!(message.contains("--upstream"), "{message}");
}

/// Regression: a port that is not a number from 1 to 65535 (`:99999`, `:65536`, `:+443`,
/// `:`) was accepted by `palisade check` and the URL then connected to the scheme's default
/// port (443 or 80), a service the operator never named; port 0 passed and refused every
/// connection.
#[test]
fn upstream_urls_with_a_port_that_is_not_1_to_65535_are_refused() {
    for url in [
        "https://127.0.0.1:99999",
        "http://127.0.0.1:99999",
        "https://app.internal:65536",
        "https://127.0.0.1:+443",
        "https://127.0.0.1:",
        "https://[::1]:",
        "http://127.0.0.1:0",
        "https://127.0.0.1:00",
    ] {
        let err = url.parse::<UpstreamUrl>().expect_err(url);
        assert!(err.contains("port from 1 to 65535"), "{url}: {err}");
    }
    for (url, port) in [
        ("https://127.0.0.1:8443", 8443),
        ("https://[::1]:65535", 65535),
        ("http://app.internal:1", 1),
    ] {
        let parsed: UpstreamUrl = url.parse().expect(url);
        assert_eq!(parsed.port(), port, "{url}");
    }
}

/// Regression: an `https://` host that cannot be a TLS server name (empty, a label starting
/// with `-`, an IPv6 zone) passed `palisade check` and only `serve` refused it.
#[test]
fn https_upstream_hosts_that_are_no_tls_server_name_are_refused_by_check() {
    for url in [
        "https://:443",
        "https://-bad-.example",
        "https://[fe80::1%25eth0]:8443",
    ] {
        let message = first_error(&format!("[upstream]\nurl = \"{url}\"\n"));
        assert!(message.starts_with("palisade.toml:2:7: "), "{message}");
        assert!(
            message.contains("not a valid host name or IP address"),
            "{message}"
        );
    }
    let message = first_error("[upstream]\nurl = \"http://:8080\"\n");
    assert!(
        message.contains("not a valid host name or IP address"),
        "{message}"
    );
}

/// Regression: an upstream URL with a password was refused, but the message repeated it
/// (`palisade check`'s output, serve's start-up error in the service log).
#[test]
fn a_refused_upstream_url_never_repeats_its_password() {
    for url in [
        "https://me:hunter2@app.example.com",
        "http://me:hunter2@app.example.com/v1",
        "ftp://me:hunter2@app.example.com",
        "https://me:hunter2@@app.example.com",
        "https://me:hunter2@app.example.com:99999",
        "https://me:hunter2@",
        "https://me:hun/ter2@app.example.com",
        "https://me:hunter2#@app.example.com",
    ] {
        let err = url.parse::<UpstreamUrl>().expect_err(url);
        assert!(
            !err.contains("hunter2") && !err.contains("ter2"),
            "{url}: {err}"
        );
        let message = first_error(&format!("[upstream]\nurl = \"{url}\"\n"));
        assert!(!message.contains("ter2"), "{url}: {message}");
    }
}

#[test]
fn the_upstream_protocol_is_http1_unless_http2_is_asked_for() {
    let config = parse("[upstream]\nurl = \"http://app.internal\"\n").expect("valid");
    assert_eq!(config.upstream.protocol, UpstreamProtocol::Http1);
    let config =
        parse("[upstream]\nurl = \"https://app.internal\"\nprotocol = \"http2\"\n").expect("valid");
    assert_eq!(config.upstream.protocol, UpstreamProtocol::Http2);
    assert_eq!(config.upstream.protocol.name(), "http2");

    let message = first_error("[upstream]\nurl = \"http://app.internal\"\nprotocol = \"h2\"\n");
    assert!(message.starts_with("palisade.toml:3:12: "), "{message}");
    assert!(
        message.contains("http1") && message.contains("http2"),
        "{message}"
    );
}

/// `[upstream] client_cert` and `client_key`: resolved, checked together (the key the
/// certificate's), both or neither, and only with `https://`.
#[test]
fn an_upstream_client_certificate_is_checked_with_its_key_and_needs_https() {
    let (cert, key) = certificate();
    let toml = "[upstream]\nurl = \"https://app.internal\"\n\
                client_cert = \"tls/client.pem\"\nclient_key = \"tls/client.key\"\n";
    let files: &[(&str, &[u8])] = &[
        ("tls/client.pem", cert.as_bytes()),
        ("tls/client.key", key.as_bytes()),
    ];
    let (result, dir) = load_in_dir(toml, files);
    let config = result.expect("valid");
    assert_eq!(
        config.upstream.client_cert,
        Some(dir.path().join("tls/client.pem"))
    );
    assert_eq!(
        config.upstream.client_key,
        Some(dir.path().join("tls/client.key"))
    );

    let (_, stranger_key) = certificate();
    let files: &[(&str, &[u8])] = &[
        ("tls/client.pem", cert.as_bytes()),
        ("tls/client.key", stranger_key.as_bytes()),
    ];
    let (result, dir) = load_in_dir(toml, files);
    let errors = errors_of(result, &dir);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("palisade.toml:4:1: upstream.client_key: tls/client.key:")
            && errors[0].contains("not the private key of the client certificate"),
        "{errors:?}"
    );

    let message = first_error(
        "[upstream]\nurl = \"https://app.internal\"\nclient_cert = \"tls/client.pem\"\n",
    );
    assert!(
        message.starts_with("palisade.toml:3:1: upstream.client_key: missing"),
        "{message}"
    );
    let message = first_error(
        "[upstream]\nurl = \"https://app.internal\"\nclient_key = \"tls/client.key\"\n",
    );
    assert!(
        message.contains("upstream.client_cert: missing"),
        "{message}"
    );

    let plain = "[upstream]\nurl = \"http://app.internal\"\n\
                 client_cert = \"tls/client.pem\"\nclient_key = \"tls/client.key\"\n";
    let (result, dir) = load_in_dir(plain, files);
    let errors = errors_of(result, &dir);
    for (line, key) in [(3, "client_cert"), (4, "client_key")] {
        let expected = format!(
            "palisade.toml:{line}:1: upstream.{key}: is set but the upstream URL is http://"
        );
        assert!(
            errors.iter().any(|e| e.starts_with(&expected)),
            "{errors:?}"
        );
    }
}
