//! Published ports: each host port is held by a socket of the agent's
//! (bound, never listening), so no other program can take it and a
//! conflict is found at `run`; the traffic itself is forwarded by the
//! firewall's DNAT rules, in the kernel.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};

use super::firewall::Forward;
use crate::error::{Error, Result};

/// One published port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Published {
    /// The host address ("" for all of them).
    pub host_ip: String,
    /// The host port (0 asks for a free one).
    pub host_port: u16,
    /// The container's port.
    pub container_port: u16,
    /// "tcp" or "udp".
    pub protocol: String,
}

impl Published {
    /// Checks a request and fills in Docker's defaults.
    pub fn checked(mut self) -> Result<Published> {
        if self.protocol.is_empty() {
            self.protocol = "tcp".into();
        }
        self.protocol = self.protocol.to_ascii_lowercase();
        if !["tcp", "udp"].contains(&self.protocol.as_str()) {
            return Err(Error::InvalidArgument(format!(
                "invalid protocol {:?} for a published port: use tcp or udp",
                self.protocol
            )));
        }
        if self.container_port == 0 {
            return Err(Error::InvalidArgument(
                "a published port needs a container port from 1 to 65535".into(),
            ));
        }
        if !self.host_ip.is_empty() && self.host_ip.parse::<Ipv4Addr>().is_err() {
            return Err(Error::InvalidArgument(format!(
                "invalid host address {:?} for a published port: write an IPv4 address such as 127.0.0.1",
                self.host_ip
            )));
        }
        Ok(self)
    }

    fn host_addr(&self) -> Ipv4Addr {
        self.host_ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED)
    }
}

struct Held {
    port: Published,
    target: Ipv4Addr,
    _socket: Socket,
}

/// The ports each running container holds.
#[derive(Default)]
pub struct Reservations(Mutex<BTreeMap<String, Vec<Held>>>);

impl Reservations {
    fn table(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<Held>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds each wanted host port for container `id` at `target`; all or
    /// none. Returns them with the ports chosen for port 0.
    pub fn reserve(
        &self,
        id: &str,
        target: Ipv4Addr,
        wanted: &[Published],
    ) -> Result<Vec<Published>> {
        let mut held = Vec::new();
        for w in wanted {
            let w = w.clone().checked()?;
            let (ty, proto) = match w.protocol.as_str() {
                "udp" => (Type::DGRAM, Protocol::UDP),
                _ => (Type::STREAM, Protocol::TCP),
            };
            let socket = Socket::new(Domain::IPV4, ty, Some(proto))
                .map_err(|e| Error::io("making a socket for a published port", e))?;
            let addr = SocketAddr::new(IpAddr::V4(w.host_addr()), w.host_port);
            socket.bind(&addr.into()).map_err(|e| {
                Error::Conflict(format!(
                    "the host port {}:{}/{} cannot be published ({e}): it is already in use; choose another host port",
                    w.host_addr(), w.host_port, w.protocol
                ))
            })?;
            let port = socket
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .map_or(w.host_port, |a| a.port());
            held.push(Held {
                port: Published {
                    host_port: port,
                    ..w
                },
                target,
                _socket: socket,
            });
        }
        let got = held.iter().map(|h| h.port.clone()).collect();
        self.table().insert(id.to_string(), held);
        Ok(got)
    }

    /// Lets container `id`'s ports go; true when it held any.
    pub fn release(&self, id: &str) -> bool {
        self.table().remove(id).is_some()
    }

    /// Every held port, with its container's id.
    pub fn all(&self) -> Vec<(String, Published)> {
        self.table()
            .iter()
            .flat_map(|(id, v)| v.iter().map(|h| (id.clone(), h.port.clone())))
            .collect()
    }

    /// The firewall's forwards for every held port.
    pub fn forwards(&self) -> Vec<Forward> {
        self.table()
            .values()
            .flatten()
            .map(|h| Forward {
                host_ip: Some(h.port.host_addr()),
                host_port: h.port.host_port,
                protocol: h.port.protocol.clone(),
                ip: h.target,
                port: h.port.container_port,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_held_and_conflicts_refused() {
        let r = Reservations::default();
        let want = Published {
            host_ip: "127.0.0.1".into(),
            container_port: 80,
            ..Default::default()
        };
        let got = r
            .reserve("a", Ipv4Addr::new(10, 0, 0, 2), std::slice::from_ref(&want))
            .unwrap();
        assert_ne!(got[0].host_port, 0);
        assert_eq!(got[0].protocol, "tcp");
        let again = Published {
            host_port: got[0].host_port,
            ..want
        };
        let e = r
            .reserve("b", Ipv4Addr::new(10, 0, 0, 3), &[again])
            .unwrap_err();
        assert!(e.to_string().contains("already in use"), "{e}");
        assert_eq!(r.forwards().len(), 1);
        r.release("a");
        assert!(r.all().is_empty());
        let bad = Published {
            container_port: 80,
            protocol: "sctp".into(),
            ..Default::default()
        };
        assert!(bad.checked().is_err());
    }
}

/// What changed between two lists of published ports: `(added, owner,
/// port)`, the removed ones first.
pub fn changes(
    before: &[(String, Published)],
    now: &[(String, Published)],
) -> Vec<(bool, String, Published)> {
    let gone = before
        .iter()
        .filter(|p| !now.contains(p))
        .map(|(id, p)| (false, id.clone(), p.clone()));
    let new = now
        .iter()
        .filter(|p| !before.contains(p))
        .map(|(id, p)| (true, id.clone(), p.clone()));
    gone.chain(new).collect()
}

#[cfg(test)]
mod change_tests {
    use super::*;

    fn port(host: u16) -> Published {
        Published {
            host_port: host,
            container_port: 80,
            protocol: "tcp".into(),
            ..Default::default()
        }
    }

    #[test]
    fn changes_list_removals_then_additions() {
        let before = vec![("a".to_string(), port(1)), ("b".to_string(), port(2))];
        let now = vec![("b".to_string(), port(2)), ("c".to_string(), port(3))];
        assert_eq!(
            changes(&before, &now),
            [
                (false, "a".to_string(), port(1)),
                (true, "c".to_string(), port(3))
            ]
        );
        assert!(changes(&now, &now).is_empty());
    }
}
