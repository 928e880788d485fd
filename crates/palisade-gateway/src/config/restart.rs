//! The keys read only at start-up: listeners, worker threads, connection limits, TLS, the
//! security log, the stores and key material, the spool. A SIGHUP reload applies everything
//! else; for these it can only say which ones changed and that a restart applies them.
//!
//! Keys are named, never their values: `state.redis_url` may carry a password from
//! `PALISADE_REDIS_URL`.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use super::Config;

/// The restart-only keys whose values differ between `old` (in force) and `new` (just
/// read), as dotted names (`server.workers`, `session.idle_timeout`), in a stable order.
pub fn changed_keys(old: &Config, new: &Config) -> Vec<String> {
    let mut changed = Vec::new();
    let (a, b) = (&old.server, &new.server);
    let server = [
        ("server.listen", a.listen != b.listen),
        ("server.workers", a.workers != b.workers),
        (
            "server.max_connections",
            a.max_connections != b.max_connections,
        ),
        (
            "server.max_header_size",
            a.max_header_size != b.max_header_size,
        ),
        ("server.max_headers", a.max_headers != b.max_headers),
        (
            "server.header_read_timeout",
            a.header_read_timeout != b.header_read_timeout,
        ),
        ("server.idle_timeout", a.idle_timeout != b.idle_timeout),
        ("server.send_timeout", a.send_timeout != b.send_timeout),
        (
            "server.shutdown_timeout",
            a.shutdown_timeout != b.shutdown_timeout,
        ),
    ];
    let tls = |c: &Config| {
        c.server
            .tls
            .as_ref()
            .map(|t| (t.cert.clone(), t.key.clone(), t.reload_interval))
    };
    let (s, t) = (&old.spool, &new.spool);
    let others = [
        ("server.tls", tls(old) != tls(new)),
        ("admin.listen", old.admin.listen != new.admin.listen),
        ("log.security", old.log.security != new.log.security),
        ("log.queue", old.log.queue != new.log.queue),
        (
            "log.repeat_window",
            old.log.repeat_window != new.log.repeat_window,
        ),
        ("spool.dir", s.dir != t.dir),
        ("spool.memory_limit", s.memory_limit != t.memory_limit),
        ("spool.max_total", s.max_total != t.max_total),
    ];
    for (key, differs) in server.into_iter().chain(others) {
        if differs {
            changed.push(key.to_owned());
        }
    }
    changed_fields("state", &old.state, &new.state, &mut changed);
    changed_fields(
        "session",
        &old.session.file,
        &new.session.file,
        &mut changed,
    );
    changed_fields("csrf", &old.csrf.file, &new.csrf.file, &mut changed);
    changed_fields(
        "identity",
        &old.identity.file,
        &new.identity.file,
        &mut changed,
    );
    changed
}

/// The fields of a section owned by another crate that differ, found through its serde
/// form so a key added there is covered without a change here.
fn changed_fields<T: Serialize>(section: &str, old: &T, new: &T, changed: &mut Vec<String>) {
    match (serde_json::to_value(old), serde_json::to_value(new)) {
        (Ok(old), Ok(new)) => differences(section, &old, &new, changed),
        // Cannot happen for these plain structs; naming the section still warns.
        _ => changed.push(section.to_owned()),
    }
}

fn differences(name: &str, old: &Value, new: &Value, changed: &mut Vec<String>) {
    let (Value::Object(a), Value::Object(b)) = (old, new) else {
        if old != new {
            changed.push(name.to_owned());
        }
        return;
    };
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for key in keys {
        let field = format!("{name}.{key}");
        match (a.get(key), b.get(key)) {
            (Some(x), Some(y)) => differences(&field, x, y, changed),
            (x, y) if x != y => changed.push(field),
            _ => {}
        }
    }
}
