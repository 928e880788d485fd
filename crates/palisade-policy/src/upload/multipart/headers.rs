//! Part headers of `multipart/form-data` (RFC 7578 §4) and the `Content-Disposition`
//! parameters (RFC 6266 §4.1, RFC 8187 for `filename*`).
//!
//! Parsing is deliberately stricter than most application frameworks: anything two parsers
//! could read differently (folded lines, backslash escapes, repeated parameters, transfer
//! encodings that hide the bytes) is refused, so that what palisade inspected is what the
//! application receives.

/// Most header lines in one part.
pub const MAX_PART_HEADERS: usize = 16;

/// The headers of one part that inspection needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartHeaders {
    /// The `name` parameter: the form field.
    pub name: String,
    /// The `filename` parameter, when the part is a file.
    pub filename: Option<String>,
    /// The `filename*` parameter (RFC 8187, decoded), when given.
    pub filename_ext: Option<String>,
    /// The part's `Content-Type`, if any.
    pub content_type: Option<String>,
}

impl PartHeaders {
    /// Whether the part is a file (it has a file name, even an empty one).
    pub fn is_file(&self) -> bool {
        self.filename.is_some() || self.filename_ext.is_some()
    }

    /// The file name to report: `filename`, else `filename*`.
    pub fn display_filename(&self) -> Option<&str> {
        self.filename.as_deref().or(self.filename_ext.as_deref())
    }
}

/// Parses a header block (without the blank line that ends it).
pub fn parse_part_headers(block: &[u8]) -> Result<PartHeaders, String> {
    let text = std::str::from_utf8(block).map_err(|_| "part headers are not UTF-8")?;
    let mut headers = PartHeaders::default();
    let mut seen_disposition = false;
    for (count, line) in text.split("\r\n").enumerate() {
        if count >= MAX_PART_HEADERS {
            return Err(format!("more than {MAX_PART_HEADERS} headers in one part"));
        }
        let (name, value) = split_header(line)?;
        match name.to_ascii_lowercase().as_str() {
            "content-disposition" if seen_disposition => {
                return Err("two Content-Disposition headers in one part".into());
            }
            "content-disposition" => {
                seen_disposition = true;
                read_disposition(value, &mut headers)?;
            }
            "content-type" if headers.content_type.is_some() => {
                return Err("two Content-Type headers in one part".into());
            }
            "content-type" => {
                if value.trim().to_ascii_lowercase().starts_with("multipart/") {
                    return Err("nested multipart is not accepted".into());
                }
                headers.content_type = Some(value.to_owned());
            }
            "content-transfer-encoding" => {
                let encoding = value.to_ascii_lowercase();
                if !matches!(encoding.as_str(), "7bit" | "8bit" | "binary") {
                    return Err(format!(
                        "Content-Transfer-Encoding {value} would hide the bytes from inspection"
                    ));
                }
            }
            _ => {}
        }
    }
    if !seen_disposition {
        return Err("part without Content-Disposition".into());
    }
    Ok(headers)
}

fn split_header(line: &str) -> Result<(&str, &str), String> {
    if line.starts_with([' ', '\t']) {
        return Err("folded part header line".into());
    }
    let Some((name, value)) = line.split_once(':') else {
        return Err("part header line without a colon".into());
    };
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err("invalid part header name".into());
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err("control character in a part header".into());
    }
    Ok((name, value.trim_matches([' ', '\t'])))
}

/// `form-data; name="field"; filename="a.png"`.
fn read_disposition(value: &str, headers: &mut PartHeaders) -> Result<(), String> {
    let params = parse_disposition(value)?;
    if !params.kind.eq_ignore_ascii_case("form-data") {
        return Err(format!(
            "Content-Disposition {} where form-data was expected",
            params.kind
        ));
    }
    headers.name = params.name.ok_or("form-data part without a name")?;
    headers.filename = params.filename;
    headers.filename_ext = params.filename_ext;
    Ok(())
}

/// A parsed `Content-Disposition` value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Disposition {
    /// `form-data`, `attachment`, `inline`, ...
    pub kind: String,
    /// The `name` parameter.
    pub name: Option<String>,
    /// The `filename` parameter.
    pub filename: Option<String>,
    /// The decoded `filename*` parameter.
    pub filename_ext: Option<String>,
}

