//! Lookups and reloads against MaxMind's small test databases in `shared/fixtures/geoip`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use palisade_geo::{DatabaseKind, GeoDatabase, GeoSource};

fn fixtures() -> PathBuf {
    let shared = std::env::var_os("PALISADE_SHARED").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
        PathBuf::from,
    );
    shared.join("fixtures/geoip")
}

fn country_db() -> PathBuf {
    fixtures().join("GeoLite2-Country-Test.mmdb")
}

fn asn_db() -> PathBuf {
    fixtures().join("GeoLite2-ASN-Test.mmdb")
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
}

#[test]
fn countries_are_found_for_v4_and_v6_networks() {
    let db = GeoDatabase::open(&country_db(), DatabaseKind::Country).expect("opens");
    assert_eq!(db.database_type(), "GeoLite2-Country");
    assert_eq!(db.country(ip("111.235.160.1")).as_deref(), Some("CN"));
    assert_eq!(db.country(ip("111.235.163.255")).as_deref(), Some("CN"));
    assert_eq!(db.country(ip("81.2.69.142")).as_deref(), Some("GB"));
    assert_eq!(db.country(ip("2001:218::1")).as_deref(), Some("JP"));
    assert_eq!(
        db.country(ip("::ffff:111.235.160.1")).as_deref(),
        Some("CN")
    );
}

#[test]
fn addresses_the_database_does_not_know_have_no_country() {
    let db = GeoDatabase::open(&country_db(), DatabaseKind::Country).expect("opens");
    assert_eq!(db.country(ip("127.0.0.1")), None);
    assert_eq!(db.country(ip("111.235.164.1")), None);
    assert_eq!(
        db.asn(ip("111.235.160.1")),
        None,
        "a country database has no ASN"
    );
}

#[test]
fn autonomous_systems_are_found() {
    let db = GeoDatabase::open(&asn_db(), DatabaseKind::Asn).expect("opens");
    assert_eq!(db.asn(ip("1.0.0.1")), Some(15169));
    assert_eq!(db.asn(ip("12.81.96.5")), Some(7018));
    assert_eq!(db.asn(ip("127.0.0.1")), None);
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let missing = fixtures().join("no-such.mmdb");
    let err = GeoDatabase::open(&missing, DatabaseKind::Country).expect_err("missing");
    assert!(
        err.to_string().starts_with(&missing.display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("cannot read"), "{err}");
}

#[test]
fn a_corrupt_or_empty_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let corrupt = dir.path().join("corrupt.mmdb");
    std::fs::write(&corrupt, b"this is not a maxmind database at all").expect("write");
    let err = GeoDatabase::open(&corrupt, DatabaseKind::Country).expect_err("corrupt");
    assert!(
        err.to_string()
            .contains("corrupt.mmdb: not a readable MaxMind"),
        "{err}"
    );

    let truncated = dir.path().join("truncated.mmdb");
    let bytes = std::fs::read(country_db()).expect("read");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let err = GeoDatabase::open(&truncated, DatabaseKind::Country).expect_err("truncated");
    assert!(err.to_string().contains("truncated.mmdb"), "{err}");

    let empty = dir.path().join("empty.mmdb");
    std::fs::write(&empty, b"").expect("write");
    let err = GeoDatabase::open(&empty, DatabaseKind::Country).expect_err("empty");
    assert!(err.to_string().contains("empty"), "{err}");
}

#[test]
fn a_database_of_the_wrong_kind_is_refused() {
    let err = GeoDatabase::open(&asn_db(), DatabaseKind::Country).expect_err("asn as country");
    assert!(
        err.to_string()
            .contains("'GeoLite2-ASN' database; expected a country"),
        "{err}"
    );
    let err = GeoDatabase::open(&country_db(), DatabaseKind::Asn).expect_err("country as asn");
    assert!(
        err.to_string().contains("expected an ASN database"),
        "{err}"
    );
}

#[test]
fn a_replaced_file_is_picked_up_and_a_broken_one_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let live = dir.path().join("country.mmdb");
    std::fs::copy(country_db(), &live).expect("copy");
    let source = GeoSource::open(&live, DatabaseKind::Country).expect("opens");
    assert_eq!(source.refresh(), Ok(false), "unchanged");

    // A broken replacement, renamed over the file: refused once, the old one stays.
    let staged = dir.path().join("staged.mmdb");
    std::fs::write(&staged, b"garbage").expect("write");
    std::fs::rename(&staged, &live).expect("rename");
    assert!(source.refresh().is_err());
    assert_eq!(source.refresh(), Ok(false), "reported once");
    assert_eq!(
        source.current().country(ip("111.235.160.1")).as_deref(),
        Some("CN")
    );

    // A good replacement (a new file, renamed over the path) is mapped.
    let other = dir.path().join("other.mmdb");
    std::fs::copy(country_db(), &other).expect("copy");
    std::fs::rename(&other, &live).expect("rename");
    assert_eq!(source.refresh(), Ok(true));
    assert_eq!(
        source.current().country(ip("81.2.69.142")).as_deref(),
        Some("GB")
    );
}
