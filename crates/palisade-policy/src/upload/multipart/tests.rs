use proptest::prelude::*;

use super::*;
use crate::upload::testdata::multipart;

/// Records every event, to compare parses.
#[derive(Debug, Default, PartialEq, Eq)]
struct Recorder {
    parts: Vec<(PartHeaders, u64, Vec<u8>, bool)>,
}

impl PartSink for Recorder {
    fn part_start(
        &mut self,
        index: usize,
        headers: PartHeaders,
        offset: u64,
    ) -> Result<(), Refusal> {
        assert_eq!(index, self.parts.len());
        self.parts.push((headers, offset, Vec::new(), false));
        Ok(())
    }
    fn part_data(&mut self, data: &[u8]) -> Result<(), Refusal> {
        let part = self.parts.last_mut().expect("data inside a part");
        assert!(!part.3, "data after part end");
        part.2.extend_from_slice(data);
        Ok(())
    }
    fn part_end(&mut self) -> Result<(), Refusal> {
        self.parts.last_mut().expect("end of a part").3 = true;
        Ok(())
    }
}

fn parse_in_pieces(body: &[u8], piece: usize) -> Result<Recorder, Refusal> {
    let mut parser = MultipartParser::new("XyZ");
    let mut recorder = Recorder::default();
    for chunk in body.chunks(piece.max(1)) {
        parser.feed(chunk, &mut recorder)?;
    }
    parser.finish()?;
    Ok(recorder)
}

fn detail(body: &[u8]) -> String {
    parse_in_pieces(body, body.len().max(1))
        .expect_err("malformed")
        .detail
}

const FILE: &str =
    "Content-Disposition: form-data; name=\"f\"; filename=\"a.png\"\r\nContent-Type: image/png";
const FIELD: &str = "Content-Disposition: form-data; name=\"title\"";

#[test]
fn parts_come_out_with_headers_offsets_and_content() {
    let body = multipart("XyZ", &[(FIELD, b"hello"), (FILE, b"\x89PNG\r\n--Xy")]);
    let parsed = parse_in_pieces(&body, body.len()).expect("valid");
    assert_eq!(parsed.parts.len(), 2);
    let (headers, offset, content, ended) = &parsed.parts[1];
    assert_eq!(headers.filename.as_deref(), Some("a.png"));
    assert_eq!(content, b"\x89PNG\r\n--Xy");
    assert!(ended);
    assert_eq!(
        &body[*offset as usize..*offset as usize + content.len()],
        &content[..]
    );
}

#[test]
fn leading_line_breaks_and_a_trailing_crlf_are_accepted() {
    let mut body = b"\r\n".to_vec();
    body.extend(multipart("XyZ", &[(FIELD, b"x")]));
    assert_eq!(parse_in_pieces(&body, 3).expect("valid").parts.len(), 1);
}

#[test]
fn body_that_never_closes_is_refused() {
    let mut body = multipart("XyZ", &[(FILE, b"data")]);
    body.truncate(body.len() - "--XyZ--\r\n".len());
    body.extend_from_slice(b"--XyZ\r\n");
    assert!(detail(&body).contains("ended"), "{}", detail(&body));
    let whole = multipart("XyZ", &[(FILE, b"data data data")]);
    let mid_part = &whole[..whole.len() - 16];
    assert!(detail(mid_part).contains("closing boundary never came"));
}

#[test]
fn body_without_the_boundary_is_refused() {
    assert!(detail(b"just some bytes").contains("before the first boundary"));
    assert!(detail(b"").contains("before the first boundary"));
}

#[test]
fn delimiter_followed_by_junk_is_refused() {
    let body = b"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--XyZjunk\r\n";
    assert!(detail(body).contains("boundary followed by"));
}

#[test]
fn data_after_the_closing_boundary_is_refused() {
    let mut body = multipart("XyZ", &[(FIELD, b"x")]);
    body.extend_from_slice(b"--XyZ\r\nContent-Disposition: form-data; name=sneaky\r\n\r\nx");
    assert!(detail(&body).contains("after the closing boundary"));
}

#[test]
fn a_megabyte_of_part_headers_is_refused_without_holding_it() {
    let mut body = b"--XyZ\r\nX-Big: ".to_vec();
    body.extend(std::iter::repeat_n(b'a', 1 << 20));
    let mut parser = MultipartParser::new("XyZ");
    let mut recorder = Recorder::default();
    let mut refusal = None;
    for chunk in body.chunks(4096) {
        if let Err(r) = parser.feed(chunk, &mut recorder) {
            refusal = Some(r);
            break;
        }
        assert!(parser.buffered_len() <= 2 * MAX_HEADER_BLOCK);
    }
    let refusal = refusal.expect("refused");
    assert!(refusal.detail.contains("part headers longer than 8 KiB"));
}

#[test]
fn nested_multipart_is_refused() {
    let nested = "Content-Disposition: form-data; name=\"files\"\r\n\
                  Content-Type: multipart/mixed; boundary=inner";
    let body = multipart("XyZ", &[(nested, b"--inner\r\n\r\nx\r\n--inner--")]);
    assert!(detail(&body).contains("nested multipart"));
}

#[test]
fn a_header_line_repeating_the_boundary_is_refused() {
    let body = b"--XyZ\r\nContent-Disposition: form-data; name=a\r\n--XyZ: x\r\n\r\nv\r\n--XyZ--";
    assert!(detail(body).contains("repeats the boundary"));
}

#[test]
fn boundaries_are_validated() {
    assert_eq!(
        boundary("multipart/form-data; boundary=abc"),
        Ok("abc".into())
    );
    assert_eq!(
        boundary("multipart/form-data; boundary=\"a b:c\""),
        Ok("a b:c".into())
    );
    for bad in [
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=a; boundary=b",
        "multipart/form-data; boundary=\"unterminated",
        "multipart/form-data; boundary=semi\u{0}colon",
    ] {
        assert!(boundary(bad).is_err(), "{bad:?}");
    }
    assert!(boundary(&format!("multipart/form-data; boundary={}", "a".repeat(71))).is_err());
}

proptest! {
    #[test]
    fn any_piece_size_gives_the_same_parts(
        content in proptest::collection::vec(prop_oneof![
            Just(b'\r'), Just(b'\n'), Just(b'-'), Just(b'X'), Just(b'y'), Just(b'Z'), any::<u8>()
        ], 0..300),
        piece in 1usize..64,
    ) {
        let body = multipart("XyZ", &[(FILE, &content), (FIELD, b"v")]);
        let whole = parse_in_pieces(&body, body.len());
        let pieces = parse_in_pieces(&body, piece);
        prop_assert_eq!(&whole, &pieces);
        // Content containing the delimiter is refused; anything else comes back intact.
        if let Ok(parsed) = whole {
            prop_assert_eq!(&parsed.parts[0].2, &content);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_in_pieces(&body, 7);
    }
}
