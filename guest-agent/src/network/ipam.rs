//! Addresses for networks and their containers. A network's subnet and
//! its endpoints' addresses live in its stored record, so allocation
//! survives agent restarts; this module only does the arithmetic.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::error::{Error, Result};

/// The default bridge's subnet. Berth keeps away from Docker's 172.17/16
/// and podman's 10.88/16, so all three can live on one host.
pub const DEFAULT_SUBNET: &str = "10.213.0.0/16";

/// Where user-defined networks get their /24 subnets.
pub const USER_POOL: &str = "10.214.0.0/16";

/// Parses a subnet as the user wrote it ("10.1.0.0/24").
pub fn parse_subnet(text: &str) -> Result<Ipv4Net> {
    let net: Ipv4Net = text.parse().map_err(|_| {
        Error::InvalidArgument(format!(
            "invalid subnet {text:?}: write an IPv4 network such as 10.1.0.0/24"
        ))
    })?;
    if net.prefix_len() > 30 {
        return Err(Error::InvalidArgument(format!(
            "the subnet {text} is too small: use a prefix of /30 or shorter"
        )));
    }
    Ok(net.trunc())
}

/// The first /24 of the user pool that overlaps none of `taken`.
pub fn free_subnet(taken: &[Ipv4Net]) -> Result<Ipv4Net> {
    let pool: Ipv4Net = USER_POOL.parse().expect("a valid pool");
    pool.subnets(24)
        .expect("/24 fits in the pool")
        .find(|s| !taken.iter().any(|t| overlaps(s, t)))
        .ok_or_else(|| {
            Error::ResourceExhausted(format!(
                "every /24 of {USER_POOL} is in use: remove unused networks (berth network prune) or give --subnet"
            ))
        })
}

/// True when two subnets share an address.
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The gateway: the subnet's first host address.
pub fn gateway_of(net: &Ipv4Net) -> Ipv4Addr {
    net.hosts().next().unwrap_or(net.network())
}

/// The lowest host address of `net` that is neither the gateway nor in
/// `used`.
pub fn next_free(net: &Ipv4Net, gateway: Ipv4Addr, used: &[Ipv4Addr]) -> Result<Ipv4Addr> {
    net.hosts()
        .find(|a| *a != gateway && !used.contains(a))
        .ok_or_else(|| {
            Error::ResourceExhausted(format!(
                "no free address is left in {net}: stop some of its containers or use a larger subnet"
            ))
        })
}

/// Checks an address a user asked for (`--ip`).
pub fn check_wanted(
    net: &Ipv4Net,
    gateway: Ipv4Addr,
    used: &[Ipv4Addr],
    wanted: Ipv4Addr,
) -> Result<Ipv4Addr> {
    if !net.contains(&wanted) || wanted == net.network() || wanted == net.broadcast() {
        return Err(Error::InvalidArgument(format!(
            "the address {wanted} is not a host address of {net}"
        )));
    }
    if wanted == gateway || used.contains(&wanted) {
        return Err(Error::AlreadyExists(format!(
            "the address {wanted} is already in use on {net}: choose another or leave --ip out"
        )));
    }
    Ok(wanted)
}

/// A MAC address derived from an IPv4 address, as Docker makes them
/// (02:42 and the four address bytes).
pub fn mac_of(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_skip_the_gateway_and_used_ones() {
        let net = parse_subnet("10.5.0.7/24").unwrap();
        assert_eq!(net.to_string(), "10.5.0.0/24");
        let gw = gateway_of(&net);
        assert_eq!(gw, Ipv4Addr::new(10, 5, 0, 1));
        let used = [Ipv4Addr::new(10, 5, 0, 2)];
        assert_eq!(
            next_free(&net, gw, &used).unwrap(),
            Ipv4Addr::new(10, 5, 0, 3)
        );
        assert!(check_wanted(&net, gw, &used, Ipv4Addr::new(10, 5, 0, 2)).is_err());
        assert!(check_wanted(&net, gw, &used, Ipv4Addr::new(10, 6, 0, 2)).is_err());
        let tiny = parse_subnet("10.9.0.0/30").unwrap();
        let g = gateway_of(&tiny);
        assert!(next_free(&tiny, g, &[Ipv4Addr::new(10, 9, 0, 2)]).is_err());
        assert!(parse_subnet("10.0.0.0/31").is_err() && parse_subnet("nope").is_err());
    }

    #[test]
    fn user_subnets_avoid_taken_ones() {
        let taken = [parse_subnet("10.214.0.0/23").unwrap()];
        assert_eq!(free_subnet(&taken).unwrap().to_string(), "10.214.2.0/24");
        assert_eq!(mac_of(Ipv4Addr::new(10, 1, 2, 3)), [2, 0x42, 10, 1, 2, 3]);
    }
}
