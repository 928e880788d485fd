//! The files and directories a configuration names: where a relative path points, and
//! whether what it names can be used, so `palisade check` refuses a file that `serve` would.
//!
//! Every path key is resolved against the directory of the configuration file, so palisade
//! finds the same files whatever directory it is started from (without a configuration file
//! the defaults stay relative to the working directory). [`resolve`] does it once, at the end
//! of [`super::Config::from_toml`]; the checks before it join the same base themselves so
//! their messages can quote the path as written, and no code after it joins paths again.
//!
//! [`check`] opens what serve will open, without changing anything on disk: files are opened
//! for reading (or for appending, without creating them), and a directory that must take new
//! files is asked for an unlinked temporary file. Key material read here goes through the
//! same functions serve reads it with, and is dropped at once; it never reaches a message.

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use palisade_policy::identity::KeySource;
use palisade_policy::session::StoreKind;
use palisade_store::ca::CaCertificates;
use palisade_store::redis_conn::{ClientCert, ClientCertFile};

use super::file::describe;
use super::server::LogTarget;
use super::validate::locate;
use super::{Config, Diagnostic, upload};

/// Makes every relative path of `config` relative to `base`, the configuration file's
/// directory.
pub(super) fn resolve(config: &mut Config, base: &Path) {
    let resolve = |path: &mut PathBuf| *path = base.join(&*path);
    if let Some(tls) = config.server.tls.as_mut() {
        resolve(&mut tls.cert);
        resolve(&mut tls.key);
    }
    if let LogTarget::File(file) = &mut config.log.security {
        resolve(file);
    }
    resolve(&mut config.session.file.sqlite_path);
    config.state.redis_ca_file.as_mut().map(resolve);
    config.state.redis_client_cert.as_mut().map(resolve);
    config.state.redis_client_key.as_mut().map(resolve);
    config.upstream.ca_file.as_mut().map(resolve);
    config.upstream.client_cert.as_mut().map(resolve);
    config.upstream.client_key.as_mut().map(resolve);
    config.csrf.file.secret_file.as_mut().map(resolve);
    if let Some(KeySource::JwksFile(file)) = config.identity.jwt.as_mut().map(|j| &mut j.keys) {
        resolve(file);
    }
    let waf = &mut config.waf;
    for file in [
        &mut waf.rules,
        &mut waf.geoip_country_db,
        &mut waf.geoip_asn_db,
    ] {
        file.as_mut().map(resolve);
    }
    waf.challenge.secret_file.as_mut().map(resolve);
    for rule in &mut config.upload {
        rule.quarantine_dir.as_mut().map(resolve);
    }
}

/// Every file or directory of `config` (parsed from `text`, the contents of `path`, and not
/// yet resolved) that serve could not use. The `[waf]` files are checked as they are loaded,
/// by `super::waf::compile`.
pub(super) fn check(config: &Config, path: &Path, text: &str) -> Vec<Diagnostic> {
    let base = path.parent().unwrap_or(Path::new(""));
    let mut checks = Checks {
        base,
        path,
        text,
        found: Vec::new(),
    };
    if let Some(tls) = &config.server.tls {
        checks.key("server.tls", "cert", &tls.cert, readable_file);
        checks.key("server.tls", "key", &tls.key, readable_file);
    }
    if let LogTarget::File(written) = &config.log.security {
        checks.key("log", "security", written, appendable_file);
    }
    if let Some(written) = &config.state.redis_ca_file {
        checks.key("state", "redis_ca_file", written, ca_file);
    }
    if let (Some(cert), Some(key)) = (
        &config.state.redis_client_cert,
        &config.state.redis_client_key,
    ) {
        checks.client_pair(
            "state",
            ("redis_client_cert", cert),
            ("redis_client_key", key),
        );
    }
    if let Some(written) = &config.upstream.ca_file {
        checks.key("upstream", "ca_file", written, ca_file);
    }
    if let (Some(cert), Some(key)) = (&config.upstream.client_cert, &config.upstream.client_key) {
        checks.client_pair("upstream", ("client_cert", cert), ("client_key", key));
    }
    let session = &config.session.file;
    if session.store == StoreKind::Sqlite {
        checks.key(
            "session",
            "sqlite_path",
            &session.sqlite_path,
            appendable_file,
        );
    }
    if let Some(written) = &config.csrf.file.secret_file {
        checks.key("csrf", "secret_file", written, |file| {
            readable_file(file).and_then(|()| crate::sessions::csrf_key_from_file(file).map(drop))
        });
    }
    if let Some(KeySource::JwksFile(written)) = config.identity.jwt.as_ref().map(|j| &j.keys) {
        checks.key("identity.jwt", "jwks_file", written, |file| {
            readable_file(file).and_then(|()| crate::sessions::jwks_from_file(file).map(drop))
        });
    }
    for (index, rule) in config.upload.iter().enumerate() {
        if let Some(written) = &rule.quarantine_dir {
            checks.quarantine_dir(index, written);
        }
    }
    if let Err(why) = spool_dir(config) {
        let span = upload::locate_spool(text, "dir");
        let diagnostic = Diagnostic::at(path, text, span, format!("spool.dir: {why}"));
        checks.found.push(diagnostic);
    }
    checks
        .found
        .extend(check_tls_pair(config, base, path, text));
    checks.found
}

