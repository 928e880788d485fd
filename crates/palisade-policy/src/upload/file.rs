//! Inspection of one file while its bytes stream past: the size cap (refused the moment it
//! is crossed), the type from the first bytes against the allowed types, the declared
//! `Content-Type` and the name's extension, and the image's structure.

use super::config::UploadRule;
use super::edit::Edit;
use super::filename;
use super::image::{CodeScan, ImageCheck, ImageSettings};
use super::multipart::headers::percent_decode;
use super::sniff::{FileType, SNIFF_WINDOW, is_generic_mime, sniff};
use super::verdict::{FileRef, Reason, Refusal};

/// What the client said about a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Declared {
    /// The `Content-Type` given for the file, if any.
    pub content_type: Option<String>,
    /// Every name given for it (`filename` and `filename*`); each is checked.
    pub names: Vec<String>,
}

/// A file that passed every streaming check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InspectedFile {
    /// Which file.
    pub file: FileRef,
    /// Its size in bytes.
    pub size: u64,
    /// Its type, from its bytes.
    pub file_type: FileType,
    /// The `Content-Type` the client declared.
    pub declared_type: Option<String>,
    /// Width and height, for images.
    pub dimensions: Option<(u32, u32)>,
    /// Metadata removals in file offsets (empty unless stripping).
    pub edits: Vec<Edit>,
}

impl InspectedFile {
    /// The file's byte range within the request body.
    pub fn body_range(&self) -> std::ops::Range<u64> {
        self.file.body_offset..self.file.body_offset + self.size
    }
}

/// Per-file settings taken from the upload rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRules {
    /// Largest file in bytes.
    pub max_file_size: u64,
    /// Types accepted.
    pub allowed_types: Vec<FileType>,
    /// Image checks' settings.
    pub image: ImageSettings,
}

impl From<&UploadRule> for FileRules {
    fn from(rule: &UploadRule) -> Self {
        Self {
            max_file_size: rule.limits.max_file_size,
            allowed_types: rule.allowed_types.clone(),
            image: ImageSettings {
                max_pixels: rule.max_pixels,
                strip_metadata: rule.strip_metadata,
            },
        }
    }
}

/// The streaming inspector of one file.
#[derive(Debug)]
pub struct FileInspector {
    file: FileRef,
    declared: Declared,
    size: u64,
    head: Vec<u8>,
    file_type: Option<FileType>,
    image: Option<ImageCheck>,
    code: CodeScan,
}

impl FileInspector {
    /// Starts inspecting a file; refuses at once an unsafe file name.
    pub fn new(file: FileRef, declared: Declared) -> Result<Self, Refusal> {
        for name in &declared.names {
            let decoded = percent_decode(name);
            // A name such as `..%2Fetc%2Fpasswd` is checked as the application may decode it.
            let problem =
                filename::problem(name).or_else(|| decoded.as_deref().and_then(filename::problem));
            if let Some(problem) = problem {
                return Err(Refusal::file(Reason::Malformed, &file, problem));
            }
        }
        Ok(Self {
            file,
            declared,
            size: 0,
            head: Vec::new(),
            file_type: None,
            image: None,
            code: CodeScan::default(),
        })
    }

    /// The file this inspector looks at.
    pub fn file(&self) -> &FileRef {
        &self.file
    }

    /// Bytes received so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes held for sniffing (bounded by [`SNIFF_WINDOW`]).
    pub fn buffered_len(&self) -> usize {
        self.head.capacity()
    }

    /// Feeds the next bytes of the file.
    pub fn feed(&mut self, data: &[u8], rules: &FileRules) -> Result<(), Refusal> {
        self.size += data.len() as u64;
        if self.size > rules.max_file_size {
            return Err(self.refuse(
                Reason::Size,
                format!("file larger than {} bytes", rules.max_file_size),
            ));
        }
        if self.file_type.is_some() {
            return self.feed_image(data);
        }
        let take = (SNIFF_WINDOW - self.head.len()).min(data.len());
        self.head.extend_from_slice(&data[..take]);
        if self.head.len() < SNIFF_WINDOW {
            return Ok(());
        }
        self.classify(rules)?;
        self.feed_image(&data[take..])
    }

    /// The file ended; runs the checks that need its end.
    pub fn finish(mut self, rules: &FileRules) -> Result<InspectedFile, Refusal> {
        if self.file_type.is_none() {
            self.classify(rules)?;
        }
        let file_type = self.file_type.expect("classify sets the type or refuses");
        let image = match self.image.take() {
            Some(check) => Some(
                check
                    .finish()
                    .map_err(|p| self.refuse(p.reason, p.detail))?,
            ),
            None => None,
        };
        Ok(InspectedFile {
            declared_type: self.declared.content_type,
            dimensions: image.as_ref().map(|i| (i.width, i.height)),
            edits: image.map(|i| i.edits).unwrap_or_default(),
            file: self.file,
            size: self.size,
            file_type,
        })
    }

    fn feed_image(&mut self, data: &[u8]) -> Result<(), Refusal> {
        let Some(check) = self.image.as_mut() else {
            return Ok(());
        };
        let fed = check.feed(data).and_then(|()| self.code.feed(data));
        match fed {
            Ok(()) => Ok(()),
            Err(p) => Err(self.refuse(p.reason, p.detail)),
        }
    }

    /// Decides the type from the sniff window, then checks it against what is allowed and
    /// what was declared, and starts the image checks on the bytes held so far.
    fn classify(&mut self, rules: &FileRules) -> Result<(), Refusal> {
        let Some(file_type) = sniff(&self.head) else {
            let detail = if self.size == 0 {
                "empty file"
            } else {
                "file of unknown type"
            };
            return Err(self.refuse(Reason::Type, detail));
        };
        if !rules.allowed_types.contains(&file_type) {
            return Err(self.refuse(Reason::Type, format!("{file_type} is not allowed")));
        }
        self.check_declared(file_type)?;
        self.file_type = Some(file_type);
        self.image = ImageCheck::for_type(file_type, rules.image);
        let head = std::mem::take(&mut self.head);
        self.feed_image(&head)
    }

    fn check_declared(&self, file_type: FileType) -> Result<(), Refusal> {
        if let Some(declared) = self.declared.content_type.as_deref()
            && !is_generic_mime(declared)
            && FileType::from_mime(declared) != Some(file_type)
        {
            return Err(self.refuse(
                Reason::Mismatch,
                format!("declared {declared} but the bytes are {file_type}"),
            ));
        }
        for name in &self.declared.names {
            if let Some(ext) = filename::extension(name)
                && !file_type.has_extension(ext)
            {
                return Err(self.refuse(
                    Reason::Mismatch,
                    format!("extension .{ext} does not fit {file_type}"),
                ));
            }
        }
        Ok(())
    }

    fn refuse(&self, reason: Reason, detail: impl Into<String>) -> Refusal {
        Refusal::file(reason, &self.file, detail).with_file_len(self.size)
    }
}
