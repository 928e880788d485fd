//! Fuzzes the readers of client- and upstream-controlled session input: `Cookie` headers
//! (split across several header lines), urlencoded CSRF form fields and the session
//! directive headers. Invariants: no panic; a found cookie value is never longer than the
//! limit asked for; a session cookie is present only when it parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_policy::csrf::form::form_field;
use palisade_policy::session::cookie::{CookieLookup, SessionCookie, find_cookie, read_session_cookie};
use palisade_policy::session::{Directives, SessionSecret, SessionSettings};

fuzz_target!(|data: &[u8]| {
    let settings = SessionSettings::defaults();
    let headers: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();

    if let CookieLookup::Found(value) = find_cookie(headers.iter().copied(), "a", 16) {
        assert!(value.len() <= 16);
    }
    if let SessionCookie::Present(secret) = read_session_cookie(headers.iter().copied(), &settings) {
        let again = SessionSecret::parse(&secret.encode()).expect("own encoding parses");
        assert!(again.hash() == secret.hash());
    }

    let _ = form_field(data, "_csrf");

    let pairs = headers.iter().map(|line| {
        let split = line.iter().position(|&b| b == b':').unwrap_or(line.len());
        let name = std::str::from_utf8(&line[..split]).unwrap_or("x");
        (name, line.get(split + 1..).unwrap_or_default())
    });
    let _ = Directives::from_headers(&settings.headers, pairs);
});