/// The problems found so far, and where to place them.
struct Checks<'a> {
    base: &'a Path,
    path: &'a Path,
    text: &'a str,
    found: Vec<Diagnostic>,
}

impl Checks<'_> {
    /// Runs `usable` on `written` (resolved) and refuses `section.key` when it fails;
    /// whether it passed.
    fn key(
        &mut self,
        section: &str,
        key: &str,
        written: &Path,
        usable: impl FnOnce(&Path) -> Result<(), String>,
    ) -> bool {
        let Err(why) = usable(&self.base.join(written)) else {
            return true;
        };
        let message = unusable(&format!("{section}.{key}"), written, self.base, &why);
        let span = locate(self.text, section, key);
        let diagnostic = Diagnostic::at(self.path, self.text, span, message);
        self.found.push(diagnostic);
        false
    }

    /// A client certificate file and its key file, each readable, then checked together (the
    /// key must be the certificate's, the certificate in its dates).
    fn client_pair(
        &mut self,
        section: &str,
        (cert_key, cert): (&str, &Path),
        (key_key, key): (&str, &Path),
    ) {
        let cert_readable = self.key(section, cert_key, cert, readable_file);
        let key_readable = self.key(section, key_key, key, readable_file);
        if !(cert_readable && key_readable) {
            return;
        }
        let (cert_path, key_path) = (self.base.join(cert), self.base.join(key));
        let Err(problems) = ClientCert::from_files(&cert_path, &key_path) else {
            return;
        };
        for (file, why) in problems {
            let (name, written) = match file {
                ClientCertFile::Cert => (cert_key, cert),
                ClientCertFile::Key => (key_key, key),
            };
            self.key(section, name, written, |_| Err(why));
        }
    }

    /// `quarantine_dir` of the `index`th `[[upload]]` table, refused at that table's key.
    fn quarantine_dir(&mut self, index: usize, written: &Path) {
        if let Err(why) = writable_dir(&self.base.join(written)) {
            let key = format!("upload[{index}].quarantine_dir");
            let message = unusable(&key, written, self.base, &why);
            let span = upload::locate_key(self.text, index, "quarantine_dir");
            let diagnostic = Diagnostic::at(self.path, self.text, span, message);
            self.found.push(diagnostic);
        }
    }
}

/// The spool directory (`[spool] dir` or the default in the temporary directory): start-up
/// creates it if missing (its parent must exist) or refuses it unless it passes the checks
/// of `crate::upload::vet_existing_dir`. A relative `dir` is refused by
/// `super::upload::validate`, not here.
fn spool_dir(config: &Config) -> Result<(), String> {
    let dir = config.spool.settings().dir;
    if dir.is_relative() {
        return Ok(());
    }
    match std::fs::symlink_metadata(&dir) {
        Ok(meta) => crate::upload::vet_existing_dir(&dir, &meta).map_err(|err| err.to_string()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let parent = parent_dir(&dir);
            writable_existing_dir(&parent).map_err(|why| {
                format!(
                    "{}: cannot be created in {}: {why}",
                    dir.display(),
                    parent.display()
                )
            })
        }
        Err(err) => Err(format!("{}: {}", dir.display(), describe(&err))),
    }
}

