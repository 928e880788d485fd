//! The configured geo databases, and the task that notices when their files are replaced.

use std::net::IpAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use palisade_geo::GeoSource;
use tracing::{info, warn};

/// The country and ASN databases of one configuration (either may be absent).
#[derive(Debug, Clone, Default)]
pub struct GeoDatabases {
    country: Option<Arc<GeoSource>>,
    asn: Option<Arc<GeoSource>>,
}

impl GeoDatabases {
    /// Databases opened by the configuration loader.
    pub fn new(country: Option<Arc<GeoSource>>, asn: Option<Arc<GeoSource>>) -> Self {
        Self { country, asn }
    }

    /// Whether a country database is configured.
    pub fn has_country(&self) -> bool {
        self.country.is_some()
    }

    /// Whether an ASN database is configured.
    pub fn has_asn(&self) -> bool {
        self.asn.is_some()
    }

    /// The client's ISO country code, if a database knows it.
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        self.country.as_ref()?.current().country(ip)
    }

    /// The client's autonomous system number, if a database knows it.
    pub fn asn(&self, ip: IpAddr) -> Option<u32> {
        self.asn.as_ref()?.current().asn(ip)
    }

    /// Checks the files every `interval` on the current tokio runtime, swapping in replaced
    /// databases. The task ends once these databases are dropped (a reload replaced them).
    pub fn watch(&self, interval: Duration) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let sources: Vec<Weak<GeoSource>> = [&self.country, &self.asn]
            .into_iter()
            .flatten()
            .map(Arc::downgrade)
            .collect();
        if sources.is_empty() {
            return;
        }
        runtime.spawn(refresh_every(sources, interval));
    }
}

async fn refresh_every(sources: Vec<Weak<GeoSource>>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let live: Vec<Arc<GeoSource>> = sources.iter().filter_map(Weak::upgrade).collect();
        if live.is_empty() {
            return;
        }
        for source in live {
            // Opening maps the file and reads its metadata only: cheap, but off the
            // request path all the same.
            let checked = tokio::task::spawn_blocking(move || {
                let result = source.refresh();
                (source, result)
            })
            .await;
            match checked {
                Ok((source, Ok(true))) => {
                    info!(geo.file = %source.path().display(), "geo database reloaded");
                }
                Ok((_, Err(err))) => {
                    warn!(error = %err, "geo database not reloaded; the previous one stays");
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use palisade_geo::DatabaseKind;

    use super::*;

    fn fixture(name: &str) -> PathBuf {
        let shared = std::env::var_os("PALISADE_SHARED").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
            PathBuf::from,
        );
        shared.join("fixtures/geoip").join(name)
    }

    #[test]
    fn without_databases_geo_fields_are_unknown() {
        let geo = GeoDatabases::default();
        let ip = "111.235.160.1".parse().expect("ip");
        assert_eq!(geo.country(ip), None);
        assert_eq!(geo.asn(ip), None);
        assert!(!geo.has_country() && !geo.has_asn());
    }

    #[tokio::test]
    async fn the_watcher_maps_a_replaced_file_and_stops_with_its_databases() {
        let dir = tempfile::tempdir().expect("temp dir");
        let live = dir.path().join("country.mmdb");
        std::fs::copy(fixture("GeoLite2-Country-Test.mmdb"), &live).expect("copy");
        let source = Arc::new(GeoSource::open(&live, DatabaseKind::Country).expect("opens"));
        let before = source.current();
        let geo = GeoDatabases::new(Some(Arc::clone(&source)), None);
        geo.watch(Duration::from_millis(20));

        let staged = dir.path().join("staged.mmdb");
        std::fs::copy(fixture("GeoLite2-Country-Test.mmdb"), &staged).expect("copy");
        std::fs::rename(&staged, &live).expect("rename");
        let mut swapped = false;
        for _ in 0..250 {
            if !Arc::ptr_eq(&before, &source.current()) {
                swapped = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(swapped, "the replaced file was mapped");
        let ip = "111.235.160.1".parse().expect("ip");
        assert_eq!(geo.country(ip).as_deref(), Some("CN"));
        let weak = Arc::downgrade(&source);
        drop((geo, source, before));
        // A refresh in flight holds the source until it ends; after that nothing may.
        let mut released = false;
        for _ in 0..250 {
            if weak.strong_count() == 0 {
                released = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(released, "the watcher holds no strong reference");
    }
}
