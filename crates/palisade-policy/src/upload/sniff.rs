//! File types judged by their bytes (magic numbers), never by name or declared type, and
//! the names and extensions each type goes by, so that a disagreeing `Content-Type` or
//! extension can be told apart from an honest one.
//!
//! Sniffing looks at a bounded window (the first [`SNIFF_WINDOW`] bytes of a file): enough
//! to tell an Office document from a plain ZIP and an SVG from other XML.

use std::fmt;

/// How many leading bytes of a file the sniffer looks at.
pub const SNIFF_WINDOW: usize = 4096;

/// A file type palisade recognises from bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileType {
    /// JPEG (`FF D8 FF`).
    Jpeg,
    /// PNG (the 8-byte signature of RFC 2083).
    Png,
    /// WebP: `RIFF` + size + `WEBP`.
    Webp,
    /// GIF87a / GIF89a.
    Gif,
    /// Windows bitmap (`BM`).
    Bmp,
    /// TIFF (`II*\0` or `MM\0*`).
    Tiff,
    /// Windows icon.
    Ico,
    /// AVIF (ISO-BMFF with an `avif`/`avis` brand).
    Avif,
    /// HEIF / HEIC (ISO-BMFF with a `heic`-family brand).
    Heic,
    /// PDF (`%PDF-`).
    Pdf,
    /// SVG (XML whose root is `<svg`).
    Svg,
    /// Other XML.
    Xml,
    /// HTML.
    Html,
    /// PHP source (`<?php`).
    Php,
    /// A script starting with `#!`.
    Script,
    /// UTF-8 text without control characters.
    Text,
    /// ZIP archive that is not an Office document.
    Zip,
    /// Word document (OOXML).
    Docx,
    /// Excel workbook (OOXML).
    Xlsx,
    /// PowerPoint presentation (OOXML).
    Pptx,
    /// Legacy Office file (OLE compound document: `.doc`, `.xls`, `.ppt`).
    Ole,
    /// gzip.
    Gzip,
    /// 7-Zip.
    SevenZip,
    /// RAR.
    Rar,
    /// ELF executable.
    Elf,
    /// Windows executable (`MZ`).
    Exe,
    /// MP4 / QuickTime (ISO-BMFF video).
    Mp4,
    /// MP3 (ID3 tag or MPEG audio frame sync).
    Mp3,
    /// WAV audio (`RIFF....WAVE`).
    Wav,
    /// Ogg.
    Ogg,
    /// Matroska / WebM.
    Webm,
}

struct Names {
    mime: &'static str,
    aliases: &'static [&'static str],
    extensions: &'static [&'static str],
}

impl FileType {
    /// Every known type, for listing in configuration errors.
    pub const ALL: [FileType; 31] = [
        Self::Jpeg,
        Self::Png,
        Self::Webp,
        Self::Gif,
        Self::Bmp,
        Self::Tiff,
        Self::Ico,
        Self::Avif,
        Self::Heic,
        Self::Pdf,
        Self::Svg,
        Self::Xml,
        Self::Html,
        Self::Php,
        Self::Script,
        Self::Text,
        Self::Zip,
        Self::Docx,
        Self::Xlsx,
        Self::Pptx,
        Self::Ole,
        Self::Gzip,
        Self::SevenZip,
        Self::Rar,
        Self::Elf,
        Self::Exe,
        Self::Mp4,
        Self::Mp3,
        Self::Wav,
        Self::Ogg,
        Self::Webm,
    ];

