//! Interactive sessions: `run` (attached), `start -a`, `attach` and
//! `exec`. Input goes up the gRPC stream, output comes down to this
//! terminal; with a TTY the local terminal is put in raw mode and its
//! size follows SIGWINCH; without one, Ctrl-C and other signals are
//! passed to the container as Docker's `--sig-proxy` does.

use std::io::Write;
use std::os::fd::AsFd;

use anyhow::{bail, Result};
use berth_client::session::{AttachOptions, ExecOptions, Input, Output, TerminalSize};
use clap::Args;
use futures::StreamExt;
use nix::sys::termios::{self, SetArg, Termios};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};

use crate::{Conn, Exit};

/// What to attach to and how.
pub struct AttachPlan {
    /// The container.
    pub id: String,
    /// Start it once attached (`run`, `start -a`).
    pub start: bool,
    /// Send our stdin.
    pub stdin: bool,
    /// Show the container's stdout.
    pub stdout: bool,
    /// Show the container's stderr.
    pub stderr: bool,
    /// The container has a TTY.
    pub tty: bool,
    /// Pass our signals to the container.
    pub sig_proxy: bool,
    /// The key sequence that detaches (see [`crate::detach`]).
    pub detach_keys: Vec<u8>,
}

/// How an attached session ended.
pub enum Ended {
    /// The container's process exited with this code.
    Exited(i32),
    /// The user typed the detach keys; the container runs on.
    Detached,
}

/// Puts the local terminal in raw mode until dropped.
struct RawMode(Option<Termios>);

impl RawMode {
    fn enter(tty: bool) -> RawMode {
        let stdin = std::io::stdin();
        if !tty || !nix::unistd::isatty(0).unwrap_or(false) {
            return RawMode(None);
        }
        let Ok(saved) = termios::tcgetattr(stdin.as_fd()) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, saved);
        }
    }
}

/// This terminal's size, if stdout or stdin is one.
fn terminal_size() -> Option<TerminalSize> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    for fd in [0, 1] {
        // SAFETY: TIOCGWINSZ writes one winsize.
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_row > 0 {
            return Some(TerminalSize {
                rows: ws.ws_row as u32,
                cols: ws.ws_col as u32,
            });
        }
    }
    None
}

/// Reads stdin and watches the window size and signals; sends them as session input.
/// With `detach`, typing its keys fires its sender instead.
fn pump_input(
    stdin: bool,
    tty: bool,
    tx: mpsc::Sender<Input>,
    detach: Option<(Vec<u8>, oneshot::Sender<()>)>,
) {
    if stdin {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut input = tokio::io::stdin();
            let mut buf = vec![0u8; 16 << 10];
            let (mut watcher, mut detached) = match detach {
                Some((keys, fire)) => (Some(crate::detach::Watcher::new(keys)), Some(fire)),
                None => (None, None),
            };
            loop {
                match input.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(Input::CloseStdin).await;
                        break;
                    }
                    Ok(n) => {
                        let (data, done) = match watcher.as_mut() {
                            Some(w) => w.feed(&buf[..n]),
                            None => (buf[..n].to_vec(), false),
                        };
                        if !data.is_empty() && tx.send(Input::Stdin(data)).await.is_err() {
                            break;
                        }
                        if done {
                            if let Some(fire) = detached.take() {
                                let _ = fire.send(());
                            }
                            break;
                        }
                    }
                }
            }
        });
    }
    if tty {
        tokio::spawn(async move {
            if let Some(s) = terminal_size() {
                let _ = tx.send(Input::Resize(s)).await;
            }
            let Ok(mut winch) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
            else {
                return;
            };
            while winch.recv().await.is_some() {
                if let Some(s) = terminal_size() {
                    if tx.send(Input::Resize(s)).await.is_err() {
                        break;
                    }
                }
            }
        });
    }
}

/// Passes SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1/2 to the container.
fn proxy_signals(conn: &Conn, id: String) {
    use tokio::signal::unix::{signal, SignalKind};
    let kinds = [
        (SignalKind::interrupt(), "INT"),
        (SignalKind::terminate(), "TERM"),
        (SignalKind::hangup(), "HUP"),
        (SignalKind::quit(), "QUIT"),
        (SignalKind::user_defined1(), "USR1"),
        (SignalKind::user_defined2(), "USR2"),
    ];
    for (kind, name) in kinds {
        let Ok(mut sig) = signal(kind) else { continue };
        let endpoint = conn.clone();
        let id = id.clone();
        tokio::spawn(async move {
            while sig.recv().await.is_some() {
                let _ = endpoint.kill_container(&id, name).await;
            }
        });
    }
}

fn write_out(stderr: bool, data: &[u8]) {
    if stderr {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(data);
        let _ = e.flush();
    } else {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(data);
        let _ = o.flush();
    }
}

