//! Finding the CSRF token in an `application/x-www-form-urlencoded` body, for classic HTML
//! forms that cannot set a header.

use super::token::MAX_TOKEN_LEN;

/// Whether a `Content-Type` value announces an urlencoded form.
pub fn is_urlencoded(content_type: &[u8]) -> bool {
    let essence = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default();
    essence
        .trim_ascii()
        .eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
}

/// The first value of `field` in an urlencoded body, percent-decoded; `None` when absent,
/// undecodable, or longer than a token can be.
pub fn form_field(body: &[u8], field: &str) -> Option<String> {
    body.split(|&b| b == b'&').find_map(|pair| {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &b""[..]),
        };
        if name.len() > field.len() * 3 || decode(name)? != field.as_bytes() {
            return None;
        }
        if value.len() > MAX_TOKEN_LEN * 3 {
            return None;
        }
        String::from_utf8(decode(value)?).ok()
    })
}

/// `application/x-www-form-urlencoded` decoding (WHATWG URL §5.1): `+` is a space and
/// `%XX` a byte; a malformed escape makes the whole value unusable.
fn decode(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    let mut bytes = input.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex(*bytes.next()?)?;
                let lo = hex(*bytes.next()?)?;
                out.push(hi << 4 | lo);
            }
            _ => out.push(b),
        }
    }
    Some(out)
}

fn hex(d: u8) -> Option<u8> {
    char::from(d)
        .to_digit(16)
        .and_then(|v| u8::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_token_field_among_others() {
        let body = b"name=Zo%C3%AB&_csrf=abc.def.g-h_i&x=1";
        assert_eq!(form_field(body, "_csrf").as_deref(), Some("abc.def.g-h_i"));
        assert_eq!(form_field(b"%5Fcsrf=t", "_csrf").as_deref(), Some("t"));
        assert_eq!(form_field(b"csrf=t", "_csrf"), None);
    }

    #[test]
    fn broken_escapes_and_huge_values_are_not_tokens() {
        assert_eq!(form_field(b"_csrf=%zz", "_csrf"), None);
        assert_eq!(form_field(b"_csrf=%4", "_csrf"), None);
        let huge = format!("_csrf={}", "a".repeat(MAX_TOKEN_LEN * 3 + 1));
        assert_eq!(form_field(huge.as_bytes(), "_csrf"), None);
    }

    #[test]
    fn recognises_urlencoded_content_types() {
        assert!(is_urlencoded(
            b"application/x-www-form-urlencoded; charset=UTF-8"
        ));
        assert!(is_urlencoded(b"Application/X-WWW-Form-Urlencoded"));
        assert!(!is_urlencoded(b"multipart/form-data; boundary=x"));
    }
}
