use super::*;

fn score(text: &str) -> Option<u8> {
    detect(text, &text.to_lowercase(), false).map(|h| h.score)
}

fn blocked(text: &str) -> bool {
    score(text).is_some_and(|s| s <= 20)
}

#[test]
fn open_tags_with_code_are_certain() {
    assert!(score("<?php system($_GET['c']); ?>").is_some_and(|s| s <= 5));
    assert!(blocked("<?= `id` ?>"));
}

#[test]
fn calls_survive_comments_and_whitespace_before_the_parenthesis() {
    assert!(blocked("eval($_POST['x'])"));
    assert!(blocked("exec /*x*/ ('id')"));
    assert!(blocked("system\n('id')"));
}

#[test]
fn calls_through_strings_arrays_and_variables_are_recognised() {
    assert!(blocked("(system)('uname');"));
    assert!(blocked("\"sys\".\"tem\"('id');"));
    assert!(blocked("[system][0](ls);"));
    assert!(blocked("$f(1)"));
    assert!(blocked("${'_GET'}"));
}

#[test]
fn wrappers_and_serialised_objects_are_recognised() {
    assert!(blocked(
        "php://filter/convert.base64-encode/resource=index.php"
    ));
    assert!(blocked("O:8:\"stdClass\":0:{}"));
    assert!(blocked("$_SERVER['HTTP_HOST'];"));
}

#[test]
fn executable_upload_names_are_recognised() {
    assert!(detect_filename("shell.php").is_some());
    assert!(detect_filename("avatar.php.jpg").is_some());
    assert!(detect_filename("x.phtml").is_some());
    assert_eq!(detect_filename("holiday.jpg"), None);
    assert_eq!(detect_filename("notes.phpinfo.txt"), None);
}

#[test]
fn ordinary_text_is_not_php() {
    for text in [
        "filemtime is a word",
        "the files (yep)",
        "(foo)bar or foo(bar)",
        "[a link](https://example.com)",
        "price $5 (approx)",
        "<?xml version=\"1.0\"?>",
    ] {
        assert!(!blocked(text), "{text}");
    }
}

#[test]
fn a_text_full_of_dollars_and_braces_is_read_in_linear_time_and_still_judged() {
    // Every `$` read the rest of the text (`${${${...`): 16 KB took seconds.
    let noise = "${".repeat(8000);
    assert!(score(&noise).is_none_or(|s| s > 10), "{:?}", score(&noise));
    let attack = format!("{}$$x{{'a'}}('id')", "a ".repeat(3000));
    assert!(score(&attack).is_some());
    assert_eq!(dollar("$$x{'a'}('id')").map(|h| h.score), Some(10));
}

#[test]
fn a_long_text_of_parentheses_is_not_read_once_per_parenthesis() {
    // Every `(` searched the rest of the text before the length check: 8 KB of `()` took
    // seconds. Short callable expressions are still found.
    assert!(callable_expression(&"()".repeat(4000)).is_none());
    assert!(callable_expression("(system)('id')").is_some());
}

#[test]
fn a_sentence_about_the_open_tag_is_not_code() {
    assert!(!blocked("the <?php tag is not closing"));
    for code in [
        "<?php system($_GET['c']); ?>",
        "<?php echo 'hi'; ?> example",
        "<?php system ls -la",
    ] {
        assert!(blocked(code), "{code}: {:?}", score(code));
    }
}
