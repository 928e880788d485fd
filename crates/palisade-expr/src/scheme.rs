//! The field scheme: which field names exist and their types.
//!
//! [`Scheme::standard`] holds the HTTP, IP, geo and identity fields; the gateway adds its own
//! (managed-detection scores such as `waf.score.sqli`) with [`Scheme::add_field`] before it
//! compiles any rule. Compiled expressions refer to fields by [`FieldId`], an index into the
//! scheme they were compiled against.

use std::collections::HashMap;
use std::fmt;

use crate::types::Type;

/// Index of a field in its [`Scheme`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldId(pub(crate) u16);

impl FieldId {
    /// The index, for callers keeping per-field tables.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// The fields palisade computes from the request itself (see [`crate::request`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StandardField {
    /// `http.request.method`: `GET`, `POST`, ... as sent.
    Method,
    /// `http.request.uri`: path and query as sent (`/a?b=c`).
    Uri,
    /// `http.request.uri.path`: the path as sent, not decoded.
    UriPath,
    /// `http.request.uri.path.extension`: lower-cased extension of the last segment, no dot.
    UriPathExtension,
    /// `http.request.uri.query`: the query without `?`, not decoded.
    UriQuery,
    /// `http.request.uri.args`: query arguments, name to values, not decoded.
    UriArgs,
    /// `http.request.uri.args.names`.
    UriArgsNames,
    /// `http.request.uri.args.values`.
    UriArgsValues,
    /// `http.request.full_uri`: scheme, host, path and query.
    FullUri,
    /// `http.request.version`: `HTTP/1.1`, `HTTP/2`, ...
    Version,
    /// `http.host`: the Host header (or URI authority) as sent.
    Host,
    /// `http.user_agent`.
    UserAgent,
    /// `http.referer`.
    Referer,
    /// `http.cookie`: the whole Cookie header (several joined with `; `).
    Cookie,
    /// `http.request.cookies`: cookie name to values.
    Cookies,
    /// `http.request.headers`: lower-cased header name to values.
    Headers,
    /// `http.request.headers.names`: header names in request order, as sent.
    HeaderNames,
    /// `http.request.headers.values`: header values in request order.
    HeaderValues,
    /// `http.request.body.raw`: the body, up to the gateway's inspection cap.
    BodyRaw,
    /// `http.request.body.form`: urlencoded form fields, decoded.
    BodyForm,
    /// `http.request.body.form.names`.
    BodyFormNames,
    /// `http.request.body.form.values`.
    BodyFormValues,
    /// `http.request.body.size`: the whole body's size in bytes.
    BodySize,
    /// `http.request.body.truncated`: the body was longer than the inspection cap.
    BodyTruncated,
    /// `ip.src`: the client address.
    IpSrc,
    /// `ip.src.country` / `ip.geoip.country`: ISO 3166 alpha-2 code, empty if unknown.
    Country,
    /// `ip.src.asnum` / `ip.geoip.asnum`: the client's autonomous system, 0 if unknown.
    Asnum,
    /// `ssl`: the client connection is TLS.
    Ssl,
    /// `palisade.user.id`: the authenticated user, empty if none.
    UserId,
}

impl StandardField {
    /// Whether computing the field needs the request body.
    pub fn needs_body(self) -> bool {
        use StandardField::*;
        matches!(
            self,
            BodyRaw | BodyForm | BodyFormNames | BodyFormValues | BodySize | BodyTruncated
        )
    }
}

