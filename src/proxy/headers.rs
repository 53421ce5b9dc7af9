//! Header rewriting between the client and the upstream, as small pure functions over
//! `HeaderMap`. Nothing here knows about sessions or identity.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

/// Headers that apply to one connection only (RFC 9110 §7.6.1), plus the obsolete ones
/// proxies still meet (`Keep-Alive`, `Proxy-Connection`).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Whether this HTTP/1.1 request asks to switch to WebSocket (RFC 9110 §7.8, RFC 6455 §4.1).
///
/// Only WebSocket is relayed. Any other upgrade, `h2c` above all, would hand the client a
/// raw connection to the upstream on which it could send further requests that the gateway
/// never sees ("h2c smuggling"); those requests are forwarded as plain requests instead.
pub(crate) fn is_upgrade_request(headers: &HeaderMap) -> bool {
    let websocket = headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|protocol| protocol.trim().eq_ignore_ascii_case("websocket"));
    websocket && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Removes hop-by-hop headers and every header the `Connection` header names
/// (RFC 9110 §7.6.1). With `keep_upgrade`, `Upgrade` survives and `Connection: upgrade`
/// is set again, so a protocol switch can be relayed.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .filter(|name| !(keep_upgrade && name == header::UPGRADE))
        .collect();
    // Most messages carry none of the listed headers: one pass over the names present
    // finds them, where removing each listed name would hash all eight on every message.
    let listed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| HOP_BY_HOP.contains(name) || (!keep_upgrade && *name == header::UPGRADE))
        .cloned()
        .collect();
    for name in named.iter().chain(&listed) {
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// HTTP/2 clients may split `Cookie` into several fields; an HTTP/1.1 upstream must get one,
/// joined with `"; "` (RFC 9113 §8.2.3).
pub(crate) fn join_cookies(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (values.next(), values.next()) else {
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    for value in headers.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(value.as_bytes());
    }
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, value);
    }
}

/// Facts about the connection a request came in on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    pub(crate) ip: IpAddr,
    /// The peer is a proxy we trust, so its forwarding headers are believed.
    pub(crate) trusted: bool,
}

impl Peer {
    pub(crate) fn new(ip: IpAddr, trusted_proxies: &[IpNet]) -> Self {
        let ip = ip.to_canonical();
        Self {
            ip,
            trusted: trusted_proxies.iter().any(|net| net.contains(&ip)),
        }
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// The address of the client as far as trusted proxies vouch for it: the peer itself, or,
/// behind trusted proxies, the right-most `X-Forwarded-For` entry that is not one of them.
pub(crate) fn client_ip(headers: &HeaderMap, peer: Peer, trusted_proxies: &[IpNet]) -> IpAddr {
    if !peer.trusted {
        return peer.ip;
    }
    let mut client = peer.ip;
    let entries = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for entry in entries.iter().rev() {
        let Ok(ip) = entry.parse::<IpAddr>() else {
            break;
        };
        client = ip.to_canonical();
        if !trusted_proxies.iter().any(|net| net.contains(&client)) {
            break;
        }
    }
    client
}

/// Sets the de-facto forwarding headers. From a trusted proxy, `X-Forwarded-For` is appended
/// to and `-Proto`/`-Host` are kept when present; from anyone else all of them (and
/// `Forwarded`, RFC 7239) are replaced by what this connection shows. `X-Real-IP` always
/// carries [`client_ip`].
pub(crate) fn set_forwarding(
    headers: &mut HeaderMap,
    peer: Peer,
    client: IpAddr,
    proto: &'static str,
    host: Option<HeaderValue>,
) {
    let peer_text = peer.ip.to_string();
    let peer_value = HeaderValue::from_str(&peer_text).ok();
    let forwarded_for = if peer.trusted {
        let previous: Vec<&str> = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if previous.is_empty() {
            peer_value.clone()
        } else {
            HeaderValue::from_str(&format!("{}, {peer_text}", previous.join(", "))).ok()
        }
    } else {
        headers.remove(&FORWARDED);
        headers.remove(&X_FORWARDED_PROTO);
        headers.remove(&X_FORWARDED_HOST);
        peer_value.clone()
    };
    if let Some(value) = forwarded_for {
        headers.insert(X_FORWARDED_FOR, value);
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    if let Some(host) = host {
        if !headers.contains_key(&X_FORWARDED_HOST) {
            headers.insert(X_FORWARDED_HOST, host);
        }
    }
    // Usually the client is the peer: its address is formatted once.
    let real_ip = match peer_value {
        Some(value) if client == peer.ip => Some(value),
        _ => HeaderValue::from_str(&client.to_string()).ok(),
    };
    if let Some(value) = real_ip {
        headers.insert(X_REAL_IP, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        headers
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("net")).collect()
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut headers = map(&[
            ("connection", "keep-alive, X-Secret-Hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic eA=="),
            ("upgrade", "websocket"),
            ("accept", "text/html"),
        ]);
        remove_hop_by_hop(&mut headers, false);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, vec!["accept"]);
    }

    #[test]
    fn upgrades_keep_upgrade_and_connection() {
        let mut headers = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
        ]);
        assert!(is_upgrade_request(&headers));
        remove_hop_by_hop(&mut headers, true);
        assert_eq!(headers["upgrade"], "websocket");
        assert_eq!(headers["connection"], "upgrade");
        assert_eq!(headers["sec-websocket-key"], "k");
        assert!(!is_upgrade_request(&map(&[
            ("connection", "keep-alive"),
            ("upgrade", "websocket")
        ])));
    }

