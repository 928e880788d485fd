//! Inspection of a whole request body, multipart or raw, fed in pieces as it arrives.
//! This is the pure core the gateway drives: it owns the limits on the body, the parts,
//! the files and the fields, and hands back every file's verdict and the edits to apply
//! when forwarding. It never sees the network, the disk or the clock.

use super::config::{UploadLimits, UploadRule};
use super::edit::EditPlan;
use super::file::{Declared, FileInspector, FileRules, InspectedFile};
use super::multipart::{self, MultipartParser, PartHeaders, PartSink, parse_disposition};
use super::sniff::essence;
use super::verdict::{FileRef, Reason, Refusal};

/// The request headers inspection depends on.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestHead<'a> {
    /// `Content-Type` of the request.
    pub content_type: Option<&'a str>,
    /// `Content-Length`, when the client sent one.
    pub content_length: Option<u64>,
    /// `Content-Disposition` of the request (raw uploads may name their file there).
    pub content_disposition: Option<&'a str>,
    /// A file name known out of band, such as a local file checked from the command line;
    /// checked like any client-given name.
    pub file_name: Option<&'a str>,
}

/// Everything learned about a body that passed: its files and the edits to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InspectedBody {
    /// Length of the body as received.
    pub body_len: u64,
    /// The files, in body order.
    pub files: Vec<InspectedFile>,
    /// Non-file form fields seen.
    pub fields: usize,
    /// Edits (metadata removal) in body offsets; empty unless stripping.
    pub edits: EditPlan,
}

/// The streaming inspector of one request body.
#[derive(Debug)]
pub struct RequestInspector {
    limits: UploadLimits,
    rules: FileRules,
    received: u64,
    kind: Kind,
    refused: Option<Refusal>,
}

#[derive(Debug)]
enum Kind {
    Raw(Option<Box<FileInspector>>),
    Multipart(Box<MultipartParser>, Parts),
}

/// What the multipart sink tracks across parts.
#[derive(Debug, Default)]
struct Parts {
    current: Option<Current>,
    files: Vec<InspectedFile>,
    file_count: u32,
    fields: usize,
}

#[derive(Debug)]
enum Current {
    File {
        inspector: Box<FileInspector>,
        /// `filename=""` with no content is a file input left empty, not a file.
        unnamed: bool,
    },
    Field {
        field: FileRef,
        size: u64,
    },
}

impl RequestInspector {
    /// Starts inspecting a request under `rule`. Refuses at once what the headers alone
    /// condemn: a declared length over the body limit, a multipart type without a valid
    /// boundary, multipart types other than `form-data`, an unsafe raw file name.
    pub fn start(rule: &UploadRule, head: RequestHead<'_>) -> Result<Self, Refusal> {
        let limits = rule.limits;
        if let Some(length) = head.content_length
            && length > limits.max_body_size
        {
            return Err(Refusal::body(
                Reason::Size,
                format!(
                    "Content-Length {length} is over the body limit of {}",
                    limits.max_body_size
                ),
            ));
        }
        let kind = match head.content_type.map(essence) {
            Some(t) if t == "multipart/form-data" => {
                let content_type = head.content_type.unwrap_or_default();
                let boundary = multipart::boundary(content_type)
                    .map_err(|m| Refusal::body(Reason::Malformed, m))?;
                Kind::Multipart(Box::new(MultipartParser::new(&boundary)), Parts::default())
            }
            Some(t) if t.starts_with("multipart/") => {
                return Err(Refusal::body(
                    Reason::Malformed,
                    format!("{t} bodies are not accepted; use multipart/form-data"),
                ));
            }
            _ => Kind::Raw(Some(Box::new(raw_file(head)?))),
        };
        Ok(Self {
            limits,
            rules: FileRules::from(rule),
            received: 0,
            kind,
            refused: None,
        })
    }

    /// Feeds the next piece of the body. After a refusal every call repeats it.
    pub fn feed(&mut self, piece: &[u8]) -> Result<(), Refusal> {
        if let Some(refusal) = &self.refused {
            return Err(refusal.clone());
        }
        let result = self.feed_inner(piece);
        if let Err(refusal) = &result {
            self.refused = Some(refusal.clone());
        }
        result
    }

    fn feed_inner(&mut self, piece: &[u8]) -> Result<(), Refusal> {
        self.received += piece.len() as u64;
        if self.received > self.limits.max_body_size {
            return Err(Refusal::body(
                Reason::Size,
                format!("body larger than {} bytes", self.limits.max_body_size),
            ));
        }
        match &mut self.kind {
            Kind::Raw(file) => match file.as_mut() {
                Some(inspector) => inspector.feed(piece, &self.rules),
                None => Ok(()),
            },
            Kind::Multipart(parser, parts) => {
                let mut sink = Sink {
                    parts,
                    limits: &self.limits,
                    rules: &self.rules,
                };
                parser.feed(piece, &mut sink)
            }
        }
    }

