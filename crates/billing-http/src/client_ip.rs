//! The client's address for rate limits: the TCP peer, unless the peer is a trusted proxy, whose
//! `X-Forwarded-For` then names the client. A header from anyone else is ignored: it is the client's own word.

use std::net::IpAddr;

use actix_web::HttpRequest;
use billing_config::Cidr;

/// The address limits are counted against.
pub fn client_ip(req: &HttpRequest, trusted: &[Cidr]) -> String {
    let Some(peer) = req.peer_addr().map(|a| a.ip()) else { return "unknown".to_owned() };
    forwarded_for(peer, req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok()), trusted).to_string()
}

/// Walks `X-Forwarded-For` from the nearest hop back while the hops are trusted proxies; the first address that is
/// not one is the client (the leftmost when every hop is trusted).
fn forwarded_for(peer: IpAddr, header: Option<&str>, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<IpAddr> =
        header.into_iter().flat_map(|h| h.split(',')).filter_map(|h| h.trim().parse().ok()).collect();
    hops.iter().rev().copied().find(|ip| !is_trusted(*ip)).or_else(|| hops.first().copied()).unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn only_a_trusted_peer_is_believed() {
        let trusted: Vec<Cidr> = vec!["172.16.0.0/12".parse().unwrap_or_else(|e: String| panic!("{e}"))];
        // An untrusted peer's header is ignored: spoofing it changes nothing.
        assert_eq!(forwarded_for(ip("203.0.113.9"), Some("1.2.3.4"), &trusted), ip("203.0.113.9"));
        // Through the proxy: the hop the proxy saw.
        assert_eq!(forwarded_for(ip("172.18.0.2"), Some("198.51.100.7"), &trusted), ip("198.51.100.7"));
        // A client that sends its own header through the proxy cannot choose its address: the rightmost untrusted hop.
        assert_eq!(forwarded_for(ip("172.18.0.2"), Some("1.2.3.4, 198.51.100.7"), &trusted), ip("198.51.100.7"));
        assert_eq!(forwarded_for(ip("172.18.0.2"), None, &trusted), ip("172.18.0.2"));
        assert_eq!(forwarded_for(ip("172.18.0.2"), Some("garbage"), &trusted), ip("172.18.0.2"));
        assert_eq!(forwarded_for(ip("127.0.0.1"), Some("1.2.3.4"), &[]), ip("127.0.0.1"), "nobody trusted");
    }
}
