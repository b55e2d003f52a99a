//! Tests of [`super`]: the supervisor's wait for the agent.

use super::*;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A VM whose agent announces itself on the console but whose hybrid
/// vsock takes connections and never answers (the hang this guards).
struct Unanswering {
    socket: PathBuf,
}

#[tonic::async_trait]
impl Instance for Unanswering {
    fn endpoint(&self) -> Endpoint {
        Endpoint::HybridVsock {
            path: self.socket.clone(),
            port: 1024,
        }
    }
    fn pid(&self) -> Option<u32> {
        None
    }
    fn is_running(&mut self) -> bool {
        true
    }
    async fn request_power_off(&mut self) -> Result<()> {
        Ok(())
    }
    async fn kill(&mut self) {}
    fn announces_serving(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn connects_only_once_the_agent_serves_and_gives_up_early_when_it_never_answers() {
    let dir = tempfile::tempdir().unwrap();
    let console = dir.path().join("console.log");
    std::fs::write(&console, "an earlier boot\n").unwrap();
    let socket = dir.path().join("vm.vsock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    let watch = ConsoleWatch::from_end(&console);
    let before_serving = connections.clone();
    let log = console.clone();
    let announce = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let seen = before_serving.load(Ordering::SeqCst);
        let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
        writeln!(f, "{}", berth_api::AGENT_SERVING_LINE).unwrap();
        seen
    });
    let (_tx, mut stop) = watch::channel(false);
    let mut vm = Unanswering { socket };
    let started = Instant::now();
    let err = wait_ready(&mut vm, watch, &mut stop, Duration::from_secs(2))
        .await
        .expect_err("an agent that never answers");
    assert_eq!(
        announce.await.unwrap(),
        0,
        "connected before the agent served"
    );
    assert!(
        connections.load(Ordering::SeqCst) >= 1,
        "never tried after it served"
    );
    assert!(
        format!("{err:#}").contains("did not answer over vsock"),
        "{err:#}"
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "gave up after {took:?}, not soon after the grace"
    );
}
