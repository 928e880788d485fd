//! One memory-mapped database file and its lookups.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use maxminddb::{PathElement, Reader};

/// What a database is opened for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatabaseKind {
    /// Countries: GeoLite2/GeoIP2 Country or City (or Enterprise).
    Country,
    /// Autonomous systems: GeoLite2 ASN, GeoIP2 ISP (or Enterprise).
    Asn,
}

impl DatabaseKind {
    /// Words one of which the database's `database_type` metadata must contain.
    fn accepted_types(self) -> &'static [&'static str] {
        match self {
            Self::Country => &["Country", "City", "Enterprise"],
            Self::Asn => &["ASN", "ISP", "Enterprise"],
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Country => "a country database (GeoLite2-Country, GeoIP2-City, ...)",
            Self::Asn => "an ASN database (GeoLite2-ASN, GeoIP2-ISP, ...)",
        }
    }
}

/// A database that could not be opened. The message names the file and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", path.display())]
pub struct GeoError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub detail: String,
}

impl GeoError {
    fn new(path: &Path, detail: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            detail: detail.into(),
        }
    }
}

/// How a file looked when it was opened; a different stamp means it was replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    pub(crate) fn of(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(path)?;
        Ok(Self {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode: meta.ino(),
        })
    }
}

/// One opened, memory-mapped database.
pub struct GeoDatabase {
    reader: Reader<maxminddb::Mmap>,
    path: PathBuf,
    kind: DatabaseKind,
    pub(crate) stamp: FileStamp,
}

impl fmt::Debug for GeoDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeoDatabase")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .field("type", &self.database_type())
            .finish()
    }
}

impl GeoDatabase {
    /// Maps `path` and checks that it is a MaxMind database of `kind`.
    pub fn open(path: &Path, kind: DatabaseKind) -> Result<Self, GeoError> {
        let stamp = FileStamp::of(path)
            .map_err(|err| GeoError::new(path, format!("cannot read the database: {err}")))?;
        if stamp.len == 0 {
            return Err(GeoError::new(path, "the database file is empty"));
        }
        // SAFETY: the mapping is read-only and `Reader` bounds-checks every offset it reads,
        // so any byte content is safe to decode. What Rust cannot rule out is another process
        // changing or truncating the file while it is mapped (undefined behaviour, or SIGBUS
        // on truncation). Palisade never writes the file, and the supported way to update it
        // is the one MaxMind's `geoipupdate` uses: write a new file and rename it over the old
        // path, which leaves this mapping on the old inode untouched until it is dropped
        // (`GeoSource::refresh` then maps the new file). Operators are told so in
        // docs/rules.md.
        #[allow(unsafe_code)]
        let reader = unsafe { Reader::open_mmap(path) }.map_err(|err| {
            GeoError::new(
                path,
                format!("not a readable MaxMind (.mmdb) database: {err}"),
            )
        })?;
        let database = Self {
            reader,
            path: path.to_path_buf(),
            kind,
            stamp,
        };
        database.check_kind()?;
        Ok(database)
    }

    fn check_kind(&self) -> Result<(), GeoError> {
        let found = self.database_type();
        if self
            .kind
            .accepted_types()
            .iter()
            .any(|word| found.contains(word))
        {
            return Ok(());
        }
        Err(GeoError::new(
            &self.path,
            format!("is a '{found}' database; expected {}", self.kind.describe()),
        ))
    }

    /// The `database_type` the file declares (`GeoLite2-Country`).
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// The file this database was mapped from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the database was opened for.
    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    /// The ISO 3166-1 alpha-2 country of `ip` (the registered country when the database
    /// has no located one), or `None` when the database does not know the address.
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        let result = self.reader.lookup(ip.to_canonical()).ok()?;
        let located = result
            .decode_path::<&str>(&[PathElement::Key("country"), PathElement::Key("iso_code")]);
        let code = match located {
            Ok(Some(code)) => Some(code),
            _ => result
                .decode_path::<&str>(&[
                    PathElement::Key("registered_country"),
                    PathElement::Key("iso_code"),
                ])
                .ok()
                .flatten(),
        };
        code.map(str::to_owned)
    }

    /// The autonomous system number of `ip`, or `None` when the database does not know it.
    pub fn asn(&self, ip: IpAddr) -> Option<u32> {
        let result = self.reader.lookup(ip.to_canonical()).ok()?;
        result
            .decode_path::<u32>(&[PathElement::Key("autonomous_system_number")])
            .ok()
            .flatten()
    }
}