    fn names(self) -> Names {
        let n = |mime, aliases, extensions| Names {
            mime,
            aliases,
            extensions,
        };
        match self {
            Self::Jpeg => n(
                "image/jpeg",
                &["image/jpg", "image/pjpeg"],
                &["jpg", "jpeg", "jpe", "jfif"],
            ),
            Self::Png => n(
                "image/png",
                &["image/x-png", "image/apng"],
                &["png", "apng"],
            ),
            Self::Webp => n("image/webp", &[], &["webp"]),
            Self::Gif => n("image/gif", &[], &["gif"]),
            Self::Bmp => n("image/bmp", &["image/x-ms-bmp"], &["bmp", "dib"]),
            Self::Tiff => n("image/tiff", &[], &["tif", "tiff"]),
            Self::Ico => n(
                "image/vnd.microsoft.icon",
                &["image/x-icon"],
                &["ico", "cur"],
            ),
            Self::Avif => n("image/avif", &[], &["avif"]),
            Self::Heic => n("image/heic", &["image/heif"], &["heic", "heif"]),
            Self::Pdf => n("application/pdf", &[], &["pdf"]),
            Self::Svg => n("image/svg+xml", &[], &["svg"]),
            Self::Xml => n("application/xml", &["text/xml"], &["xml"]),
            Self::Html => n("text/html", &[], &["html", "htm"]),
            Self::Php => n("application/x-httpd-php", &["text/x-php"], &["php"]),
            Self::Script => n(
                "text/x-shellscript",
                &["application/x-sh"],
                &["sh", "bash", "py", "pl", "rb"],
            ),
            Self::Text => n(
                "text/plain",
                &[
                    "text/csv",
                    "text/markdown",
                    "text/tab-separated-values",
                    "application/json",
                ],
                &["txt", "text", "csv", "tsv", "md", "log", "json"],
            ),
            Self::Zip => n(
                "application/zip",
                &["application/x-zip-compressed"],
                &["zip"],
            ),
            Self::Docx => n(
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                &[],
                &["docx"],
            ),
            Self::Xlsx => n(
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                &[],
                &["xlsx"],
            ),
            Self::Pptx => n(
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                &[],
                &["pptx"],
            ),
            Self::Ole => n(
                "application/x-ole-storage",
                &[
                    "application/msword",
                    "application/vnd.ms-excel",
                    "application/vnd.ms-powerpoint",
                ],
                &["doc", "xls", "ppt", "msg"],
            ),
            Self::Gzip => n("application/gzip", &["application/x-gzip"], &["gz", "tgz"]),
            Self::SevenZip => n("application/x-7z-compressed", &[], &["7z"]),
            Self::Rar => n(
                "application/vnd.rar",
                &["application/x-rar-compressed"],
                &["rar"],
            ),
            Self::Elf => n(
                "application/x-elf",
                &["application/x-executable"],
                &["so", "elf"],
            ),
            Self::Exe => n(
                "application/vnd.microsoft.portable-executable",
                &["application/x-msdownload"],
                &["exe", "dll"],
            ),
            Self::Mp4 => n("video/mp4", &["video/quicktime"], &["mp4", "m4v", "mov"]),
            Self::Mp3 => n("audio/mpeg", &[], &["mp3"]),
            Self::Wav => n("audio/wav", &["audio/x-wav"], &["wav"]),
            Self::Ogg => n(
                "audio/ogg",
                &["video/ogg", "application/ogg"],
                &["ogg", "oga", "ogv"],
            ),
            Self::Webm => n("video/webm", &["video/x-matroska"], &["webm", "mkv"]),
        }
    }

    /// The canonical media type, as written in `allowed_types`.
    pub fn mime(self) -> &'static str {
        self.names().mime
    }

    /// The type named by a media type (canonical or a common alias), parameters ignored.
    pub fn from_mime(mime: &str) -> Option<Self> {
        let essence = essence(mime);
        Self::ALL.into_iter().find(|t| {
            let names = t.names();
            names.mime.eq_ignore_ascii_case(&essence)
                || names
                    .aliases
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(&essence))
        })
    }

    /// Whether `extension` (without the dot, any case) is one this type goes by.
    pub fn has_extension(self, extension: &str) -> bool {
        self.names()
            .extensions
            .iter()
            .any(|e| e.eq_ignore_ascii_case(extension))
    }

    /// Whether any known type goes by `extension`.
    pub fn is_known_extension(extension: &str) -> bool {
        Self::ALL.into_iter().any(|t| t.has_extension(extension))
    }

    /// Whether palisade checks this type's image structure (dimensions, end marker).
    pub fn has_image_checks(self) -> bool {
        matches!(self, Self::Jpeg | Self::Png | Self::Webp | Self::Gif)
    }
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mime())
    }
}