    #[test]
    fn h2c_upgrades_are_not_relayed() {
        let mut headers = map(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
            ("http2-settings", "AAMAAABkAAQAAP__"),
        ]);
        assert!(!is_upgrade_request(&headers));
        remove_hop_by_hop(&mut headers, false);
        assert!(headers.is_empty(), "{headers:?}");
    }

    #[test]
    fn split_cookies_are_joined() {
        let mut headers = map(&[("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")]);
        join_cookies(&mut headers);
        assert_eq!(headers.get_all("cookie").iter().count(), 1);
        assert_eq!(headers["cookie"], "a=1; b=2; c=3");
    }

    #[test]
    fn untrusted_peers_cannot_forge_forwarding_headers() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer = Peer::new("203.0.113.9".parse().expect("ip"), &trusted);
        let mut headers = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
        ]);
        let client = client_ip(&headers, peer, &trusted);
        set_forwarding(
            &mut headers,
            peer,
            client,
            "http",
            Some(HeaderValue::from_static("app.example")),
        );
        assert_eq!(headers["x-forwarded-for"], "203.0.113.9");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "app.example");
        assert_eq!(headers["x-real-ip"], "203.0.113.9");
        assert!(!headers.contains_key("forwarded"));
    }

    #[test]
    fn trusted_proxies_are_appended_to_and_believed() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer = Peer::new("10.0.0.2".parse().expect("ip"), &trusted);
        let mut headers = map(&[
            ("x-forwarded-for", "198.51.100.7, 10.0.0.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.example"),
        ]);
        let client = client_ip(&headers, peer, &trusted);
        assert_eq!(client, "198.51.100.7".parse::<IpAddr>().expect("ip"));
        set_forwarding(
            &mut headers,
            peer,
            client,
            "http",
            Some(HeaderValue::from_static("internal:4180")),
        );
        assert_eq!(
            headers["x-forwarded-for"],
            "198.51.100.7, 10.0.0.1, 10.0.0.2"
        );
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["x-forwarded-host"], "app.example");
        assert_eq!(headers["x-real-ip"], "198.51.100.7");
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_networks() {
        let peer = Peer::new(
            "::ffff:10.1.2.3".parse().expect("ip"),
            &nets(&["10.0.0.0/8"]),
        );
        assert!(peer.trusted);
        assert_eq!(peer.ip.to_string(), "10.1.2.3");
    }
}
