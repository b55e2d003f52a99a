//! The monitor's event loop, on a current-thread runtime: it starts the
//! container when told, copies output to the log and to attached clients,
//! feeds stdin and terminal sizes, and when the process exits records how
//! and cleans up.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::{cleanup, Helper, Prepared};
use crate::runtime::logs;
use crate::runtime::protocol::{self, write_json_atomic, ExitStatus, Reply, Request, RunState};
use crate::util::fdio::{self, Fd};

/// How long a created container waits for its start before giving up.
const START_TIMEOUT: Duration = Duration::from_secs(120);

struct Shared {
    /// The create helper, until the container starts.
    helper: RefCell<Option<Helper>>,
    state: RefCell<RunState>,
    opts: super::Options,
    output: broadcast::Sender<(u8, Rc<[u8]>)>,
    stdin: RefCell<Option<Rc<Fd>>>,
    master: Option<Rc<Fd>>,
    /// True once the process was started.
    started: tokio::sync::watch::Sender<bool>,
}

/// Runs the loop until the container's process has exited; returns the
/// monitor's exit code.
pub(super) fn run(p: Prepared) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("monitor: no runtime: {e}");
            return 1;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, serve(p))
}

async fn serve(p: Prepared) -> i32 {
    let Prepared {
        opts,
        helper,
        pid,
        stdio,
        master,
        listener,
    } = p;
    let master = master.and_then(|m| Fd::new(m).ok()).map(Rc::new);
    let (output, _) = broadcast::channel(4096);
    let (started_tx, mut started_rx) = tokio::sync::watch::channel(false);
    let shared = Rc::new(Shared {
        helper: RefCell::new(Some(helper)),
        state: RefCell::new(RunState {
            monitor_pid: std::process::id() as i32,
            pid,
            ..Default::default()
        }),
        opts: opts.clone(),
        output,
        stdin: RefCell::new(stdio.stdin.and_then(|f| Fd::new(f).ok()).map(Rc::new)),
        master: master.clone(),
        started: started_tx,
    });
    let _ = write_json_atomic(&opts.run_state, &*shared.state.borrow());
    let writer = Rc::new(RefCell::new(
        logs::Writer::open(&opts.log_path, opts.log_max_size, opts.log_max_files).ok(),
    ));
    let mut readers: Vec<JoinHandle<()>> = Vec::new();
    if let Some(m) = master {
        readers.push(copy_output(m, 0, writer.clone(), shared.clone()));
    }
    for (fd, stream) in [(stdio.stdout, 0usize), (stdio.stderr, 1usize)] {
        if let Some(fd) = fd.and_then(|f| Fd::new(f).ok()) {
            readers.push(copy_output(
                Rc::new(fd),
                stream,
                writer.clone(),
                shared.clone(),
            ));
        }
    }
    let _ = listener.set_nonblocking(true);
    let listener = match UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("monitor: socket: {e}");
            return 1;
        }
    };
    let clients: Rc<RefCell<Vec<JoinHandle<()>>>> = Rc::default();
    let accept = {
        let shared = shared.clone();
        let clients = clients.clone();
        tokio::task::spawn_local(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let handle = tokio::task::spawn_local(client(conn, shared.clone()));
                clients.borrow_mut().push(handle);
            }
        })
    };
    let exited = async {
        let fd = Fd::new(fdio::pidfd(pid)?)?;
        fd.readable().await
    };
    // The process cannot exit before it starts; a start that never comes
    // (the agent died in between) ends the run.
    let started = tokio::time::timeout(START_TIMEOUT, started_rx.wait_for(|s| *s)).await;
    let code = if started.is_err() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        if let Some(helper) = shared.helper.borrow_mut().take() {
            helper.abandon();
        }
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        255
    } else {
        let _ = exited.await;
        crate::runtime::wait_exit_code(pid)
    };
    // Output ends when the last process holding the pipes or the terminal
    // is gone, which the PID namespace's end guarantees.
    for r in readers {
        let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
    }
    if let Some(w) = writer.borrow_mut().as_mut() {
        let _ = w.flush();
    }
    let oom_killed = crate::cgroups::Cgroup::of(&opts.id).oom_kills() > 0;
    cleanup(&opts);
    {
        let mut state = shared.state.borrow_mut();
        state.exit = Some(ExitStatus {
            code,
            oom_killed,
            finished_at: Some(chrono::Utc::now()),
            error: String::new(),
        });
        let _ = write_json_atomic(&opts.run_state, &*state);
    }
    let _ = shared
        .output
        .send((protocol::EXIT, Rc::from(code.to_be_bytes().as_slice())));
    accept.abort();
    let pending: Vec<JoinHandle<()>> = clients.borrow_mut().drain(..).collect();
    for c in pending {
        let _ = tokio::time::timeout(Duration::from_secs(2), c).await;
    }
    0
}