/// Every standard field: names (first is canonical, later ones aliases) and type.
fn standard_fields() -> Vec<(&'static [&'static str], Type, StandardField)> {
    use StandardField as F;
    vec![
        (&["http.request.method"], Type::Bytes, F::Method),
        (&["http.request.uri"], Type::Bytes, F::Uri),
        (&["http.request.uri.path"], Type::Bytes, F::UriPath),
        (
            &["http.request.uri.path.extension"],
            Type::Bytes,
            F::UriPathExtension,
        ),
        (&["http.request.uri.query"], Type::Bytes, F::UriQuery),
        (&["http.request.uri.args"], Type::string_map(), F::UriArgs),
        (
            &["http.request.uri.args.names"],
            Type::strings(),
            F::UriArgsNames,
        ),
        (
            &["http.request.uri.args.values"],
            Type::strings(),
            F::UriArgsValues,
        ),
        (&["http.request.full_uri"], Type::Bytes, F::FullUri),
        (&["http.request.version"], Type::Bytes, F::Version),
        (&["http.host"], Type::Bytes, F::Host),
        (&["http.user_agent"], Type::Bytes, F::UserAgent),
        (&["http.referer"], Type::Bytes, F::Referer),
        (&["http.cookie"], Type::Bytes, F::Cookie),
        (&["http.request.cookies"], Type::string_map(), F::Cookies),
        (&["http.request.headers"], Type::string_map(), F::Headers),
        (
            &["http.request.headers.names"],
            Type::strings(),
            F::HeaderNames,
        ),
        (
            &["http.request.headers.values"],
            Type::strings(),
            F::HeaderValues,
        ),
        (&["http.request.body.raw"], Type::Bytes, F::BodyRaw),
        (&["http.request.body.form"], Type::string_map(), F::BodyForm),
        (
            &["http.request.body.form.names"],
            Type::strings(),
            F::BodyFormNames,
        ),
        (
            &["http.request.body.form.values"],
            Type::strings(),
            F::BodyFormValues,
        ),
        (&["http.request.body.size"], Type::Int, F::BodySize),
        (
            &["http.request.body.truncated"],
            Type::Bool,
            F::BodyTruncated,
        ),
        (&["ip.src"], Type::Ip, F::IpSrc),
        (
            &["ip.src.country", "ip.geoip.country"],
            Type::Bytes,
            F::Country,
        ),
        (&["ip.src.asnum", "ip.geoip.asnum"], Type::Int, F::Asnum),
        (&["ssl"], Type::Bool, F::Ssl),
        (&["palisade.user.id"], Type::Bytes, F::UserId),
    ]
}

/// One field of a scheme.
#[derive(Clone, Debug)]
pub struct FieldDef {
    id: FieldId,
    name: String,
    ty: Type,
    standard: Option<StandardField>,
}

impl FieldDef {
    /// The field's index in its scheme.
    pub fn id(&self) -> FieldId {
        self.id
    }

    /// The canonical name (`ip.src.country`, never its alias).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The field's type; a provider must return values of exactly this type.
    pub fn ty(&self) -> &Type {
        &self.ty
    }

    /// Which standard field this is, if it is one.
    pub fn standard(&self) -> Option<StandardField> {
        self.standard
    }

    /// Whether computing the field needs the request body.
    pub fn needs_body(&self) -> bool {
        self.standard.is_some_and(StandardField::needs_body)
    }
}

/// A field that cannot be added to a scheme.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SchemeError {
    /// The name is taken.
    #[error("field '{0}' is already defined")]
    Duplicate(String),
    /// The name is not a dotted lower-case identifier.
    #[error("'{0}' is not a valid field name: use lower-case letters, digits, '_' and '.'")]
    BadName(String),
    /// Too many fields.
    #[error("a scheme holds at most {} fields", u16::MAX)]
    Full,
}

/// The set of fields rules may use.
#[derive(Clone)]
pub struct Scheme {
    fields: Vec<FieldDef>,
    by_name: HashMap<String, FieldId>,
}

impl fmt::Debug for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.fields.iter().map(|d| (&d.name, &d.ty)))
            .finish()
    }
}

impl Scheme {
    /// A scheme with no fields at all.
    pub fn empty() -> Scheme {
        Scheme {
            fields: Vec::new(),
            by_name: HashMap::new(),
        }
    }

    /// The standard HTTP, IP, geo and identity fields.
    pub fn standard() -> Scheme {
        let mut scheme = Scheme::empty();
        for (names, ty, standard) in standard_fields() {
            let id = scheme.push(names[0], ty, Some(standard));
            for alias in &names[1..] {
                scheme.by_name.insert((*alias).to_owned(), id);
            }
        }
        scheme
    }

    /// Adds a field the gateway computes itself, e.g. `waf.score.sqli` as [`Type::Int`].
    pub fn add_field(&mut self, name: &str, ty: Type) -> Result<FieldId, SchemeError> {
        let valid = !name.is_empty()
            && name.split('.').all(|part| {
                part.starts_with(|c: char| c.is_ascii_lowercase())
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            });
        if !valid {
            return Err(SchemeError::BadName(name.to_owned()));
        }
        if self.by_name.contains_key(name) {
            return Err(SchemeError::Duplicate(name.to_owned()));
        }
        if self.fields.len() >= usize::from(u16::MAX) {
            return Err(SchemeError::Full);
        }
        Ok(self.push(name, ty, None))
    }

