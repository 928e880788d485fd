//! Hand-built files for the unit tests: structurally valid images (PNG with stored deflate
//! blocks, a JPEG marker skeleton, WebP and GIF) and multipart bodies. The gateway's tests
//! use real encoders; these keep the policy crate free of image dependencies.

pub(crate) fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
    out
}

/// A grey 8-bit PNG of `width` x `height` whose IHDR may claim other dimensions.
pub(crate) fn png(width: u32, height: u32) -> Vec<u8> {
    png_with(width, height, &[])
}

/// A PNG with extra chunks inserted before IDAT.
pub(crate) fn png_with(width: u32, height: u32, extra: &[Vec<u8>]) -> Vec<u8> {
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(png_chunk(b"IHDR", &ihdr));
    for chunk in extra {
        out.extend_from_slice(chunk);
    }
    // zlib header, one final stored block holding a single filter byte, adler32 (not
    // verified by the structural checks).
    out.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x01, 1, 1, 0, 0xFE, 0xFF, 0, 0, 0, 0, 0],
    ));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

fn jpeg_segment(code: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0xFF, code];
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A JPEG skeleton: SOI, APP0, optional extra segments, SOF0, SOS with entropy bytes that
/// include stuffing and a restart marker, EOI.
pub(crate) fn jpeg_with(width: u16, height: u16, extra: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    out.extend(jpeg_segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
    for segment in extra {
        out.extend_from_slice(segment);
    }
    let mut sof = vec![8];
    sof.extend_from_slice(&height.to_be_bytes());
    sof.extend_from_slice(&width.to_be_bytes());
    sof.extend_from_slice(&[1, 1, 0x11, 0]);
    out.extend(jpeg_segment(0xC0, &sof));
    out.extend(jpeg_segment(0xDA, &[1, 1, 0, 0, 0x3F, 0]));
    out.extend_from_slice(&[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xD9]);
    out
}

pub(crate) fn jpeg(width: u16, height: u16) -> Vec<u8> {
    jpeg_with(width, height, &[])
}

/// An APP1 segment holding `payload` after an identifier.
pub(crate) fn jpeg_app(code: u8, payload: &[u8]) -> Vec<u8> {
    jpeg_segment(code, payload)
}

fn riff_chunk(fourcc: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = fourcc.to_vec();
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(0);
    }
    out
}

/// An extended WebP (VP8X + VP8L) with optional EXIF and XMP chunks.
pub(crate) fn webp(width: u32, height: u32, exif: Option<&[u8]>, xmp: Option<&[u8]>) -> Vec<u8> {
    let mut flags = 0u8;
    if exif.is_some() {
        flags |= 0x08;
    }
    if xmp.is_some() {
        flags |= 0x04;
    }
    let mut vp8x = vec![flags, 0, 0, 0];
    vp8x.extend_from_slice(&(width - 1).to_le_bytes()[..3]);
    vp8x.extend_from_slice(&(height - 1).to_le_bytes()[..3]);
    let bits = (width - 1) | ((height - 1) << 14);
    let mut vp8l = vec![0x2F];
    vp8l.extend_from_slice(&bits.to_le_bytes());
    vp8l.extend_from_slice(&[0xAA; 7]);
    let mut chunks = riff_chunk(b"VP8X", &vp8x);
    chunks.extend(riff_chunk(b"VP8L", &vp8l));
    if let Some(exif) = exif {
        chunks.extend(riff_chunk(b"EXIF", exif));
    }
    if let Some(xmp) = xmp {
        chunks.extend(riff_chunk(b"XMP ", xmp));
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&((chunks.len() + 4) as u32).to_le_bytes());
    out.extend_from_slice(b"WEBP");
    out.extend(chunks);
    out
}

/// A one-frame GIF with a two-colour global table.
pub(crate) fn gif(width: u16, height: u16) -> Vec<u8> {
    let mut out = b"GIF89a".to_vec();
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&height.to_le_bytes());
    out.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 255, 255, 255]);
    out.extend_from_slice(&[0x21, 0xF9, 4, 0, 0, 0, 0, 0]);
    out.push(0x2C);
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&height.to_le_bytes());
    out.extend_from_slice(&[0, 2, 2, 0x44, 0x01, 0, 0x3B]);
    out
}

/// A multipart body from `(headers, content)` parts.
pub(crate) fn multipart(boundary: &str, parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (headers, content) in parts {
        out.extend_from_slice(format!("--{boundary}\r\n{headers}\r\n\r\n").as_bytes());
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}
