//! Peer lists and node identity from hostnames.

use std::collections::BTreeMap;

/// Parses `1=host:port,2=host:port`.
pub fn parse_peers(s: &str) -> Result<BTreeMap<u64, String>, String> {
    let mut peers = BTreeMap::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, addr) = entry
            .split_once('=')
            .ok_or_else(|| format!("--peers entry `{entry}` must be id=host:port"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| format!("--peers entry `{entry}`: `{id}` is not a node id"))?;
        let addr = addr.trim();
        let valid = addr
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !valid {
            return Err(format!(
                "--peers entry `{entry}`: `{addr}` is not host:port"
            ));
        }
        if peers.insert(id, addr.to_string()).is_some() {
            return Err(format!("--peers lists node {id} twice"));
        }
    }
    if peers.is_empty() {
        return Err("--peers is empty".into());
    }
    Ok(peers)
}

/// This machine's host name (`HOSTNAME`, else the kernel's).
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The ordinal of a StatefulSet-style host name (`keel-2` gives 2).
pub fn ordinal_of(host: &str) -> Option<u64> {
    let short = host.split('.').next()?;
    let (_, digits) = short.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_reject_bad_entries() {
        let p = parse_peers("1=a:7401, 2=b.example:7401,3=10.0.0.3:7401").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[&2], "b.example:7401");
        assert!(parse_peers("1=a:7401,1=b:7401").is_err());
        assert!(parse_peers("x=a:7401").is_err());
        assert!(parse_peers("1=a").is_err());
        assert!(parse_peers("1=a:0").is_err());
        assert!(parse_peers("").is_err());
    }

    #[test]
    fn ordinals_come_from_statefulset_names() {
        assert_eq!(ordinal_of("keel-2"), Some(2));
        assert_eq!(ordinal_of("keel-10.keel-peer.default.svc"), Some(10));
        assert_eq!(ordinal_of("my-keel-0"), Some(0));
        assert_eq!(ordinal_of("keel"), None);
        assert_eq!(ordinal_of("keel-a"), None);
    }
}
