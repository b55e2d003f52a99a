//! The embedded DNS server, as Docker's at 127.0.0.11: each container on a
//! bridge network gets a UDP socket bound to 127.0.0.11:53 inside its own
//! network namespace, served by the agent. It answers the names of the
//! containers that share a user-defined network with the asker (names,
//! aliases, short ids) and `host.docker.internal`, and forwards every
//! other question to the container's `--dns` servers or the host's.
//!
//! The forwarding socket lives in the agent's namespace, so the host's own
//! resolver (often 127.0.0.53) is reachable, which it is not from inside
//! a container. Messages are parsed and built with hickory-proto.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{rdata::A, RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::error::Result;
use crate::util::netns;

/// The address containers send their questions to.
pub const ADDRESS: &str = "127.0.0.11";

/// How long an answer may be cached by the asker.
const TTL: u32 = 600;

/// What the server knows, asked per question.
pub trait Resolve: Send + Sync + 'static {
    /// The address of `name` as container `id` should see it.
    fn lookup(&self, id: &str, name: &str) -> Option<Ipv4Addr>;
    /// Where container `id`'s other questions go.
    fn upstreams(&self, id: &str) -> Vec<SocketAddr>;
}

/// Binds the server's socket inside the namespace at `ns` (whose `lo`
/// must be up).
pub fn bind(ns: &Path) -> Result<std::net::UdpSocket> {
    netns::run_in(ns, || {
        let s = std::net::UdpSocket::bind((ADDRESS, 53)).map_err(|e| e.to_string())?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(s)
    })
}

/// Serves container `id`'s questions on `socket` until aborted.
pub fn serve(socket: std::net::UdpSocket, id: String, names: Arc<dyn Resolve>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(socket) = UdpSocket::from_std(socket) else {
            return;
        };
        let socket = Arc::new(socket);
        // No buffer is held while waiting: a hundred idle containers would
        // keep 400 kB of them. A question is read once one is there.
        loop {
            if socket.readable().await.is_err() {
                return;
            }
            let mut buf = vec![0u8; 4096];
            let (n, from) = match socket.try_recv_from(&mut buf) {
                Ok(got) => got,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => return,
            };
            buf.truncate(n);
            let query = buf;
            let (socket, id, names) = (socket.clone(), id.clone(), names.clone());
            tokio::spawn(async move {
                if let Some(reply) = reply(&query, &id, names.as_ref()).await {
                    let _ = socket.send_to(&reply, from).await;
                }
            });
        }
    })
}

/// The reply to one message: answered here, or by an upstream server.
async fn reply(query: &[u8], id: &str, names: &dyn Resolve) -> Option<Vec<u8>> {
    let msg = Message::from_vec(query).ok()?;
    if msg.metadata.message_type != MessageType::Query {
        return None;
    }
    let q = msg.queries.first()?.clone();
    let name = q
        .name()
        .to_utf8()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if let Some(ip) = names.lookup(id, &name) {
        let mut out = Message::response(msg.metadata.id, OpCode::Query);
        out.metadata.recursion_desired = msg.metadata.recursion_desired;
        out.metadata.recursion_available = true;
        out.metadata.authoritative = true;
        out.add_query(q.clone());
        if matches!(q.query_type(), RecordType::A | RecordType::ANY) {
            out.add_answer(Record::from_rdata(q.name().clone(), TTL, RData::A(A(ip))));
        }
        return out.to_vec().ok();
    }
    for server in names.upstreams(id) {
        if let Some(answer) = forward(query, server).await {
            return Some(answer);
        }
    }
    let mut out = Message::error_msg(msg.metadata.id, OpCode::Query, ResponseCode::ServFail);
    out.add_query(q);
    out.to_vec().ok()
}

/// Asks `server`; `None` when it does not answer in two seconds.
async fn forward(query: &[u8], server: SocketAddr) -> Option<Vec<u8>> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().ok()?
    } else {
        "[::]:0".parse().ok()?
    };
    let s = UdpSocket::bind(bind).await.ok()?;
    s.connect(server).await.ok()?;
    s.send(query).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), s.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(n);
    Some(buf)
}

/// The name servers of a resolv.conf text.
pub fn nameservers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;

    struct Fixed;
    impl Resolve for Fixed {
        fn lookup(&self, _: &str, name: &str) -> Option<Ipv4Addr> {
            (name == "web").then_some(Ipv4Addr::new(10, 0, 0, 5))
        }
        fn upstreams(&self, _: &str) -> Vec<SocketAddr> {
            Vec::new()
        }
    }

    fn ask(name: &str) -> Vec<u8> {
        let mut m = Message::query();
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        m.to_vec().unwrap()
    }

    #[tokio::test]
    async fn known_names_are_answered_and_others_fail_without_upstreams() {
        let r = Message::from_vec(&reply(&ask("Web."), "c", &Fixed).await.unwrap()).unwrap();
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.answers[0].data, RData::A(A(Ipv4Addr::new(10, 0, 0, 5))));
        let r = Message::from_vec(&reply(&ask("other."), "c", &Fixed).await.unwrap()).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
        assert_eq!(
            nameservers("search x\nnameserver 127.0.0.53\nnameserver bad\n"),
            vec!["127.0.0.53:53".parse::<SocketAddr>().unwrap()]
        );
    }
}
