use http::HeaderMap;

use super::*;

#[test]
fn only_same_origin_paths_are_returned_to() {
    for good in ["/", "/search?q=a+b", "/a/b%20c?x=1&y=2", "/api/v1/items"] {
        assert_eq!(safe_return_path(good), good);
    }
    for bad in [
        "",
        "//evil.example/",
        "/\\evil.example/",
        "/a\\b",
        "https://evil.example/",
        "javascript:alert(1)",
        "evil.example",
        "/a\r\nSet-Cookie: x=1",
        "/a b",
        "/caf\u{e9}",
        "/.palisade/challenge",
    ] {
        assert_eq!(safe_return_path(bad), "/", "{bad:?}");
    }
    let long = format!("/{}", "a".repeat(MAX_RETURN_PATH));
    assert_eq!(safe_return_path(&long), "/");
}

#[test]
fn the_answer_form_is_decoded() {
    let form = AnswerForm::parse(b"token=p1.1.2.x.y&nonce=42&return=%2Fsearch%3Fq%3Da%2Bb&x=1");
    assert_eq!(form.token, "p1.1.2.x.y");
    assert_eq!(form.nonce, "42");
    assert_eq!(form.return_to, "/search?q=a+b");
    let odd = AnswerForm::parse(b"return=%zz+%2&nonce&token=%ff");
    assert_eq!(odd.return_to, "%zz %2");
    assert_eq!(odd.nonce, "");
    assert_eq!(odd.token, "", "not UTF-8");
}

#[test]
fn clearance_cookies_are_found_among_others() {
    let mut headers = HeaderMap::new();
    headers.append(
        COOKIE,
        HeaderValue::from_static("a=1; palisade_clearance=c1.2.x"),
    );
    headers.append(
        COOKIE,
        HeaderValue::from_static("palisade_clearance=\"c1.3.y\";b=2"),
    );
    headers.append(COOKIE, HeaderValue::from_static("xpalisade_clearance=no"));
    let found: Vec<&str> = clearance_cookies(&headers).collect();
    assert_eq!(found, ["c1.2.x", "c1.3.y"]);
}