/// Parses a `Content-Disposition` value; repeated parameters are refused because parsers
/// disagree on which one wins.
pub fn parse_disposition(value: &str) -> Result<Disposition, String> {
    let mut rest = value.trim_start();
    let kind = take_token(&mut rest);
    if kind.is_empty() {
        return Err("Content-Disposition without a type".into());
    }
    let mut out = Disposition {
        kind: kind.to_owned(),
        ..Disposition::default()
    };
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        if rest.is_empty() {
            return Ok(out);
        }
        rest = rest
            .strip_prefix(';')
            .ok_or("Content-Disposition parameters must be separated by ';'")?
            .trim_start_matches([' ', '\t']);
        if rest.is_empty() {
            return Ok(out);
        }
        let key = take_token(&mut rest).to_ascii_lowercase();
        rest = rest
            .trim_start_matches([' ', '\t'])
            .strip_prefix('=')
            .ok_or_else(|| format!("Content-Disposition parameter {key} without a value"))?
            .trim_start_matches([' ', '\t']);
        let value = take_value(&mut rest)?;
        let slot = match key.as_str() {
            "name" => &mut out.name,
            "filename" => &mut out.filename,
            "filename*" => &mut out.filename_ext,
            _ => continue,
        };
        if slot.is_some() {
            return Err(format!("Content-Disposition parameter {key} given twice"));
        }
        *slot = Some(if key == "filename*" {
            decode_ext_value(&value)?
        } else {
            value
        });
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn take_token<'a>(rest: &mut &'a str) -> &'a str {
    let end = rest
        .bytes()
        .position(|b| !is_token_byte(b))
        .unwrap_or(rest.len());
    let (token, tail) = rest.split_at(end);
    *rest = tail;
    token
}

/// A token or a quoted string. Backslashes inside quotes are refused: browsers never send
/// them (they percent-encode quotes) and frameworks disagree on whether they escape.
fn take_value(rest: &mut &str) -> Result<String, String> {
    let Some(quoted) = rest.strip_prefix('"') else {
        let token = take_token(rest);
        if token.is_empty() {
            return Err("empty Content-Disposition parameter value".into());
        }
        return Ok(token.to_owned());
    };
    let end = quoted
        .find(['"', '\\'])
        .ok_or("unterminated quoted string in Content-Disposition")?;
    if quoted.as_bytes()[end] == b'\\' {
        return Err("backslash in a Content-Disposition quoted string".into());
    }
    *rest = &quoted[end + 1..];
    Ok(quoted[..end].to_owned())
}

/// `UTF-8''percent%20encoded` (RFC 8187 §3.2).
fn decode_ext_value(value: &str) -> Result<String, String> {
    let mut parts = value.splitn(3, '\'');
    let (Some(charset), Some(_language), Some(encoded)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err("filename* is not charset'language'value".into());
    };
    if !charset.eq_ignore_ascii_case("utf-8") {
        return Err(format!("filename* charset {charset} is not UTF-8"));
    }
    percent_decode(encoded).ok_or_else(|| "filename* is not valid percent-encoded UTF-8".into())
}

/// Decodes `%XX` escapes; `None` when an escape is broken or the result is not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(block: &str) -> Result<PartHeaders, String> {
        parse_part_headers(block.as_bytes())
    }

    #[test]
    fn file_parts_give_name_filename_and_type() {
        let h = parse(
            "Content-Disposition: form-data; name=\"avatar\"; filename=\"cat.png\"\r\n\
             Content-Type: image/png",
        )
        .expect("valid");
        assert_eq!(h.name, "avatar");
        assert_eq!(h.filename.as_deref(), Some("cat.png"));
        assert_eq!(h.content_type.as_deref(), Some("image/png"));
        assert!(h.is_file());
    }

    #[test]
    fn filename_star_is_decoded() {
        let h = parse("content-disposition: form-data; name=f; filename*=UTF-8''caf%C3%A9.png")
            .expect("valid");
        assert_eq!(h.filename_ext.as_deref(), Some("café.png"));
    }

    #[test]
    fn ambiguous_headers_are_refused() {
        for bad in [
            "Content-Type: image/png",
            "Content-Disposition: form-data; name=\"a\"; name=\"b\"",
            "Content-Disposition: form-data; name=\"a\\\"; filename=x\"",
            "Content-Disposition: form-data; name=\"a\"\r\n folded",
            "Content-Disposition: form-data; name=\"a\"\r\nContent-Type: multipart/mixed; boundary=x",
            "Content-Disposition: form-data; name=\"a\"\r\nContent-Transfer-Encoding: base64",
            "Content-Disposition: attachment; name=\"a\"",
            "Content-Disposition: form-data; filename=\"a.png\"",
            "Content-Disposition: form-data; name=\"unterminated",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
