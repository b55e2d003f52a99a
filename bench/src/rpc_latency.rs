//! `rpc-latency ENDPOINT [COUNT]`: sequential System/Ping round trips over
//! one connection; prints p50, p99 and the mean in microseconds.

use std::time::Instant;

use berth_api::endpoint::ClientTls;
use berth_api::v1::{system_client::SystemClient, PingRequest};
use berth_api::Endpoint;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let endpoint: Endpoint = args
        .next()
        .ok_or("usage: rpc-latency ENDPOINT [COUNT]")?
        .parse()?;
    let count: usize = args.next().map_or(Ok(10_000), |c| c.parse())?;
    let mut client = SystemClient::new(endpoint.connect(&ClientTls::default()).await?);
    for _ in 0..200 {
        client.ping(PingRequest {}).await?;
    }
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let start = Instant::now();
        client.ping(PingRequest {}).await?;
        samples.push(start.elapsed().as_nanos() as u64);
    }
    samples.sort_unstable();
    let pct = |p: f64| {
        samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)] as f64 / 1000.0
    };
    let mean = samples.iter().sum::<u64>() as f64 / samples.len() as f64 / 1000.0;
    println!("RPC round trip over {endpoint} ({count} pings): p50 {:.1} us, p99 {:.1} us, mean {mean:.1} us", pct(0.5), pct(0.99));
    Ok(())
}
