//! Every standard field computed from a request description, and the CLI request form.

mod common;
use common::{eval, form_post, request};
use palisade_expr::request::{Body, RequestFields, RequestFormError, RequestInfo};
use palisade_expr::{
    Context, Expression, FieldDef, FieldProvider, Scheme, StandardField, Type, Value,
};

fn value(req: &RequestInfo, field: StandardField) -> Value {
    req.standard_value(field)
}

fn text(s: &str) -> Value {
    Value::from(s)
}

#[test]
fn uri_fields_split_path_query_and_arguments_without_decoding() {
    let req = request("/Search/Index.PHP?q=a%20b&x&q=c#frag");
    assert_eq!(
        value(&req, StandardField::Uri),
        text("/Search/Index.PHP?q=a%20b&x&q=c")
    );
    assert_eq!(
        value(&req, StandardField::UriPath),
        text("/Search/Index.PHP")
    );
    assert_eq!(value(&req, StandardField::UriPathExtension), text("php"));
    assert_eq!(value(&req, StandardField::UriQuery), text("q=a%20b&x&q=c"));
    assert!(eval(r#"http.request.uri.args["q"][0] == "a%20b""#, &req));
    assert!(eval(r#"http.request.uri.args["q"][1] == "c""#, &req));
    assert!(eval(r#"http.request.uri.args["x"][0] == """#, &req));
    assert!(eval(r#"http.request.uri.args.names[1] == "x""#, &req));
    assert!(eval(r#"http.request.uri.args.values[2] == "c""#, &req));
}

#[test]
fn full_uri_uses_the_scheme_of_the_connection_and_the_host_header() {
    let mut req = request("/a?b=1");
    assert_eq!(
        value(&req, StandardField::FullUri),
        text("https://shop.example/a?b=1")
    );
    req.tls = false;
    assert_eq!(
        value(&req, StandardField::FullUri),
        text("http://shop.example/a?b=1")
    );
}

#[test]
fn absolute_targets_give_path_and_host() {
    let req = RequestInfo::from_cli("GET https://api.example:8443/v1?x=1", &[], None, None)
        .expect("request");
    assert!(req.tls);
    assert_eq!(value(&req, StandardField::UriPath), text("/v1"));
    assert_eq!(value(&req, StandardField::Host), text("api.example"));
    assert_eq!(
        value(&req, StandardField::FullUri),
        text("https://api.example:8443/v1?x=1")
    );
}

#[test]
fn empty_query_and_path_without_extension_are_empty_strings() {
    let req = request("/plain");
    assert_eq!(value(&req, StandardField::UriQuery), text(""));
    assert_eq!(value(&req, StandardField::UriPathExtension), text(""));
    assert!(eval("len(http.request.uri.args) == 0", &req));
    assert!(eval(r#"http.request.uri.query == """#, &req));
}

#[test]
fn header_fields_read_names_case_insensitively_and_keep_order() {
    let req = request("/");
    assert_eq!(value(&req, StandardField::Method), text("GET"));
    assert_eq!(value(&req, StandardField::Version), text("HTTP/1.1"));
    assert_eq!(value(&req, StandardField::Host), text("shop.example"));
    assert_eq!(
        value(&req, StandardField::Referer),
        text("https://shop.example/")
    );
    assert!(eval(r#"http.user_agent contains "Firefox""#, &req));
    assert!(eval(r#"http.request.headers.names[0] == "Host""#, &req));
    assert!(eval(
        r#"http.request.headers.values[0] == "shop.example""#,
        &req
    ));
    assert!(eval(r#"len(http.request.headers["accept"]) == 2"#, &req));
}

#[test]
fn missing_headers_make_empty_strings_and_absent_keys() {
    let req = RequestInfo::get("/", "192.0.2.1".parse().expect("ip"));
    assert!(eval(r#"http.user_agent == """#, &req));
    assert!(eval(
        r#"http.referer == "" and http.cookie == "" and http.host == """#,
        &req
    ));
    assert!(eval("len(http.request.cookies) == 0", &req));
    assert!(!eval(
        r#"http.request.headers["user-agent"][0] == """#,
        &req
    ));
}

#[test]
fn cookies_split_into_a_map_and_join_into_http_cookie() {
    let req = request("/").with_header("cookie", "a=1;b=2; a=3 ; flag");
    assert_eq!(
        value(&req, StandardField::Cookie),
        text("session=abc123; theme=dark; a=1;b=2; a=3 ; flag")
    );
    assert!(eval(r#"http.request.cookies["a"][1] == "3""#, &req));
    assert!(eval(r#"http.request.cookies["flag"][0] == """#, &req));
    assert!(eval(
        r#"http.request.cookies["session"][0] == "abc123""#,
        &req
    ));
}

#[test]
fn body_fields_report_size_and_truncation() {
    let mut req = form_post("/f", "a=1");
    req.body = Some(Body {
        prefix: b"a=1".to_vec(),
        size: 5000,
        truncated: true,
    });
    assert!(eval(
        "http.request.body.truncated and http.request.body.size == 5000",
        &req
    ));
    assert!(eval(r#"http.request.body.raw == "a=1""#, &req));
}

#[test]
fn non_form_bodies_have_an_empty_form() {
    let mut req = form_post("/f", "a=1");
    req.headers.retain(|(n, _)| n != "Content-Type");
    req.headers
        .push(("Content-Type".into(), b"application/json".to_vec()));
    assert!(eval("len(http.request.body.form) == 0", &req));
    let req = form_post("/f", "a=1").with_header("X", "y");
    assert!(eval(r#"http.request.body.form["a"][0] == "1""#, &req));
}

#[test]
fn body_size_without_a_body_comes_from_content_length() {
    let req = request("/").with_header("Content-Length", "1234");
    assert!(eval("http.request.body.size == 1234", &req));
}

#[test]
fn network_fields_come_from_the_connection_and_geo_lookup() {
    let mut req = request("/");
    assert!(eval("ip.src == 203.0.113.9 and ssl", &req));
    assert!(eval(
        r#"ip.src.country == "DE" and ip.geoip.country == "DE""#,
        &req
    ));
    assert!(eval(
        "ip.src.asnum == 3320 and ip.geoip.asnum == 3320",
        &req
    ));
    req.country = None;
    req.asn = None;
    assert!(eval(
        r#"ip.geoip.country == "" and ip.geoip.asnum == 0"#,
        &req
    ));
}

#[test]
fn user_id_is_empty_until_a_session_names_one() {
    let mut req = request("/");
    assert!(eval(r#"palisade.user.id == """#, &req));
    req.user_id = Some("u-42".into());
    assert!(eval(r#"palisade.user.id == "u-42""#, &req));
}

#[test]
fn the_cli_request_form_parses_request_line_headers_and_body() {
    let req = RequestInfo::from_cli(
        "POST /search?q=union+select HTTP/2",
        &[
            "Content-Type: application/x-www-form-urlencoded",
            "X-Test:  spaced ",
        ],
        Some(b"a=b".to_vec()),
        Some("198.51.100.7".parse().expect("ip")),
    )
    .expect("request");
    assert_eq!(req.method, "POST");
    assert_eq!(req.version, "HTTP/2");
    assert_eq!(req.header("x-test"), Some(&b"spaced"[..]));
    assert!(eval(
        r#"http.request.body.form["a"][0] == "b" and ip.src == 198.51.100.7"#,
        &req
    ));
    let req = RequestInfo::from_cli("GET /", &[], None, None).expect("request");
    assert_eq!(req.version, "HTTP/1.1");
    assert!(eval("ip.src == 127.0.0.1 and not ssl", &req));
}

#[test]
fn the_cli_request_form_refuses_malformed_input() {
    assert!(matches!(
        RequestInfo::from_cli("GET", &[], None, None),
        Err(RequestFormError::RequestLine(_))
    ));
    assert!(matches!(
        RequestInfo::from_cli("GET nopath", &[], None, None),
        Err(RequestFormError::RequestLine(_))
    ));
    assert!(matches!(
        RequestInfo::from_cli("GET / HTTP/1.1 x", &[], None, None),
        Err(RequestFormError::RequestLine(_))
    ));
    assert!(matches!(
        RequestInfo::from_cli("GET / FTP", &[], None, None),
        Err(RequestFormError::RequestLine(_))
    ));
    assert!(matches!(
        RequestInfo::from_cli("GET /", &["NoColon"], None, None),
        Err(RequestFormError::Header(_))
    ));
    assert!(matches!(
        RequestInfo::from_cli("GET /", &[": v"], None, None),
        Err(RequestFormError::Header(_))
    ));
}

/// A provider that counts how often each field is asked for.
struct Counting<'r> {
    inner: RequestFields<'r>,
    asked: std::cell::RefCell<Vec<String>>,
}

impl FieldProvider for Counting<'_> {
    fn value(&self, field: &FieldDef) -> Option<Value> {
        self.asked.borrow_mut().push(field.name().to_owned());
        if field.name() == "waf.score.sqli" {
            return Some(Value::Int(90));
        }
        self.inner.value(field)
    }
}

#[test]
fn fields_are_computed_once_and_only_when_read() {
    let mut scheme = Scheme::standard();
    scheme
        .add_field("waf.score.sqli", Type::Int)
        .expect("new field");
    let req = request("/?q=1");
    let provider = Counting {
        inner: RequestFields::new(&req),
        asked: Default::default(),
    };
    let cx = Context::new(&scheme, &provider);
    let a = Expression::compile(
        r#"http.request.uri.query contains "q" and waf.score.sqli > 50"#,
        &scheme,
    )
    .expect("a");
    let b = Expression::compile(
        r#"http.request.uri.query contains "zz" or not ssl"#,
        &scheme,
    )
    .expect("b");
    assert!(a.matches(&cx));
    assert!(!b.matches(&cx));
    assert!(a.matches(&cx));
    assert_eq!(
        *provider.asked.borrow(),
        ["http.request.uri.query", "waf.score.sqli", "ssl"]
    );
    let body = scheme.lookup("http.request.body.raw").expect("field").id();
    assert!(!cx.is_computed(body));
}

#[test]
fn values_of_the_wrong_type_from_a_provider_count_as_missing() {
    struct Wrong;
    impl FieldProvider for Wrong {
        fn value(&self, _: &FieldDef) -> Option<Value> {
            Some(Value::Int(1))
        }
    }
    let scheme = Scheme::standard();
    let cx = Context::new(&scheme, &Wrong);
    let e = Expression::compile(r#"not http.host == "x""#, &scheme).expect("compiles");
    assert!(e.matches(&cx));
}

/// Red-team finding: `starts_with(http.request.uri.path, "/admin")` was dodged by spelling the
/// path another way. The path, uri and full_uri fields now see one spelling.
#[test]
fn path_fields_see_one_spelling_of_the_path_and_keep_the_query_as_sent() {
    for spelling in ["//admin", "/%61dmin", "/x/../admin", "/./admin", "/admin;x"] {
        let req = request(&format!("{spelling}?q=%2e%2E"));
        assert_eq!(
            value(&req, StandardField::UriPath),
            text("/admin"),
            "{spelling}"
        );
        assert_eq!(value(&req, StandardField::Uri), text("/admin?q=%2e%2E"));
        assert_eq!(
            value(&req, StandardField::FullUri),
            text("https://shop.example/admin?q=%2e%2E")
        );
        assert_eq!(value(&req, StandardField::UriQuery), text("q=%2e%2E"));
    }
    let shouting = request("/ADMIN");
    assert_eq!(value(&shouting, StandardField::UriPath), text("/ADMIN"));
    assert!(eval(
        r#"starts_with(lower(http.request.uri.path), "/admin")"#,
        &shouting
    ));
}

#[test]
fn a_page_dressed_as_an_asset_has_no_asset_extension() {
    let req = request("/api/items;.css");
    assert_eq!(value(&req, StandardField::UriPathExtension), text(""));
}

#[test]
fn host_is_lower_case_without_port_or_trailing_dot() {
    for spelling in [
        "admin.internal",
        "ADMIN.internal",
        "admin.internal.",
        "admin.internal:80",
    ] {
        let req =
            RequestInfo::get("/", "127.0.0.1".parse().expect("ip")).with_header("Host", spelling);
        assert!(eval(r#"http.host eq "admin.internal""#, &req), "{spelling}");
        assert_eq!(
            value(&req, StandardField::FullUri),
            text("http://admin.internal/")
        );
    }
}