/// A readable certificate and key are also parsed and paired, by the code serve loads them
/// with, so a key that does not match its certificate is refused here too.
fn check_tls_pair(config: &Config, base: &Path, path: &Path, text: &str) -> Option<Diagnostic> {
    let tls = config.server.tls.as_ref()?;
    let mut resolved = tls.clone();
    resolved.cert = base.join(&tls.cert);
    resolved.key = base.join(&tls.key);
    if readable_file(&resolved.cert).is_err() || readable_file(&resolved.key).is_err() {
        return None;
    }
    let err = crate::tls::check(&resolved).err()?;
    let key = if err.is_about_key() { "key" } else { "cert" };
    let span = locate(text, "server.tls", key);
    Some(Diagnostic::at(
        path,
        text,
        span,
        format!("server.tls.{key}: {err}"),
    ))
}

/// The message for `key`, naming `written` (resolved against `base`) and why it cannot be
/// used; a relative path says where it was looked for.
pub(super) fn unusable(key: &str, written: &Path, base: &Path, why: &str) -> String {
    let resolved = base.join(written);
    let mut message = format!("{key}: {}: {why}", resolved.display());
    if written.is_relative() {
        message.push_str(&format!(
            " (the relative path {:?} is read from the configuration file's directory)",
            written.display().to_string()
        ));
    }
    message
}

/// A file that exists and can be opened for reading.
pub(super) fn readable_file(path: &Path) -> Result<(), String> {
    // Opening a named pipe waits for a writer: `check` and a SIGHUP reload would hang, and
    // what the check read from it would be gone when serve reads the file.
    if std::fs::metadata(path).is_ok_and(|meta| meta.file_type().is_fifo()) {
        return Err("is a named pipe (FIFO), expected a file".into());
    }
    let file = std::fs::File::open(path).map_err(|err| describe(&err))?;
    match file.metadata() {
        Ok(meta) if meta.is_dir() => Err("is a directory, expected a file".into()),
        Ok(_) => Ok(()),
        Err(err) => Err(describe(&err)),
    }
}

/// A readable file of PEM CA certificates, read as serve reads it.
fn ca_file(path: &Path) -> Result<(), String> {
    readable_file(path).and_then(|()| CaCertificates::from_file(path).map(drop))
}

/// A file palisade creates if missing and writes to: an existing one must open for
/// appending; a missing one needs a directory that takes new files.
fn appendable_file(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err("is a directory, expected a file".into()),
        Ok(_) => std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .map_err(|err| describe(&err)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let dir = parent_dir(path);
            writable_existing_dir(&dir)
                .map_err(|why| format!("cannot create the file in {}: {why}", dir.display()))
        }
        Err(err) => Err(describe(&err)),
    }
}

/// A directory that takes new files: it exists, or its nearest existing ancestor does (it
/// is created when first needed).
fn writable_dir(path: &Path) -> Result<(), String> {
    use io::ErrorKind::{NotADirectory, NotFound};
    match std::fs::metadata(path) {
        Ok(_) => writable_existing_dir(path),
        Err(err) if matches!(err.kind(), NotFound | NotADirectory) => {
            let ancestor = path
                .ancestors()
                .skip(1)
                .find(|a| a.as_os_str().is_empty() || a.exists())
                .map_or_else(|| PathBuf::from("."), parent_or_dot);
            writable_existing_dir(&ancestor)
                .map_err(|why| format!("cannot be created in {}: {why}", ancestor.display()))
        }
        Err(err) => Err(describe(&err)),
    }
}

/// An existing directory where a new file can be made (an unlinked temporary file, so
/// nothing is left behind).
fn writable_existing_dir(dir: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(dir).map_err(|err| describe(&err))?;
    if !meta.is_dir() {
        return Err("not a directory".into());
    }
    tempfile::tempfile_in(dir)
        .map(drop)
        .map_err(|err| describe(&err))
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    path.parent()
        .map_or_else(|| PathBuf::from("."), parent_or_dot)
}

/// `dir`, or `.` when it is the empty path a bare relative name has for parent.
fn parent_or_dot(dir: &Path) -> PathBuf {
    if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir.to_path_buf()
    }
}