    /// The body is complete: checks that it ended properly and returns what was found.
    pub fn finish(mut self) -> Result<InspectedBody, Refusal> {
        if let Some(refusal) = self.refused.take() {
            return Err(refusal);
        }
        let (files, fields) = match self.kind {
            Kind::Raw(file) => {
                let inspector = file.expect("a raw body has its file until finish");
                (vec![inspector.finish(&self.rules)?], 0)
            }
            Kind::Multipart(parser, parts) => {
                parser.finish()?;
                (parts.files, parts.fields)
            }
        };
        let mut edits = EditPlan::default();
        for file in &files {
            edits.extend_at(file.file.body_offset, &file.edits);
        }
        Ok(InspectedBody {
            body_len: self.received,
            files,
            fields,
            edits,
        })
    }

    /// Bytes of the body received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The file being received right now, if any (for quarantining a refused one).
    pub fn current_file(&self) -> Option<&FileRef> {
        match &self.kind {
            Kind::Raw(file) => file.as_deref().map(FileInspector::file),
            Kind::Multipart(_, parts) => match &parts.current {
                Some(Current::File { inspector, .. }) => Some(inspector.file()),
                _ => None,
            },
        }
    }

    /// Bytes held in memory between pieces: bounded by the part-header limit plus the sniff
    /// window, whatever the size of the body.
    pub fn buffered_len(&self) -> usize {
        match &self.kind {
            Kind::Raw(file) => file.as_deref().map_or(0, FileInspector::buffered_len),
            Kind::Multipart(parser, parts) => {
                let file = match &parts.current {
                    Some(Current::File { inspector, .. }) => inspector.buffered_len(),
                    _ => 0,
                };
                parser.buffered_len() + file
            }
        }
    }
}

/// A raw body is one file: its declared type is the request's, its name (if any) comes
/// from the request's `Content-Disposition`.
fn raw_file(head: RequestHead<'_>) -> Result<FileInspector, Refusal> {
    let file = FileRef {
        index: 0,
        field: None,
        filename: None,
        body_offset: 0,
    };
    let mut declared = Declared {
        content_type: head.content_type.map(str::to_owned),
        names: head.file_name.map(str::to_owned).into_iter().collect(),
    };
    if let Some(value) = head.content_disposition {
        let disposition =
            parse_disposition(value).map_err(|m| Refusal::file(Reason::Malformed, &file, m))?;
        declared.names.extend(disposition.filename);
        declared.names.extend(disposition.filename_ext);
    }
    let file = FileRef {
        filename: declared.names.first().cloned(),
        ..file
    };
    FileInspector::new(file, declared)
}

struct Sink<'a> {
    parts: &'a mut Parts,
    limits: &'a UploadLimits,
    rules: &'a FileRules,
}

impl PartSink for Sink<'_> {
    fn part_start(
        &mut self,
        index: usize,
        headers: PartHeaders,
        body_offset: u64,
    ) -> Result<(), Refusal> {
        let field = FileRef {
            index,
            field: Some(headers.name.clone()),
            filename: headers.display_filename().map(str::to_owned),
            body_offset,
        };
        if index >= self.limits.max_parts as usize {
            return Err(Refusal::file(
                Reason::Malformed,
                &field,
                format!("more than {} parts", self.limits.max_parts),
            ));
        }
        if field
            .field
            .as_deref()
            .is_some_and(|n| n.chars().any(char::is_control))
        {
            return Err(Refusal::file(
                Reason::Malformed,
                &field,
                "field name contains a control character",
            ));
        }
        self.parts.current = Some(if headers.is_file() {
            self.start_file(field, headers)?
        } else {
            Current::Field { field, size: 0 }
        });
        Ok(())
    }

    fn part_data(&mut self, data: &[u8]) -> Result<(), Refusal> {
        match &mut self.parts.current {
            Some(Current::File { inspector, .. }) => inspector.feed(data, self.rules),
            Some(Current::Field { field, size }) => {
                *size += data.len() as u64;
                if *size > self.limits.max_field_size {
                    return Err(Refusal::file(
                        Reason::Size,
                        field,
                        format!(
                            "form field larger than {} bytes",
                            self.limits.max_field_size
                        ),
                    ));
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn part_end(&mut self) -> Result<(), Refusal> {
        match self.parts.current.take() {
            Some(Current::File { inspector, unnamed }) if unnamed && inspector.size() == 0 => {
                self.parts.file_count -= 1;
                self.parts.fields += 1;
            }
            Some(Current::File { inspector, .. }) => {
                let file = inspector.finish(self.rules)?;
                self.parts.files.push(file);
            }
            Some(Current::Field { .. }) => self.parts.fields += 1,
            None => {}
        }
        Ok(())
    }
}

impl Sink<'_> {
    fn start_file(&mut self, field: FileRef, headers: PartHeaders) -> Result<Current, Refusal> {
        self.parts.file_count += 1;
        if self.parts.file_count > self.limits.max_files {
            return Err(Refusal::file(
                Reason::Size,
                &field,
                format!("more than {} files", self.limits.max_files),
            ));
        }
        let unnamed = headers.filename.as_deref() == Some("") && headers.filename_ext.is_none();
        let names = [headers.filename, headers.filename_ext]
            .into_iter()
            .flatten()
            .filter(|n| !n.is_empty())
            .collect();
        let declared = Declared {
            content_type: headers.content_type,
            names,
        };
        Ok(Current::File {
            inspector: Box::new(FileInspector::new(field, declared)?),
            unnamed,
        })
    }
}
