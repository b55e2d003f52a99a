//! A real Docker registry (Debian's `docker-registry`, distribution 2.8)
//! on a free loopback port, with no auth, basic auth, or the bearer-token
//! flow Docker Hub uses (a token endpoint of our own that checks basic
//! credentials).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

/// How the registry checks clients.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anyone may pull and push.
    None,
    /// HTTP basic auth (htpasswd, bcrypt).
    Basic,
    /// Bearer tokens from our token endpoint, which wants basic credentials
    /// except for pulls of `public/*`.
    Token,
}

/// The user every auth-protected registry accepts.
pub const USER: &str = "berth";
/// Its password.
pub const PASS: &str = "s3cret-pass";

/// A running registry.
pub struct Registry {
    /// Its storage and config.
    pub dir: tempfile::TempDir,
    /// "127.0.0.1:PORT".
    pub addr: String,
    child: Child,
}

impl Registry {
    /// Starts a registry.
    pub fn start(auth: Auth) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut auth_yaml = String::new();
        match auth {
            Auth::None => {}
            Auth::Basic => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", USER, PASS])
                    .output()
                    .expect("htpasswd (apache2-utils)");
                std::fs::write(dir.path().join("htpasswd"), out.stdout).unwrap();
                auth_yaml = format!(
                    "auth: {{ htpasswd: {{ realm: r, path: {} }} }}\n",
                    dir.path().join("htpasswd").display()
                );
            }
            Auth::Token => {
                let token_port = spawn_token_endpoint();
                auth_yaml = format!("auth: {{ silly: {{ realm: \"http://127.0.0.1:{token_port}/token\", service: berth-test }} }}\n");
            }
        }
        let config = format!(
            "version: 0.1\nlog: {{ level: info }}\nstorage: {{ filesystem: {{ rootdirectory: {} }}, delete: {{ enabled: true }} }}\nhttp: {{ addr: \"{addr}\", secret: berth-test-secret }}\n{auth_yaml}",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("docker-registry (apt-get install docker-registry)");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = TcpStream::connect(&addr) {
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut line = String::new();
                if BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("HTTP/1.") {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Registry { dir, addr, child }
    }

    /// The registry's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Where it keeps a blob's data.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Credentials for skopeo.
    pub fn skopeo_creds(auth: Auth) -> Vec<String> {
        match auth {
            Auth::None => vec![],
            _ => vec![format!("--dest-creds={USER}:{PASS}")],
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A token endpoint that grants a token to USER:PASS, an anonymous pull
/// token for `public/*` repositories, and refuses the rest.
fn spawn_token_endpoint() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer_token_request(stream));
        }
    });
    port
}

fn answer_token_request(stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut authorized = false;
    let mut line = String::new();
    // Like Docker Hub: anyone gets a pull token for public repositories.
    if reader.read_line(&mut line).unwrap_or(0) > 0 {
        let scope_public = line.contains("scope=repository%3Apublic%2F")
            || line.contains("scope=repository:public/");
        authorized = scope_public && line.contains("pull") && !line.contains("push");
    }
    line.clear();
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line
            .to_ascii_lowercase()
            .strip_prefix("authorization: basic ")
        {
            let want = base64::engine::general_purpose::STANDARD
                .encode(format!("{USER}:{PASS}"))
                .to_ascii_lowercase();
            authorized = v.trim() == want;
        }
        line.clear();
    }
    let reply = if authorized {
        let body =
            r#"{"token":"berth-test-token","access_token":"berth-test-token","expires_in":300}"#;
        format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
    } else {
        "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
    };
    let mut s = stream;
    let _ = s.write_all(reply.as_bytes());
}
