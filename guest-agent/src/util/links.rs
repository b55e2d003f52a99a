//! Links, addresses and routes through rtnetlink: Berth's bridges on the
//! host, and each container's veth pair, one end on a bridge and the other
//! inside the container's network namespace.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::netns;
use crate::error::{Error, Result};

/// A route-netlink connection in one network namespace.
pub struct Netlink(Handle);

fn failed(what: &str) -> impl Fn(rtnetlink::Error) -> Error + '_ {
    move |e| Error::Internal(format!("{what} failed: {e}"))
}

impl Netlink {
    /// A connection in the agent's own namespace.
    pub fn host() -> Result<Netlink> {
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|e| Error::Internal(format!("netlink needs the agent's runtime: {e}")))?;
        let (conn, handle, _) = rtnetlink::new_connection()
            .map_err(|e| Error::Internal(format!("netlink is not available: {e}")))?;
        rt.spawn(conn);
        Ok(Netlink(handle))
    }

    /// A connection inside the namespace pinned at `ns` (the socket is
    /// made there, so every request acts there).
    pub fn inside(ns: &Path) -> Result<Netlink> {
        let rt = tokio::runtime::Handle::current();
        let (conn, handle) = netns::run_in(ns, move || {
            let _entered = rt.enter();
            let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| e.to_string())?;
            Ok((conn, handle))
        })?;
        tokio::spawn(conn);
        Ok(Netlink(handle))
    }

    /// The link called `name`, if there is one.
    pub async fn find(&self, name: &str) -> Option<LinkMessage> {
        let mut links = self.0.link().get().match_name(name.to_string()).execute();
        links.try_next().await.ok().flatten()
    }

    /// The names of every link.
    pub async fn names(&self) -> Result<Vec<String>> {
        let mut links = self.0.link().get().execute();
        let mut names = Vec::new();
        while let Some(l) = links.try_next().await.map_err(failed("listing links"))? {
            names.extend(name_of(&l));
        }
        Ok(names)
    }

    async fn index(&self, name: &str) -> Result<u32> {
        self.find(name)
            .await
            .map(|l| l.header.index)
            .ok_or_else(|| Error::Internal(format!("the link {name} is missing")))
    }

    /// Makes bridge `name` with `gateway` on `subnet` and brings it up,
    /// unless it exists.
    pub async fn ensure_bridge(
        &self,
        name: &str,
        subnet: &Ipv4Net,
        gateway: Ipv4Addr,
    ) -> Result<()> {
        if self.find(name).await.is_some() {
            return Ok(());
        }
        self.0
            .link()
            .add(LinkBridge::new(name).build())
            .execute()
            .await
            .map_err(failed("creating a bridge"))?;
        let index = self.index(name).await?;
        self.0
            .address()
            .add(index, IpAddr::V4(gateway), subnet.prefix_len())
            .execute()
            .await
            .map_err(failed("addressing a bridge"))?;
        self.up(index).await
    }

    async fn up(&self, index: u32) -> Result<()> {
        self.0
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(failed("bringing a link up"))
    }

    /// Deletes link `name` if it exists (a veth's peer goes with it).
    pub async fn delete(&self, name: &str) {
        if let Ok(index) = self.index(name).await {
            let _ = self.0.link().del(index).execute().await;
        }
    }

    /// Makes the veth pair `host`/`peer`, puts `host` on `bridge` and up,
    /// and moves `peer` into the namespace at `ns`.
    pub async fn add_veth(&self, host: &str, peer: &str, bridge: &str, ns: &Path) -> Result<()> {
        // One request: the host side made on the bridge and up, the peer
        // made inside the namespace (moving a made link between
        // namespaces waits for the network stack, tens of milliseconds).
        let bridge = self.index(bridge).await?;
        let ns_file = std::fs::File::open(ns)
            .map_err(|e| Error::io("opening the container's network namespace", e))?;
        let peer_msg = rtnetlink::LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_string())
            .setns_by_fd(ns_file.as_raw_fd())
            .build();
        let msg = LinkVeth::new(host, peer)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
            .controller(bridge)
            .up()
            .build();
        self.0
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(failed("creating a veth pair"))
    }

    /// Inside a container: renames `peer` to `name`, gives it `mac` and
    /// `ip`, brings it and `lo` up, and with `gateway` makes it the
    /// default route.
    pub async fn configure(
        &self,
        peer: &str,
        name: &str,
        mac: [u8; 6],
        ip: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
    ) -> Result<()> {
        let index = self.index(peer).await?;
        self.0
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .name(name.to_string())
                    .address(mac.to_vec())
                    .build(),
            )
            .execute()
            .await
            .map_err(failed("naming the container's interface"))?;
        self.address_up(name, ip, prefix, gateway).await?;
        self.lo_up().await
    }

    /// Gives the existing link `name` the address `ip/prefix`, brings it
    /// up, and with `gateway` makes it the default route (a container's
    /// interface, or the VM's own NIC).
    pub async fn address_up(
        &self,
        name: &str,
        ip: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
    ) -> Result<()> {
        let index = self.index(name).await?;
        self.0
            .address()
            .add(index, IpAddr::V4(ip), prefix)
            .execute()
            .await
            .map_err(failed("addressing a network interface"))?;
        self.up(index).await?;
        if let Some(gw) = gateway {
            self.0
                .route()
                .add(RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).build())
                .execute()
                .await
                .map_err(failed("adding a default route"))?;
        }
        Ok(())
    }

    /// Brings the loopback link up.
    pub async fn lo_up(&self) -> Result<()> {
        let lo = self.index("lo").await?;
        self.up(lo).await
    }
}

/// A link message's name.
fn name_of(l: &LinkMessage) -> Option<String> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}
