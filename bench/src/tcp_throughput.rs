//! `tcp-throughput`: bulk TCP transfers for the port-forwarding benchmark
//! (and a netcat through the agent's Ports relay for the tests).
//!
//! - `sink ADDR`: accepts connections, reads each to its end, answers the
//!   byte count (8 bytes, big endian).
//! - `send ADDR MIB`: sends MIB mebibytes to a sink; prints MiB/s.
//! - `relay-send ENDPOINT CONTAINER PORT MIB`: the same through the
//!   agent's Ports.Relay stream; prints MiB/s.
//! - `relay-cat ENDPOINT CONTAINER PORT`: stdin to the container's port
//!   through the relay, its answer to stdout.

use std::time::Instant;

use berth_api::endpoint::ClientTls;
use berth_api::v1::{
    ports_client::PortsClient, relay_input::Input, relay_output::Output, RelayInput, RelayTarget,
};
use berth_api::Endpoint;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const CHUNK: usize = 256 << 10;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["sink", addr] => sink(addr).await,
        ["send", addr, mib] => {
            let bytes = mib.parse::<u64>()? << 20;
            let start = Instant::now();
            let mut s = tokio::net::TcpStream::connect(addr).await?;
            let buf = vec![7u8; CHUNK];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(CHUNK as u64) as usize;
                s.write_all(&buf[..n]).await?;
                left -= n as u64;
            }
            s.shutdown().await?;
            let got = s.read_u64().await?;
            report(bytes, got, start)
        }
        ["relay-send", endpoint, container, port, mib] => {
            let bytes = mib.parse::<u64>()? << 20;
            let start = Instant::now();
            let chunks = (bytes / CHUNK as u64) as usize;
            let input = std::iter::once(target(container, port)?)
                .chain((0..chunks).map(|_| RelayInput {
                    input: Some(Input::Data(vec![7u8; CHUNK])),
                }))
                .chain(std::iter::once(RelayInput {
                    input: Some(Input::CloseWrite(true)),
                }));
            let answer = relay(endpoint, tokio_stream::iter(input)).await?;
            let got = u64::from_be_bytes(answer.get(..8).ok_or("short answer")?.try_into()?);
            report(chunks as u64 * CHUNK as u64, got, start)
        }
        ["relay-cat", endpoint, container, port] => {
            let mut data = Vec::new();
            tokio::io::stdin().read_to_end(&mut data).await?;
            let input = [
                target(container, port)?,
                RelayInput {
                    input: Some(Input::Data(data)),
                },
            ];
            let answer = relay(endpoint, tokio_stream::iter(input)).await?;
            tokio::io::stdout().write_all(&answer).await?;
            Ok(())
        }
        _ => Err("usage: tcp-throughput sink ADDR | send ADDR MIB | relay-send ENDPOINT CONTAINER PORT MIB | relay-cat ENDPOINT CONTAINER PORT".into()),
    }
}

fn target(container: &str, port: &str) -> Res<RelayInput> {
    Ok(RelayInput {
        input: Some(Input::Target(RelayTarget {
            container_id: container.into(),
            port: port.parse()?,
            protocol: "tcp".into(),
        })),
    })
}

/// Runs one relay with `input`; returns everything the container sent.
async fn relay(
    endpoint: &str,
    input: impl tokio_stream::Stream<Item = RelayInput> + Send + 'static,
) -> Res<Vec<u8>> {
    let endpoint: Endpoint = endpoint.parse()?;
    let mut client = PortsClient::new(endpoint.connect(&ClientTls::default()).await?)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let mut out = client.relay(input).await?.into_inner();
    let mut answer = Vec::new();
    while let Some(msg) = out.message().await? {
        match msg.output {
            Some(Output::Data(d)) => answer.extend_from_slice(&d),
            Some(Output::CloseWrite(_)) => break,
            None => {}
        }
    }
    Ok(answer)
}

fn report(sent: u64, got: u64, start: Instant) -> Res<()> {
    if sent != got {
        return Err(format!("sent {sent} bytes but the sink counted {got}").into());
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{:.1}", sent as f64 / (1 << 20) as f64 / secs);
    Ok(())
}

async fn sink(addr: &str) -> Res<()> {
    let l = tokio::net::TcpListener::bind(addr).await?;
    loop {
        let (mut s, _) = l.accept().await?;
        tokio::spawn(async move {
            let mut buf = vec![0u8; CHUNK];
            let mut total = 0u64;
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            let _ = s.write_u64(total).await;
            let _ = s.shutdown().await;
        });
    }
}
