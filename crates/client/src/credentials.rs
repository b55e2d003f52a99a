//! Registry credentials kept like Docker's `config.json`
//! (`{"auths": {"host": {"auth": base64("user:pass")}}}`): written to
//! `$BERTH_CONFIG/config.json` (default `~/.berth/config.json`), and read
//! from there or, failing that, from `~/.docker/config.json`.

use std::path::PathBuf;

use base64::Engine as _;
use berth_api::v1::RegistryAuth;
use serde_json::{json, Value};

use crate::error::{Error, ErrorKind, Result};

fn home() -> PathBuf {
    // Windows keeps the home folder in USERPROFILE (as Docker reads it).
    #[cfg(windows)]
    let var = "USERPROFILE";
    #[cfg(not(windows))]
    let var = "HOME";
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

/// Where Berth keeps its credentials.
pub fn config_path() -> PathBuf {
    std::env::var_os("BERTH_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".berth"))
        .join("config.json")
}

/// The key Docker uses for a registry: Docker Hub has its legacy URL.
pub fn server_key(registry: &str) -> String {
    match registry {
        "" | "docker.io" | "index.docker.io" | "registry-1.docker.io" => {
            "https://index.docker.io/v1/".into()
        }
        other => other
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .into(),
    }
}

/// The registry host a reference names ("alpine" → docker.io).
pub fn registry_of(reference: &str) -> String {
    let first = reference.split('/').next().unwrap_or("");
    if reference.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost")
    {
        first.to_string()
    } else {
        "docker.io".to_string()
    }
}

fn read(path: &PathBuf) -> Value {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| json!({}))
}

/// Credentials for a registry, if any were stored.
pub fn lookup(registry: &str) -> Option<RegistryAuth> {
    let key = server_key(registry);
    for path in [config_path(), home().join(".docker/config.json")] {
        let cfg = read(&path);
        let Some(entry) = cfg
            .get("auths")
            .and_then(|a| a.get(&key).or_else(|| a.get(format!("https://{key}"))))
        else {
            continue;
        };
        if let Some(token) = entry.get("identitytoken").and_then(Value::as_str) {
            return Some(RegistryAuth {
                identity_token: token.into(),
                ..Default::default()
            });
        }
        let decoded = entry
            .get("auth")
            .and_then(Value::as_str)
            .and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok())
            .and_then(|b| String::from_utf8(b).ok())?;
        let (user, pass) = decoded.split_once(':')?;
        return Some(RegistryAuth {
            username: user.into(),
            password: pass.into(),
            ..Default::default()
        });
    }
    None
}

/// Stores credentials for a registry (mode 0600).
pub fn store(registry: &str, user: &str, pass: &str) -> Result<PathBuf> {
    let path = config_path();
    let mut cfg = read(&path);
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    let Some(object) = cfg.as_object_mut() else {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "{} is not a JSON object: fix or remove it, then log in again",
                path.display()
            ),
        ));
    };
    let auths = object.entry("auths").or_insert_with(|| json!({}));
    auths[server_key(registry)] = json!({ "auth": auth });
    write(&path, &cfg)?;
    Ok(path)
}

/// Removes stored credentials; true when there were some.
pub fn remove(registry: &str) -> Result<bool> {
    let path = config_path();
    let mut cfg = read(&path);
    let removed = cfg
        .get_mut("auths")
        .and_then(Value::as_object_mut)
        .and_then(|a| a.remove(&server_key(registry)))
        .is_some();
    if removed {
        write(&path, &cfg)?;
    }
    Ok(removed)
}

fn write(path: &PathBuf, cfg: &Value) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format_args!("cannot create {}", dir.display()), e))?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    // Readable by its owner alone. On Windows the file inherits the ACL of
    // the user's profile folder, which already keeps other users out.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(&tmp)
        .map_err(|e| Error::io(format_args!("cannot write {}", tmp.display()), e))?;
    let text = serde_json::to_string_pretty(cfg).unwrap_or_default();
    f.write_all(text.as_bytes())
        .map_err(|e| Error::io(format_args!("cannot write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| Error::io(format_args!("cannot write {}", path.display()), e))?;
    Ok(())
}