    fn push(&mut self, name: &str, ty: Type, standard: Option<StandardField>) -> FieldId {
        let id = FieldId(u16::try_from(self.fields.len()).unwrap_or(u16::MAX));
        self.fields.push(FieldDef {
            id,
            name: name.to_owned(),
            ty,
            standard,
        });
        self.by_name.insert(name.to_owned(), id);
        id
    }

    /// The field called `name` (aliases included).
    pub fn lookup(&self, name: &str) -> Option<&FieldDef> {
        self.by_name.get(name).map(|id| &self.fields[id.index()])
    }

    /// The field with this id.
    ///
    /// # Panics
    /// If `id` comes from another scheme with more fields.
    pub fn field(&self, id: FieldId) -> &FieldDef {
        &self.fields[id.index()]
    }

    /// Every field, in id order.
    pub fn fields(&self) -> &[FieldDef] {
        &self.fields
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether the scheme has no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Field names close to `name`, for "did you mean" hints.
    pub(crate) fn suggest(&self, name: &str) -> Option<&str> {
        let last = name.rsplit('.').next().unwrap_or(name);
        self.by_name
            .keys()
            .filter(|k| k.ends_with(&format!(".{last}")) || k.as_str() == last)
            .min_by_key(|k| k.len())
            .map(String::as_str)
    }
}

/// A set of fields (those an expression or rule set reads).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    bits: Vec<u64>,
}

impl FieldSet {
    /// Adds a field.
    pub fn insert(&mut self, id: FieldId) {
        let (word, bit) = (id.index() / 64, id.index() % 64);
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        self.bits[word] |= 1 << bit;
    }

    /// Whether the field is in the set.
    pub fn contains(&self, id: FieldId) -> bool {
        let (word, bit) = (id.index() / 64, id.index() % 64);
        self.bits.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    /// Adds every field of `other`.
    pub fn union_with(&mut self, other: &FieldSet) {
        if self.bits.len() < other.bits.len() {
            self.bits.resize(other.bits.len(), 0);
        }
        for (mine, theirs) in self.bits.iter_mut().zip(&other.bits) {
            *mine |= theirs;
        }
    }

    /// Whether no field is in the set.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }

    /// The fields, in id order.
    pub fn iter(&self) -> impl Iterator<Item = FieldId> + '_ {
        self.bits.iter().enumerate().flat_map(|(word, bits)| {
            (0..64)
                .filter(move |bit| bits & (1 << bit) != 0)
                .map(move |bit| FieldId(u16::try_from(word * 64 + bit).unwrap_or(u16::MAX)))
        })
    }

    /// Whether any field in the set needs the request body.
    pub fn needs_body(&self, scheme: &Scheme) -> bool {
        self.iter().any(|id| scheme.field(id).needs_body())
    }

    /// Whether the set holds the field called `name` in `scheme`.
    pub fn contains_name(&self, scheme: &Scheme, name: &str) -> bool {
        scheme
            .lookup(name)
            .is_some_and(|def| self.contains(def.id()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geoip_names_are_aliases_of_the_src_fields() {
        let scheme = Scheme::standard();
        let a = scheme.lookup("ip.geoip.country").expect("alias");
        let b = scheme.lookup("ip.src.country").expect("field");
        assert_eq!(a.id(), b.id());
        assert_eq!(a.name(), "ip.src.country");
    }

    #[test]
    fn extra_fields_can_be_added_once() {
        let mut scheme = Scheme::standard();
        let id = scheme
            .add_field("waf.score.sqli", Type::Int)
            .expect("added");
        assert_eq!(scheme.lookup("waf.score.sqli").map(FieldDef::id), Some(id));
        assert!(matches!(
            scheme.add_field("waf.score.sqli", Type::Int),
            Err(SchemeError::Duplicate(_))
        ));
        assert!(matches!(
            scheme.add_field("Waf..x", Type::Int),
            Err(SchemeError::BadName(_))
        ));
    }

    #[test]
    fn field_sets_report_body_needs() {
        let scheme = Scheme::standard();
        let mut set = FieldSet::default();
        set.insert(scheme.lookup("http.host").expect("field").id());
        assert!(!set.needs_body(&scheme));
        set.insert(scheme.lookup("http.request.body.raw").expect("field").id());
        assert!(set.needs_body(&scheme));
        assert_eq!(set.iter().count(), 2);
    }
}
