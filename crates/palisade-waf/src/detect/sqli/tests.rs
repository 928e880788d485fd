use super::*;

fn score(text: &str) -> Option<u8> {
    detect(text).map(|h| h.score)
}

fn blocked(text: &str) -> bool {
    score(text).is_some_and(|s| s <= 20)
}

#[test]
fn breaking_out_of_a_string_with_a_tautology_is_certain() {
    assert!(score("1' OR '1'='1").is_some_and(|s| s <= 6));
    assert!(score("x\") or (\"a\"=\"a").is_some_and(|s| s <= 8));
    assert!(blocked("admin'--"));
    assert!(blocked("admin')#"));
}

#[test]
fn numeric_context_tautologies_are_recognised() {
    assert!(blocked("1234 OR 1=1"));
    assert!(blocked("1) or (1=1"));
    assert!(blocked("-1 and 2>1"));
}

#[test]
fn union_select_is_recognised_in_every_disguise() {
    assert!(score("1 UNION SELECT username, password FROM users").is_some_and(|s| s <= 6));
    assert!(blocked("1 uNiOn/**/sElEcT 1,2,3"));
    assert!(blocked("1 union all select null--"));
    assert!(blocked("-1 /*!50000union*/ /*!50000select*/ 1"));
}

#[test]
fn stacked_queries_and_time_delays_are_recognised() {
    assert!(blocked("1; DROP TABLE users"));
    assert!(blocked("x'; exec master..xp_cmdshell 'dir'--"));
    assert!(blocked("1 and sleep(5)"));
    assert!(blocked("BENCHMARK(5000000,MD5(1))"));
    assert!(blocked("foo')waitfor delay'0:0:5'--"));
}

#[test]
fn catalogue_and_file_access_are_recognised() {
    assert!(blocked("1 and 1=(select 1 from information_schema.tables)"));
    assert!(blocked("' into outfile '/var/www/x.php"));
    assert!(blocked("pg_catalog"));
}

#[test]
fn typographic_quotes_do_not_hide_a_break() {
    let decoded =
        crate::normalize::decode("1’ OR ’1’=’1".as_bytes(), crate::normalize::Plus::Literal).0;
    assert!(blocked(&decoded));
}

#[test]
fn nosql_operators_in_names_and_keys_are_recognised() {
    assert!(blocked("u_id[$ne]"));
    assert!(blocked("$where"));
    assert!(!blocked("$existingUser"));
}

#[test]
fn names_with_apostrophes_are_not_injection() {
    for text in [
        "O'Brien",
        "D'Arcy O'Neill",
        "it's my parents' house",
        "rock 'n' roll",
        "Bob's or Alice's",
    ] {
        assert!(!blocked(text), "{text}");
    }
}

#[test]
fn prose_with_sql_words_stays_below_the_default_threshold() {
    for text in [
        "Please select one option from the list below",
        "The union will drop the proposal",
        "I sleep well",
        "having fun",
        "mother or daughter",
        "Die Union von Europa",
        "and 7 oranges",
    ] {
        assert!(!blocked(text), "{text}");
    }
}

#[test]
fn unequal_literal_comparisons_are_not_tautologies() {
    assert!(blocked("1=1"));
    assert!(!blocked("11=1"));
    assert!(!blocked("123<456"));
}

#[test]
fn prose_with_apostrophes_and_sql_words_is_not_blocked() {
    let text =
        "select the union of both lists, then drop the old script from the table. It's easy!";
    assert!(!blocked(text));
    assert!(!blocked(
        "O'Brien's team will select two players from the union, then drop one"
    ));
    assert!(blocked(
        "x' union select password, 1 from users -- It's easy"
    ));
    assert!(!blocked("I'd select the blue one; drop me a line"));
    assert!(blocked("1; drop table users"));
    assert!(blocked("1; select * from users"));
    assert!(blocked(";update users"));
}

#[test]
fn a_lone_keyword_in_odd_case_is_not_injection() {
    assert!(!blocked("uNiOn"), "{:?}", score("uNiOn"));
    assert!(!blocked("SeLeCt"), "{:?}", score("SeLeCt"));
    assert!(blocked("uNiOn SeLeCt password FrOm users"));
    assert!(blocked("1 oRdEr By 3"));
}

#[test]
fn prose_shaped_like_sql_is_not_blocked() {
    for text in [
        "what's 'select'?",
        "'select' is a keyword",
        "is 'drop' a reserved word",
        "what does 'union all' mean in sql",
        "the word 'from' in a sentence",
        "she said 'delete it' and left",
        "O'Brien's \"union\" remarks",
        "1=1 math",
        "price < 100 and rating > 4",
        "temperature < 20 and humidity > 80",
        "price > 50 or rating < 3",
        "a=1 and b=2",
        "if a = 1 or b = 2 then ok",
        "the sleep(8) song",
        "I can't sleep(at all) lately",
        "case when it rains",
        "1 = 1 is always true in math",
        "I typed 1' into the box and got an error",
        "\"union\" is a word, and so is \"select\"",
    ] {
        assert!(!blocked(text), "{text}: {:?}", detect(text));
    }
}

#[test]
fn attacks_next_to_the_prose_look_alikes_stay_blocked() {
    for text in [
        "' or 1=1--",
        "1=1",
        "1 and 1=1",
        "1 and rating > 4",
        "x' union select 'a",
        "x 'union select'1",
        "admin' union all select null--",
        "'; select 'a",
        "' select * from users--",
        "1 and sleep(5)",
        "sleep(5)#",
        "' or sleep(5)='",
        "1) or sleep(5) or (1",
        "1 and case when 1=1 then 1 else 0 end",
        "case when condition1 then result1",
        "x' order by 1--",
        "' into outfile '/var/www/x.php",
        "1' or 1 is not null--",
        "1 or x is null",
        "x' from users where 1=1",
    ] {
        assert!(blocked(text), "{text}: {:?}", detect(text));
    }
}
