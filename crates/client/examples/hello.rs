//! Runs `echo hello from Berth` in a busybox container through
//! berth-client, as `berth run --rm busybox echo …` would: the image is
//! pulled when it is missing (with per-layer progress), the container is
//! attached before it starts, its output printed, and it is removed.
//!
//! ```sh
//! cargo run -p berth-client --example hello -- [IMAGE]
//! ```
//!
//! The agent is found as `berth` finds it (`BERTH_HOST`, the local socket,
//! a running VM).

use berth_client::images::Progress;
use berth_client::session::{AttachOptions, Output};
use berth_client::types::CreateContainerRequest;
use berth_client::{Client, ConnectOptions, ErrorKind};
use futures::StreamExt;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let image = std::env::args().nth(1).unwrap_or_else(|| "busybox".into());
    if let Err(e) = run(&image).await {
        eprintln!("Error: {e}");
        // Docker's codes: 127 for a missing command, 126 for one that
        // cannot run, 125 for any other refusal.
        std::process::exit(e.kind().run_exit_code());
    }
}

async fn run(image: &str) -> berth_client::Result<()> {
    let client = Client::connect(ConnectOptions::default()).await?;
    println!("agent at {} ({:?})", client.endpoint(), client.source());
    let request = CreateContainerRequest {
        image: image.to_string(),
        cmd: vec!["echo".into(), "hello from Berth".into()],
        auto_remove: true,
        ..Default::default()
    };
    let created = client
        .create_pulling(request, |progress| match progress {
            None => println!("pulling {image}"),
            Some(Progress::Layer { id, status, .. }) => println!("{id} {status}"),
            Some(other) => println!("{}", serde_json::to_string(other).unwrap_or_default()),
        })
        .await?;
    let options = AttachOptions {
        stdin: false,
        start: true,
    };
    let mut session = client.attach(&created.id, options).await?;
    while let Some(out) = session.output.next().await {
        match out? {
            Output::Stdout(d) | Output::Stderr(d) => print!("{}", String::from_utf8_lossy(&d)),
            Output::Exit(0) => return Ok(()),
            Output::Exit(code) => {
                return Err(berth_client::Error::new(
                    ErrorKind::Internal,
                    format!("the container exited with {code}"),
                ))
            }
        }
    }
    Ok(())
}
