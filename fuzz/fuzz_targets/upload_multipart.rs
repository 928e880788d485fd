//! Fuzzes the streaming upload inspector with arbitrary multipart bodies split at an
//! arbitrary point: it must never panic, and splitting a body must never change its
//! verdict.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_policy::upload::{RequestHead, RequestInspector, UploadConfig, UploadSection};

fn verdict(body: &[u8], split: usize) -> Result<usize, String> {
    let config = UploadConfig::from_sections(&[UploadSection::with_path("/")], None)
        .expect("the default rule is valid");
    let head = RequestHead {
        content_type: Some("multipart/form-data; boundary=fuzz"),
        ..RequestHead::default()
    };
    let mut inspector = RequestInspector::start(&config.rules[0], head).map_err(|r| r.detail)?;
    let at = split.min(body.len());
    inspector.feed(&body[..at]).map_err(|r| r.reason.to_string())?;
    inspector.feed(&body[at..]).map_err(|r| r.reason.to_string())?;
    let inspected = inspector.finish().map_err(|r| r.reason.to_string())?;
    Ok(inspected.files.len())
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let whole = verdict(body, body.len());
    let split = verdict(body, usize::from(split) * body.len() / 256);
    assert_eq!(whole.is_ok(), split.is_ok(), "{whole:?} vs {split:?}");
});
