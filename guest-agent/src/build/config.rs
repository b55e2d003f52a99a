//! Instructions that change only the image's config (ENV, WORKDIR, USER,
//! CMD, ENTRYPOINT, EXPOSE, VOLUME, LABEL, MAINTAINER, STOPSIGNAL,
//! HEALTHCHECK, SHELL, ONBUILD), with build variables expanded as Docker
//! expands them.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::ast::{Command, Kind};
use super::words;
use crate::error::{Error, Result};

/// The variables a word sees: the config's ENV first, then the stage's
/// ARGs.
pub(super) fn lookup<'a>(
    config: &'a Value,
    args: &'a BTreeMap<String, String>,
) -> impl Fn(&str) -> Option<String> + 'a {
    move |name: &str| {
        env_of(config)
            .iter()
            .rev()
            .find_map(|e| {
                e.split_once('=')
                    .filter(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
            .or_else(|| args.get(name).cloned())
    }
}

/// The config's `Env`.
pub(super) fn env_of(config: &Value) -> Vec<String> {
    config["config"]["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The stage's shell: `SHELL`'s, else `/bin/sh -c`.
pub(super) fn shell_of(config: &Value) -> Vec<String> {
    match config["config"]["Shell"].as_array() {
        Some(a) if !a.is_empty() => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => vec!["/bin/sh".into(), "-c".into()],
    }
}

/// A command as it runs: exec form as is, shell form through the shell.
pub(super) fn argv(config: &Value, command: &Command) -> Vec<String> {
    match command {
        Command::Exec(v) => v.clone(),
        Command::Shell(s) => {
            let mut v = shell_of(config);
            v.push(s.clone());
            v
        }
    }
}

/// Sets `NAME=value` in the config's Env (replacing an earlier one).
pub(super) fn set_env(config: &mut Value, name: &str, value: &str) {
    let mut env: Vec<String> = env_of(config)
        .into_iter()
        .filter(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != name)
        .collect();
    env.push(format!("{name}={value}"));
    config["config"]["Env"] = json!(env);
}

/// Expands one raw word with the variables in scope.
pub(super) fn expand(
    config: &Value,
    args: &BTreeMap<String, String>,
    escape: char,
    raw: &str,
) -> Result<String> {
    words::expand(raw, &lookup(config, args), escape).map_err(Error::InvalidArgument)
}

fn expand_all(
    config: &Value,
    args: &BTreeMap<String, String>,
    escape: char,
    raw: &[String],
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for r in raw {
        out.extend(
            words::expand_words(r, &lookup(config, args), escape)
                .map_err(Error::InvalidArgument)?,
        );
    }
    Ok(out)
}

/// Applies a config-only instruction. Returns false when `kind` is not
/// one (RUN, COPY, ADD, ARG are the stage's to run).
pub(super) fn apply(
    config: &mut Value,
    args: &BTreeMap<String, String>,
    escape: char,
    kind: &Kind,
) -> Result<bool> {
    if !config["config"].is_object() {
        config["config"] = json!({});
    }
    match kind {
        Kind::Env(pairs) => {
            for (k, raw) in pairs {
                let v = expand(config, args, escape, raw)?;
                let k = expand(config, args, escape, k)?;
                set_env(config, &k, &v);
            }
        }
        Kind::Workdir(raw) => {
            let dir = expand(config, args, escape, raw)?;
            config["config"]["WorkingDir"] = json!(workdir(config, &dir));
        }
        Kind::User(raw) => config["config"]["User"] = json!(expand(config, args, escape, raw)?),
        Kind::Cmd(c) => config["config"]["Cmd"] = json!(argv(config, c)),
        Kind::Entrypoint(c) => {
            config["config"]["Entrypoint"] = json!(argv(config, c));
            // An ENTRYPOINT resets the CMD the base image had, as Docker's.
            config["config"]["Cmd"] = Value::Null;
        }
        Kind::Expose(raw) => {
            for p in expand_all(config, args, escape, raw)? {
                let p = if p.contains('/') {
                    p
                } else {
                    format!("{p}/tcp")
                };
                config["config"]["ExposedPorts"][p] = json!({});
            }
        }
        Kind::Volume(raw) => {
            for v in expand_all(config, args, escape, raw)? {
                if v.is_empty() {
                    return Err(Error::InvalidArgument(
                        "VOLUME specified can not be an empty string".into(),
                    ));
                }
                config["config"]["Volumes"][v] = json!({});
            }
        }
        Kind::Label(pairs) => {
            for (k, raw) in pairs {
                let k = expand(config, args, escape, k)?;
                let v = expand(config, args, escape, raw)?;
                config["config"]["Labels"][k] = json!(v);
            }
        }
        Kind::Maintainer(m) => config["author"] = json!(m),
        Kind::StopSignal(raw) => {
            let s = expand(config, args, escape, raw)?;
            crate::runtime::stop::parse_signal(&s)?;
            config["config"]["StopSignal"] = json!(s);
        }
        Kind::Healthcheck(None) => config["config"]["Healthcheck"] = json!({"Test": ["NONE"]}),
        Kind::Healthcheck(Some(h)) => {
            config["config"]["Healthcheck"] =
                crate::runtime::health::config_json(&crate::runtime::config::HealthConfig {
                    test: h.test.clone(),
                    interval: h.interval,
                    timeout: h.timeout,
                    start_period: h.start_period,
                    start_interval: h.start_interval,
                    retries: h.retries.clamp(0, i32::MAX as i64) as i32,
                });
        }
        Kind::Shell(s) => config["config"]["Shell"] = json!(s),
        Kind::Onbuild(t) => {
            let mut list: Vec<Value> = config["config"]["OnBuild"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            list.push(json!(t));
            config["config"]["OnBuild"] = json!(list);
        }
        Kind::Run(_) | Kind::Copy(_) | Kind::Add(_) | Kind::Arg(_) => return Ok(false),
    }
    Ok(true)
}

/// A WORKDIR path made absolute against the config's current one.
pub(super) fn workdir(config: &Value, dir: &str) -> String {
    let base = config["config"]["WorkingDir"].as_str().unwrap_or("/");
    let joined = if dir.starts_with('/') {
        dir.to_string()
    } else {
        format!("{}/{dir}", base.trim_end_matches('/'))
    };
    clean(&joined)
}

/// Cleans an absolute path: `.`, `..` and repeated slashes removed.
pub(super) fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Appends a history entry.
pub(super) fn add_history(config: &mut Value, created_by: &str, empty_layer: bool) {
    let mut entry = json!({
        "created": chrono::Utc::now().to_rfc3339(),
        "created_by": created_by,
        "comment": "buildkit.dockerfile.v0",
    });
    if empty_layer {
        entry["empty_layer"] = json!(true);
    }
    if !config["history"].is_array() {
        config["history"] = json!([]);
    }
    if let Some(h) = config["history"].as_array_mut() {
        h.push(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workdirs_join_and_clean() {
        let mut c = json!({"config": {}});
        assert_eq!(workdir(&c, "app"), "/app");
        c["config"]["WorkingDir"] = json!("/app");
        assert_eq!(workdir(&c, "src/../lib"), "/app/lib");
        assert_eq!(workdir(&c, "/x//y/"), "/x/y");
    }

    #[test]
    fn env_replaces_by_name_and_arg_is_seen_after_env() {
        let mut c = json!({"config": {"Env": ["A=1", "PATH=/bin"]}});
        set_env(&mut c, "A", "2");
        assert_eq!(env_of(&c), ["PATH=/bin", "A=2"]);
        let args = BTreeMap::from([("A".to_string(), "x".to_string()), ("B".into(), "y".into())]);
        let l = lookup(&c, &args);
        assert_eq!(l("A").as_deref(), Some("2"));
        assert_eq!(l("B").as_deref(), Some("y"));
        assert_eq!(l("C"), None);
    }

    #[test]
    fn shell_form_cmd_goes_through_the_shell() {
        let c = json!({"config": {}});
        assert_eq!(
            argv(&c, &Command::Shell("echo hi".into())),
            ["/bin/sh", "-c", "echo hi"]
        );
    }
}