/// The media type without parameters or surrounding space: `"Image/PNG; q=1"` → `image/png`.
pub fn essence(mime: &str) -> String {
    mime.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether a declared media type says nothing about the content (absent or generic), so
/// that it cannot disagree with the bytes.
pub fn is_generic_mime(mime: &str) -> bool {
    matches!(
        essence(mime).as_str(),
        "" | "application/octet-stream" | "binary/octet-stream" | "application/unknown"
    )
}

/// The type of a file from its first bytes. `head` is the file's first [`SNIFF_WINDOW`]
/// bytes, or the whole file when shorter. `None`: no known type (including empty files).
pub fn sniff(head: &[u8]) -> Option<FileType> {
    sniff_binary(head).or_else(|| sniff_markup(head))
}

fn sniff_binary(h: &[u8]) -> Option<FileType> {
    let starts = |magic: &[u8]| h.starts_with(magic);
    let at = |offset: usize, magic: &[u8]| h.get(offset..offset + magic.len()) == Some(magic);
    Some(match () {
        _ if starts(&[0xFF, 0xD8, 0xFF]) => FileType::Jpeg,
        _ if starts(b"\x89PNG\r\n\x1a\n") => FileType::Png,
        _ if starts(b"RIFF") && at(8, b"WEBP") => FileType::Webp,
        _ if starts(b"RIFF") && at(8, b"WAVE") => FileType::Wav,
        _ if starts(b"GIF87a") || starts(b"GIF89a") => FileType::Gif,
        _ if starts(b"BM") && h.len() >= 26 && at(6, &[0, 0, 0, 0]) => FileType::Bmp,
        _ if starts(b"II*\0") || starts(b"MM\0*") => FileType::Tiff,
        _ if starts(&[0, 0, 1, 0]) && h.len() >= 6 && h[4..6] != [0, 0] => FileType::Ico,
        _ if starts(b"%PDF-") => FileType::Pdf,
        _ if starts(b"PK\x03\x04") => sniff_zip(h),
        _ if starts(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) => FileType::Ole,
        _ if starts(&[0x1F, 0x8B]) => FileType::Gzip,
        _ if starts(b"7z\xBC\xAF\x27\x1C") => FileType::SevenZip,
        _ if starts(b"Rar!\x1A\x07") => FileType::Rar,
        _ if starts(b"\x7FELF") => FileType::Elf,
        _ if starts(b"MZ") => FileType::Exe,
        _ if at(4, b"ftyp") => return sniff_iso_media(h),
        _ if starts(b"ID3") => FileType::Mp3,
        _ if starts(b"OggS") => FileType::Ogg,
        _ if starts(&[0x1A, 0x45, 0xDF, 0xA3]) => FileType::Webm,
        _ => return None,
    })
}

/// ISO base media files (`....ftyp<brand>`): images or video depending on the brand.
fn sniff_iso_media(h: &[u8]) -> Option<FileType> {
    let brand = h.get(8..12)?;
    Some(match brand {
        b"avif" | b"avis" => FileType::Avif,
        b"heic" | b"heix" | b"heim" | b"heis" | b"mif1" | b"msf1" => FileType::Heic,
        _ => FileType::Mp4,
    })
}

/// A ZIP whose entries name an Office part (`word/`, `xl/`, `ppt/`) is an OOXML document.
fn sniff_zip(h: &[u8]) -> FileType {
    let finder = |needle: &[u8]| memchr::memmem::find(h, needle).is_some();
    match () {
        _ if finder(b"word/") => FileType::Docx,
        _ if finder(b"xl/") => FileType::Xlsx,
        _ if finder(b"ppt/") => FileType::Pptx,
        _ => FileType::Zip,
    }
}

/// Text formats: markup first (a text file that is really HTML or PHP must not pass as
/// text), then plain UTF-8.
fn sniff_markup(h: &[u8]) -> Option<FileType> {
    if !is_text(h) {
        return None;
    }
    let body = trim_start(h.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(h));
    let lower: Vec<u8> = body.iter().take(512).map(u8::to_ascii_lowercase).collect();
    let starts = |p: &[u8]| lower.starts_with(p);
    Some(match () {
        _ if starts(b"<?php") || starts(b"<?=") => FileType::Php,
        _ if starts(b"#!") => FileType::Script,
        _ if starts(b"<svg") => FileType::Svg,
        _ if (starts(b"<?xml") || starts(b"<!--") || starts(b"<!doctype svg"))
            && memchr::memmem::find(h, b"<svg").is_some() =>
        {
            FileType::Svg
        }
        _ if starts(b"<?xml") => FileType::Xml,
        _ if [
            &b"<!doctype html"[..],
            b"<html",
            b"<head",
            b"<body",
            b"<script",
            b"<iframe",
            b"<!--",
        ]
        .iter()
        .any(|p| starts(p)) =>
        {
            FileType::Html
        }
        _ => FileType::Text,
    })
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// UTF-8 without control characters other than tab, newline, form feed and carriage return.
/// A multi-byte character cut by the end of the window is fine.
fn is_text(h: &[u8]) -> bool {
    if h.is_empty() {
        return false;
    }
    let valid = match std::str::from_utf8(h) {
        Ok(text) => text,
        Err(e) if e.error_len().is_none() && h.len() - e.valid_up_to() < 4 => {
            std::str::from_utf8(&h[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    valid
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\x0C' | '\r'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webp_needs_riff_and_webp_not_just_the_bytes_at_offset_eight() {
        assert_eq!(sniff(b"RIFF\x10\0\0\0WEBPVP8 "), Some(FileType::Webp));
        assert_eq!(sniff(b"XXXX\x10\0\0\0WEBPVP8 "), None);
        assert_eq!(sniff(b"\0\0\0\0\x10\0\0\0WEBPVP8 "), None);
    }

    #[test]
    fn markup_is_not_mistaken_for_plain_text() {
        assert_eq!(sniff(b"  <!DOCTYPE html><p>x"), Some(FileType::Html));
        assert_eq!(sniff(b"<?php system($_GET['c']);"), Some(FileType::Php));
        assert_eq!(
            sniff(b"<?xml version=\"1.0\"?>\n<svg xmlns=\"x\"/>"),
            Some(FileType::Svg)
        );
        assert_eq!(sniff(b"<?xml version=\"1.0\"?><a/>"), Some(FileType::Xml));
        assert_eq!(sniff("hello, wörld\n".as_bytes()), Some(FileType::Text));
        assert_eq!(sniff(b"hello\0world"), None);
    }

    #[test]
    fn office_documents_are_told_apart_from_plain_zip() {
        assert_eq!(
            sniff(b"PK\x03\x04....[Content_Types].xml....word/document.xml"),
            Some(FileType::Docx)
        );
        assert_eq!(
            sniff(b"PK\x03\x04....xl/workbook.xml"),
            Some(FileType::Xlsx)
        );
        assert_eq!(sniff(b"PK\x03\x04....readme.txt"), Some(FileType::Zip));
    }

    #[test]
    fn empty_and_unknown_files_have_no_type() {
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(&[0x00, 0x01, 0x02, 0x03]), None);
    }

    #[test]
    fn media_type_aliases_and_parameters_resolve() {
        assert_eq!(FileType::from_mime("IMAGE/JPG"), Some(FileType::Jpeg));
        assert_eq!(
            FileType::from_mime("image/png; charset=binary"),
            Some(FileType::Png)
        );
        assert_eq!(FileType::from_mime("image/x-nonsense"), None);
        assert!(is_generic_mime("application/octet-stream"));
        assert!(FileType::Jpeg.has_extension("JPEG"));
        assert!(!FileType::Png.has_extension("php"));
    }
}
