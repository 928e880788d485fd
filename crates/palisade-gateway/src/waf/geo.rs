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