/// Attaches (and maybe starts); returns how the session ended.
pub async fn attach(conn: &Conn, plan: AttachPlan) -> Result<Ended> {
    let options = AttachOptions {
        stdin: plan.stdin,
        start: plan.start,
    };
    let mut session = conn
        .attach(&plan.id, options)
        .await
        .map_err(|e| Exit::daemon(e.into()))?;
    let _raw = RawMode::enter(plan.tty);
    let (detach_tx, detach_rx) = oneshot::channel::<()>();
    // Pending for ever when the input ends without the keys (the sender
    // is dropped), so it is never polled again once complete.
    let detached = async move {
        if detach_rx.await.is_err() {
            std::future::pending::<()>().await
        }
    };
    tokio::pin!(detached);
    pump_input(
        plan.stdin,
        plan.tty,
        session.input.clone(),
        Some((plan.detach_keys.clone(), detach_tx)),
    );
    if plan.sig_proxy {
        proxy_signals(conn, plan.id.clone());
    }
    loop {
        let out = tokio::select! {
            o = session.output.next() => o,
            () = &mut detached => return Ok(Ended::Detached),
        };
        match out {
            Some(Ok(Output::Stdout(d))) if plan.stdout => write_out(false, &d),
            Some(Ok(Output::Stderr(d))) if plan.stderr => write_out(true, &d),
            Some(Ok(Output::Stdout(_) | Output::Stderr(_))) => {}
            Some(Ok(Output::Exit(code))) => return Ok(Ended::Exited(code)),
            Some(Err(e)) => return Err(e.into()),
            None => bail!("the Berth agent ended the attach without an exit code"),
        }
    }
}

/// `berth attach`.
#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Do not attach STDIN.
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy all received signals to the process.
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container.
    #[arg(long = "detach-keys", default_value = crate::detach::DEFAULT)]
    pub detach_keys: String,
    /// The container.
    pub container: String,
}

/// Runs `berth attach`.
pub async fn attach_cmd(conn: &Conn, a: AttachArgs) -> Result<()> {
    let r = crate::containers::inspect_one(conn, &a.container).await?;
    let config = r.config.clone().unwrap_or_default();
    let ended = attach(
        conn,
        AttachPlan {
            id: r.id,
            start: false,
            stdin: !a.no_stdin && config.open_stdin,
            stdout: true,
            stderr: true,
            tty: config.tty,
            sig_proxy: a.sig_proxy && !config.tty,
            detach_keys: crate::detach::parse(&a.detach_keys)?,
        },
    )
    .await?;
    match ended {
        // Docker's attach reports a detach as an error.
        Ended::Detached => bail!("read escape sequence"),
        Ended::Exited(0) => Ok(()),
        Ended::Exited(code) => Err(Exit(code).into()),
    }
}

/// `berth exec`.
#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background.
    #[arg(short = 'd', long = "detach")]
    pub detach: bool,
    /// Keep STDIN open even if not attached.
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long = "tty")]
    pub tty: bool,
    /// Set environment variables.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: name|uid[:group|gid]).
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Give extended privileges to the command.
    #[arg(long)]
    pub privileged: bool,
    /// The container, then the command and its arguments: every word
    /// after the container is the command's, flags too (as in Docker).
    #[arg(
        required = true,
        num_args = 2..,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CONTAINER COMMAND [ARG...]"
    )]
    pub args: Vec<String>,
}

/// Runs `berth exec`; exits with the command's status.
pub async fn exec(conn: &Conn, a: ExecArgs) -> Result<()> {
    let options = ExecOptions {
        cmd: a.args[1..].to_vec(),
        env: a.env.clone(),
        working_dir: a.workdir.clone().unwrap_or_default(),
        user: a.user.clone().unwrap_or_default(),
        tty: a.tty,
        size: if a.tty { terminal_size() } else { None },
        stdin: a.interactive,
        detach: a.detach,
        privileged: a.privileged,
    };
    let container = &a.args[0];
    if container.starts_with('-') && container.len() > 1 {
        return Err(Exit::daemon(anyhow::anyhow!(
            "unknown flag: {container}\nSee 'berth exec --help'."
        )));
    }
    let mut session = conn.exec(container, options).await.map_err(|e| {
        match e.kind() {
            // Docker's codes for a command that cannot run; other refusals
            // (no such container, paused) are plain errors.
            berth_client::ErrorKind::CommandNotFound
            | berth_client::ErrorKind::CommandCannotRun
            | berth_client::ErrorKind::InvalidArgument => Exit::daemon(e.into()),
            _ => e.into(),
        }
    })?;
    if a.detach {
        return Ok(());
    }
    let _raw = RawMode::enter(a.tty);
    pump_input(a.interactive, a.tty, session.input.clone(), None);
    while let Some(out) = session.output.next().await {
        match out? {
            Output::Stdout(d) => write_out(false, &d),
            Output::Stderr(d) => write_out(true, &d),
            Output::Exit(code) => {
                drop(_raw);
                if code != 0 {
                    return Err(Exit(code).into());
                }
                return Ok(());
            }
        }
    }
    bail!("the Berth agent ended the exec without an exit code")
}