/// Copies one output stream to the log and to attached clients.
fn copy_output(
    fd: Rc<Fd>,
    stream: usize,
    writer: Rc<RefCell<Option<logs::Writer>>>,
    shared: Rc<Shared>,
) -> JoinHandle<()> {
    tokio::task::spawn_local(async move {
        let mut buf = vec![0u8; 32 << 10];
        loop {
            let n = match fd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(w) = writer.borrow_mut().as_mut() {
                let _ = w.write(stream, &buf[..n]);
            }
            let kind = if stream == 0 {
                protocol::STDOUT
            } else {
                protocol::STDERR
            };
            let _ = shared.output.send((kind, Rc::from(&buf[..n])));
        }
    })
}

/// Serves one connection.
async fn client(mut conn: UnixStream, shared: Rc<Shared>) {
    let request: Option<Request> = protocol::read_line(&mut conn)
        .await
        .ok()
        .and_then(|l| serde_json::from_str(&l).ok());
    match request {
        Some(Request::Start) => {
            let reply = start(&shared);
            let _ = protocol::write_line(&mut conn, &reply).await;
        }
        Some(Request::Attach {
            stdin,
            stdout,
            stderr,
        }) => {
            let mut rx = shared.output.subscribe();
            if protocol::write_line(&mut conn, &Reply::default())
                .await
                .is_err()
            {
                return;
            }
            // A client that arrives after the exit was broadcast would
            // otherwise wait for a frame that never comes.
            let exited = shared.state.borrow().exit.as_ref().map(|e| e.code);
            if let Some(code) = exited {
                let _ = protocol::write_frame(&mut conn, protocol::EXIT, &code.to_be_bytes()).await;
                return;
            }
            let (mut read, mut write) = conn.into_split();
            let input = {
                let shared = shared.clone();
                tokio::task::spawn_local(async move {
                    while let Ok(Some((kind, data))) = protocol::read_frame(&mut read).await {
                        handle_input(&shared, stdin, kind, &data).await;
                    }
                })
            };
            loop {
                match rx.recv().await {
                    Ok((kind, data)) => {
                        let wanted = match kind {
                            protocol::STDOUT => stdout,
                            protocol::STDERR => stderr,
                            _ => true,
                        };
                        if wanted
                            && protocol::write_frame(&mut write, kind, &data)
                                .await
                                .is_err()
                        {
                            break;
                        }
                        if kind == protocol::EXIT {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
            input.abort();
        }
        None => {
            let _ = protocol::write_line(
                &mut conn,
                &Reply {
                    error: "unknown request".into(),
                },
            )
            .await;
        }
    }
}

fn start(shared: &Shared) -> Reply {
    if *shared.started.borrow() {
        return Reply::default();
    }
    let Some(helper) = shared.helper.borrow_mut().take() else {
        return Reply {
            error: "the container has already exited".into(),
        };
    };
    if let Err(error) = helper.start() {
        // The process waits for a start that will not come: end it, and
        // let the loop reap it.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(shared.state.borrow().pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = shared.started.send(true);
        return Reply { error };
    }
    let mut state = shared.state.borrow_mut();
    state.started_at = Some(chrono::Utc::now());
    let _ = write_json_atomic(&shared.opts.run_state, &*state);
    let _ = shared.started.send(true);
    Reply::default()
}

async fn handle_input(shared: &Shared, stdin_wanted: bool, kind: u8, data: &[u8]) {
    match kind {
        protocol::STDIN if stdin_wanted => {
            if let Some(m) = &shared.master {
                let _ = m.write_all(data).await;
            } else {
                let fd = shared.stdin.borrow().clone();
                if let Some(fd) = fd {
                    let _ = fd.write_all(data).await;
                }
            }
        }
        protocol::CLOSE_STDIN if stdin_wanted && shared.opts.stdin_once => {
            if let Some(m) = &shared.master {
                // End of input on a terminal is its EOF character.
                let _ = m.write_all(&[4]).await;
            } else {
                shared.stdin.borrow_mut().take();
            }
        }
        protocol::RESIZE if data.len() == 4 => {
            if let Some(m) = &shared.master {
                let rows = u16::from_be_bytes([data[0], data[1]]);
                let cols = u16::from_be_bytes([data[2], data[3]]);
                let _ = fdio::set_window_size(m.raw(), rows, cols);
            }
        }
        _ => {}
    }
}
