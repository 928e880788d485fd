use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::Frame;
use palisade_policy::upload::{UploadConfig, UploadSection};

use super::*;
use crate::upload::{SpoolSettings, UploadShared};

/// A body of `left` bytes of text in 64 KiB frames, made as it is polled.
struct Generated {
    left: u64,
    chunk: Bytes,
}

impl Body for Generated {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let len = self.left.min(self.chunk.len() as u64) as usize;
        self.left -= len as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..len)))))
    }
}

/// A body that sends one frame, then nothing more.
struct Stalled(Option<Bytes>);

impl Body for Stalled {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.0.take() {
            Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
            None => Poll::Pending,
        }
    }
}

const MEMORY_LIMIT: usize = 64 << 10;

fn text_service(dir: &std::path::Path, max_file_size: u64) -> UploadService {
    let mut section = UploadSection::with_path("/upload");
    section.allowed_types = vec!["text/plain".into()];
    section.max_file_size = palisade_policy::units::ByteSize(max_file_size);
    section.max_body_size = Some(palisade_policy::units::ByteSize(max_file_size));
    let config = UploadConfig::from_sections(&[section], None).expect("valid");
    let spool = SpoolSettings {
        dir: dir.to_owned(),
        memory_limit: MEMORY_LIMIT,
        ..SpoolSettings::default()
    };
    UploadShared::unprepared(spool).service(config)
}

fn start(service: &UploadService) -> UploadInspection {
    let head = RequestHead {
        content_type: Some("text/plain"),
        ..RequestHead::default()
    };
    match service.begin("PUT", "/upload/notes.txt", head) {
        Some(Ok(inspection)) => inspection,
        other => panic!("an upload starts: {other:?}"),
    }
}

#[tokio::test]
async fn memory_held_while_reading_stays_bounded_whatever_the_body_size() {
    const SIZE: u64 = 64 << 20;
    let dir = tempfile::tempdir().expect("temp dir");
    let service = text_service(dir.path(), SIZE);
    let mut inspection = start(&service);
    let mut body = Generated {
        left: SIZE,
        chunk: Bytes::from(vec![b'x'; 64 << 10]),
    };
    let peak = read_body(&mut body, &mut inspection, Duration::from_secs(5))
        .await
        .expect("read");
    assert_eq!(inspection.received(), SIZE);
    assert!(inspection.is_spooled_to_disk());
    // The spool's buffer plus the parser's few KiB, for 64 MiB of body.
    assert!(peak <= MEMORY_LIMIT + (16 << 10), "held {peak} bytes");
}

#[tokio::test(start_paused = true)]
async fn a_stalled_body_times_out_with_408() {
    let dir = tempfile::tempdir().expect("temp dir");
    let service = text_service(dir.path(), 1 << 20);
    let mut inspection = start(&service);
    let mut body = Stalled(Some(Bytes::from_static(b"first words")));
    let outcome = read_body(&mut body, &mut inspection, Duration::from_secs(3)).await;
    let Err(Failure::Error(err)) = outcome else {
        panic!("expected a timeout, got {outcome:?}");
    };
    assert_eq!(err.status(), http::StatusCode::REQUEST_TIMEOUT);
}

#[tokio::test]
async fn a_file_over_its_limit_is_refused_before_the_body_ends() {
    let dir = tempfile::tempdir().expect("temp dir");
    let service = text_service(dir.path(), 1 << 20);
    let mut inspection = start(&service);
    let mut body = Generated {
        left: 1 << 30,
        chunk: Bytes::from(vec![b'x'; 64 << 10]),
    };
    let outcome = read_body(&mut body, &mut inspection, Duration::from_secs(5)).await;
    let Err(Failure::Refused(refused)) = outcome else {
        panic!("expected a size refusal, got {outcome:?}");
    };
    assert_eq!(refused.refusal.reason, Reason::Size);
    assert!(body.left > (1 << 30) - (2 << 20), "read on after the limit");
}

#[test]
fn request_heads_read_the_declared_type_length_and_disposition() {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("image/png"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("42"));
    headers.insert(
        CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"a.png\""),
    );
    let head = request_head(&headers);
    assert_eq!(head.content_type, Some("image/png"));
    assert_eq!(head.content_length, Some(42));
    assert_eq!(
        head.content_disposition,
        Some("attachment; filename=\"a.png\"")
    );
}

/// Stages hold `&GatewayRequest` across awaits in `Send` futures, so a request whose body
/// was replaced by an upload's checked copy must stay `Sync`.
#[test]
fn requests_with_a_replaced_body_stay_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    let mut body = crate::body::RequestBody::empty();
    body.replace(http_body_util::Full::new(Bytes::from_static(b"checked")));
    assert_send_sync(&body);
    assert_eq!(body.size_hint().exact(), Some(7));
}
