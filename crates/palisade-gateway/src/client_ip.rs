//! The real client address behind trusted proxies.
//!
//! Only a peer inside `trusted_proxies` may speak for someone else: its `client_ip_header`
//! or `X-Forwarded-For` is believed, read right to left past the trusted hops. Anyone else
//! gets their socket address, so a client cannot choose its IP (and its rate-limit key) by
//! sending a header.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName};

use crate::config::server::Cidr;

/// Who may speak for clients, and in which header.
#[derive(Debug, Clone, Default)]
pub struct ClientIpResolver {
    trusted: Vec<Cidr>,
    header: Option<HeaderName>,
}

impl ClientIpResolver {
    /// A resolver trusting `trusted` peers, reading `header` (or `X-Forwarded-For`).
    pub fn new(trusted: Vec<Cidr>, header: Option<HeaderName>) -> Self {
        Self { trusted, header }
    }

    /// Whether `ip` belongs to a trusted proxy.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(ip))
    }

    /// The client address for a request that arrived from `peer` with `headers`.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.is_trusted(peer) {
            return peer;
        }
        match &self.header {
            Some(name) => single_header(headers, name).unwrap_or(peer),
            None => self.walk_forwarded_for(peer, headers),
        }
    }

    /// Walks `X-Forwarded-For` from the right: the first address that is not a trusted
    /// proxy is the client. An unreadable entry stops the walk at the last trusted hop,
    /// since anything left of it was written by the client.
    fn walk_forwarded_for(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let entries: Vec<&str> = headers
            .get_all(http::header::HeaderName::from_static("x-forwarded-for"))
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect();
        let mut client = peer;
        for entry in entries.iter().rev() {
            let Some(ip) = parse_entry(entry) else {
                return client;
            };
            client = ip;
            if !self.is_trusted(ip) {
                return ip;
            }
        }
        client
    }
}

/// Reads a one-address header such as `CF-Connecting-IP`; the last copy wins because a
/// proxy appends after anything the client sent.
fn single_header(headers: &HeaderMap, name: &HeaderName) -> Option<IpAddr> {
    let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
    parse_entry(value)
}

/// Parses one forwarded address: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:80`.
pub(crate) fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(addr) = entry.parse::<std::net::SocketAddr>() {
        return Some(canonical(addr.ip()));
    }
    None
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, seen on dual-stack sockets) as IPv4, so
/// one client has one address in keys, logs and CIDR checks.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Appends `ip` as text, exactly as its `Display` writes it. IPv4 addresses, almost every
/// client, are written digit by digit: through `fmt` they cost a formatter and a padding
/// check per octet, on every request and every event.
pub fn push_ip(out: &mut String, ip: IpAddr) {
    let IpAddr::V4(v4) = ip else {
        use std::fmt::Write as _;
        let _ = write!(out, "{ip}");
        return;
    };
    let mut text = [0u8; 15];
    let mut len = 0;
    let mut put = |byte: u8| {
        text[len] = byte;
        len += 1;
    };
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            put(b'.');
        }
        if octet >= 100 {
            put(b'0' + octet / 100);
        }
        if octet >= 10 {
            put(b'0' + octet / 10 % 10);
        }
        put(b'0' + octet % 10);
    }
    // Digits and dots are ASCII: one copy rather than a push (and a capacity check) each.
    out.push_str(std::str::from_utf8(&text[..len]).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().expect("header value"));
        }
        map
    }

    fn resolver(trusted: &[&str]) -> ClientIpResolver {
        let trusted = trusted.iter().map(|t| t.parse().expect("cidr")).collect();
        ClientIpResolver::new(trusted, None)
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let mut samples: Vec<IpAddr> = ["2001:db8::1", "::ffff:10.0.0.1", "::"]
            .iter()
            .map(|text| ip(text))
            .collect();
        for octet in 0..=255u8 {
            samples.push(IpAddr::from([octet, 255 - octet, octet / 3, 100]));
        }
        for address in samples {
            let mut out = String::from("x");
            push_ip(&mut out, address);
            assert_eq!(out, format!("x{address}"));
        }
    }

    #[test]
    fn untrusted_peers_cannot_choose_their_address() {
        let h = headers(&[("x-forwarded-for", "1.1.1.1")]);
        assert_eq!(
            resolver(&[]).resolve(ip("203.0.113.9"), &h),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn forwarded_for_is_read_right_to_left_past_trusted_hops() {
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 198.51.100.4"),
            ("x-forwarded-for", "10.0.0.2"),
        ]);
        let got = resolver(&["10.0.0.0/8"]).resolve(ip("10.0.0.1"), &h);
        assert_eq!(got, ip("198.51.100.4"));
    }

    #[test]
    fn garbage_in_forwarded_for_stops_at_the_last_trusted_hop() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4, nonsense, 10.0.0.9")]);
        let got = resolver(&["10.0.0.0/8"]).resolve(ip("10.0.0.1"), &h);
        assert_eq!(got, ip("10.0.0.9"));
    }

    #[test]
    fn a_configured_client_ip_header_replaces_forwarded_for() {
        let r = ClientIpResolver::new(
            vec!["127.0.0.1".parse().expect("cidr")],
            Some(HeaderName::from_static("cf-connecting-ip")),
        );
        let h = headers(&[
            ("cf-connecting-ip", "2001:db8::7"),
            ("x-forwarded-for", "9.9.9.9"),
        ]);
        assert_eq!(r.resolve(ip("127.0.0.1"), &h), ip("2001:db8::7"));
    }

    #[test]
    fn mapped_ipv4_addresses_are_treated_as_ipv4() {
        assert_eq!(canonical(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        let h = headers(&[("x-forwarded-for", "192.0.2.55:4711")]);
        let got = resolver(&["192.0.2.1"]).resolve(ip("::ffff:192.0.2.1"), &h);
        assert_eq!(got, ip("192.0.2.55"));
    }
}
