//! Watching containers: `logs`, `stats` and `events`.

use std::collections::HashMap;
use std::io::Write;

use anyhow::{Context, Result};
use berth_client::types as pb;
use berth_client::Timestamp;
use clap::Args;
use futures::StreamExt;

use crate::{format, Conn};

/// `berth logs`.
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short = 'f', long = "follow")]
    pub follow: bool,
    /// Number of lines to show from the end of the logs ("all" for all).
    #[arg(short = 'n', long = "tail", default_value = "all")]
    pub tail: String,
    /// Show timestamps.
    #[arg(short = 't', long = "timestamps")]
    pub timestamps: bool,
    /// Show logs since a timestamp (RFC 3339) or a relative time (e.g. 42m).
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp (RFC 3339) or a relative time.
    #[arg(long)]
    pub until: Option<String>,
    /// Show extra details provided to logs (the labels and environment
    /// variables the container's `--log-opt labels=…`/`env=…` name).
    #[arg(long)]
    pub details: bool,
    /// The container.
    pub container: String,
}

/// Parses an RFC 3339 time, a Unix time, or a duration ago ("10s", "5m", "2h").
pub fn parse_time(text: &str) -> Result<Timestamp> {
    let t = text.trim();
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(Timestamp {
            seconds: d.timestamp(),
            nanos: d.timestamp_subsec_nanos() as i32,
        });
    }
    if let Ok(secs) = t.parse::<f64>() {
        return Ok(Timestamp {
            seconds: secs.trunc() as i64,
            nanos: (secs.fract() * 1e9) as i32,
        });
    }
    let (num, unit) = t.split_at(
        t.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(t.len()),
    );
    let n: f64 = num.parse().with_context(|| format!("invalid time {text:?}: use RFC 3339 (2024-01-02T15:04:05Z), a Unix time, or a duration such as 10m"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => anyhow::bail!("invalid time {text:?}: durations end in s, m or h"),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs_f64()
        - secs;
    Ok(Timestamp {
        seconds: now.trunc() as i64,
        nanos: (now.fract() * 1e9) as i32,
    })
}

fn rfc3339(t: &Option<Timestamp>) -> String {
    t.as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
        .unwrap_or_default()
}

/// Runs `berth logs`.
pub async fn logs(conn: &Conn, a: LogsArgs) -> Result<()> {
    let tail = if a.tail == "all" {
        -1
    } else {
        a.tail
            .parse::<i64>()
            .with_context(|| format!("invalid --tail {:?}: give a number or all", a.tail))?
    };
    let req = pb::LogsRequest {
        id: a.container,
        follow: a.follow,
        tail,
        since: a.since.as_deref().map(parse_time).transpose()?,
        until: a.until.as_deref().map(parse_time).transpose()?,
        timestamps: a.timestamps,
        stdout: true,
        stderr: true,
    };
    let details = if a.details {
        let doc = conn.inspect_container_json(&req.id).await?;
        Some(format!("{} ", detail_attrs(&doc)))
    } else {
        None
    };
    let mut stream = conn.logs(req).await?;
    while let Some(entry) = stream.next().await {
        let e = entry?;
        let mut data = Vec::new();
        if a.timestamps {
            data.extend_from_slice(format!("{} ", rfc3339(&e.time)).as_bytes());
        }
        if let Some(d) = &details {
            data.extend_from_slice(d.as_bytes());
        }
        data.extend_from_slice(&e.data);
        if e.stream == "stderr" {
            let mut err = std::io::stderr().lock();
            err.write_all(&data)?;
            err.flush()?;
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(&data)?;
            out.flush()?;
        }
    }
    Ok(())
}

/// What `logs --details` puts before each line, as Docker's json-file
/// logs do: the labels named by the `labels` log option and the
/// environment variables named by `env` (an environment variable wins over
/// a label of the same name), sorted by name, as `k=v` pairs joined by
/// commas with names and values query-escaped. Empty without such options.
/// (`labels-regex` and `env-regex` are not read.)
pub fn detail_attrs(inspect: &serde_json::Value) -> String {
    let opts = &inspect["HostConfig"]["LogConfig"]["Config"];
    let names = |key: &str| -> Vec<String> {
        opts[key]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(|s| s.split(',').map(String::from).collect())
            .unwrap_or_default()
    };
    let mut attrs = std::collections::BTreeMap::new();
    let labels = &inspect["Config"]["Labels"];
    for name in names("labels") {
        if let Some(v) = labels[&name].as_str() {
            attrs.insert(name, v.to_string());
        }
    }
    let env: HashMap<&str, &str> = inspect["Config"]["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str()?.split_once('='))
        .collect();
    for name in names("env") {
        if let Some(v) = env.get(name.as_str()) {
            attrs.insert(name, v.to_string());
        }
    }
    attrs
        .iter()
        .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Go's `url.QueryEscape`: unreserved bytes kept, space as `+`, the rest
/// as `%XX`.
fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `berth stats`.
#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Disable streaming stats and only pull the first result.
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Format: table (default) or json.
    #[arg(long)]
    pub format: Option<String>,
    /// Containers (default: every running one).
    pub containers: Vec<String>,
}

/// Runs `berth stats`.
pub async fn stats(conn: &Conn, a: StatsArgs) -> Result<()> {
    let mut ids = a.containers.clone();
    if ids.is_empty() {
        let list = conn
            .list_containers(pb::ListContainersRequest::default())
            .await?;
        ids = list.into_iter().map(|c| c.id).collect();
    }
    // A container that is not running shows zeros, as Docker's does.
    let every = conn
        .list_containers(pb::ListContainersRequest {
            all: true,
            ..Default::default()
        })
        .await?;
    let find = |input: &str| {
        every
            .iter()
            .find(|c| {
                c.id.starts_with(input)
                    || c.names.iter().any(|n| n.trim_start_matches('/') == input)
            })
            .cloned()
    };
    // Docker's CONTAINER column is the name or id as given (the short id
    // when none was), in the order given.
    let given = !a.containers.is_empty();
    let shown: Vec<(String, String)> = ids
        .iter()
        .filter_map(|input| {
            let c = find(input)?;
            let short = c.id[..12.min(c.id.len())].to_string();
            Some((c.id, if given { input.clone() } else { short }))
        })
        .collect();
    let zeros = move |input: &str| {
        find(input).map(|c| pb::StatsSample {
            id: c.id.clone(),
            name: c
                .names
                .first()
                .map_or("", |n| n.trim_start_matches('/'))
                .to_string(),
            ..Default::default()
        })
    };
    let stopped = |e: &berth_client::Error| e.kind() == berth_client::ErrorKind::FailedPrecondition;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<pb::StatsSample>>(16);
    for id in &ids {
        let tx = tx.clone();
        let zero = zeros(id);
        let mut stream = match conn.stats(id, !a.no_stream).await {
            Ok(s) => s,
            Err(e) if stopped(&e) && zero.is_some() => {
                let _ = tx.send(Ok(zero.unwrap_or_default())).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        tokio::spawn(async move {
            while let Some(s) = stream.next().await {
                let s = match s {
                    Err(e) if stopped(&e) && zero.is_some() => Ok(zero.clone().unwrap_or_default()),
                    other => other.map_err(anyhow::Error::from),
                };
                if tx.send(s).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let mut latest: HashMap<String, pb::StatsSample> = HashMap::new();
    let tty = nix::unistd::isatty(1).unwrap_or(false);
    while let Some(s) = rx.recv().await {
        let s = s?;
        latest.insert(s.id.clone(), s);
        if !a.no_stream || latest.len() == ids.len() {
            let mut samples: Vec<&pb::StatsSample> = latest.values().collect();
            let place = |s: &pb::StatsSample| shown.iter().position(|(id, _)| *id == s.id);
            if given {
                samples.sort_by_key(|s| place(s));
            } else {
                samples.sort_by(|x, y| x.name.cmp(&y.name));
            }
            let container = |s: &pb::StatsSample| {
                place(s).map_or_else(
                    || s.id[..12.min(s.id.len())].to_string(),
                    |i| shown[i].1.clone(),
                )
            };
            let rows: Vec<serde_json::Value> = samples
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "ID": &s.id[..12.min(s.id.len())], "Container": container(s), "Name": s.name,
                        "CPUPerc": format!("{:.2}%", s.cpu_percent),
                        "MemUsage": format!("{} / {}", format::binary_size(s.memory_usage), format::binary_size(s.memory_limit)),
                        "MemPerc": format!("{:.2}%", percent(s.memory_usage, s.memory_limit)),
                        "NetIO": format!("{} / {}", format::size(s.net_rx), format::size(s.net_tx)),
                        "BlockIO": format!("{} / {}", format::size(s.block_read), format::size(s.block_write)),
                        "PIDs": s.pids.to_string(),
                    })
                })
                .collect();
            if tty && !a.no_stream && a.format.is_none() {
                print!("\x1b[2J\x1b[H");
            }
            format::print_rows(
                a.format.as_deref(),
                &rows,
                &[
                    ("CONTAINER ID", "ID"),
                    ("NAME", "Name"),
                    ("CPU %", "CPUPerc"),
                    ("MEM USAGE / LIMIT", "MemUsage"),
                    ("MEM %", "MemPerc"),
                    ("NET I/O", "NetIO"),
                    ("BLOCK I/O", "BlockIO"),
                    ("PIDS", "PIDs"),
                ],
            )?;
            if a.no_stream {
                break;
            }
        }
    }
    Ok(())
}

fn percent(used: u64, limit: u64) -> f64 {
    if limit == 0 {
        0.0
    } else {
        used as f64 * 100.0 / limit as f64
    }
}

/// `berth events`.
#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Filter output based on conditions provided (type=, event=, container=).
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format: json, or the default one line per event.
    #[arg(long)]
    pub format: Option<String>,
    /// Show events since a timestamp (RFC 3339, Unix seconds) or a relative time (e.g. 42m).
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp or relative time.
    #[arg(long)]
    pub until: Option<String>,
}

/// Runs `berth events`.
pub async fn events(conn: &Conn, a: EventsArgs) -> Result<()> {
    let mut filters: HashMap<String, pb::StringList> = HashMap::new();
    for f in &a.filter {
        let (k, v) = f
            .split_once('=')
            .with_context(|| format!("the filter '{f}' is not KEY=VALUE (e.g. type=container)"))?;
        filters
            .entry(k.to_string())
            .or_default()
            .values
            .push(v.to_string());
    }
    let req = pb::EventsRequest {
        filters,
        since: a.since.as_deref().map(parse_time).transpose()?,
        until: a.until.as_deref().map(parse_time).transpose()?,
    };
    let template = match a.format.as_deref() {
        None | Some("json") => None,
        Some(f) => Some(crate::template::Template::parse(f)?),
    };
    let mut stream = conn.events(req).await?;
    while let Some(ev) = stream.next().await {
        let ev = ev?;
        let mut attrs: Vec<(String, String)> = ev.attributes.clone().into_iter().collect();
        attrs.sort();
        let (json, fields) = event_docs(&ev);
        if let Some(t) = &template {
            println!("{}", t.render(&fields)?);
        } else if a.format.as_deref() == Some("json") {
            println!("{json}");
        } else {
            let attrs: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!(
                "{} {} {} {} ({})",
                rfc3339(&ev.time),
                ev.r#type,
                ev.action,
                ev.id,
                attrs.join(", ")
            );
        }
        let _ = std::io::stdout().flush();
    }
    Ok(())
}

/// An event as Docker's `events --format json` writes it (its JSON names,
/// with the older `status`, `id` and `from` for container and image
/// events, as dockerd fills them), and as its templates see it (Go's
/// field names).
fn event_docs(ev: &pb::Event) -> (serde_json::Value, serde_json::Value) {
    let time = ev.time.as_ref().map_or(0, |t| t.seconds);
    let nanos = ev
        .time
        .as_ref()
        .map_or(0, |t| t.seconds as i128 * 1_000_000_000 + t.nanos as i128);
    let actor = serde_json::json!({"ID": ev.id, "Attributes": ev.attributes});
    let old = ["container", "image"].contains(&ev.r#type.as_str());
    let from = match ev.r#type.as_str() {
        "container" => ev.attributes.get("image").cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let mut json = serde_json::Map::new();
    if old {
        json.insert("status".into(), ev.action.clone().into());
        json.insert("id".into(), ev.id.clone().into());
        if !from.is_empty() {
            json.insert("from".into(), from.clone().into());
        }
    }
    json.insert("Type".into(), ev.r#type.clone().into());
    json.insert("Action".into(), ev.action.clone().into());
    json.insert("Actor".into(), actor.clone());
    json.insert("scope".into(), "local".into());
    json.insert("time".into(), time.into());
    json.insert("timeNano".into(), serde_json::json!(nanos));
    let (status, id) = if old {
        (ev.action.clone(), ev.id.clone())
    } else {
        Default::default()
    };
    let fields = serde_json::json!({
        "Status": status, "ID": id, "From": from, "Type": ev.r#type, "Action": ev.action,
        "Actor": actor, "Scope": "local", "Time": time, "TimeNano": nanos,
    });
    (json.into(), fields)
}

#[cfg(test)]
mod tests {
    use super::detail_attrs;
    use serde_json::json;

    #[test]
    fn details_name_the_labels_and_env_the_log_options_pick() {
        let doc = json!({
            "Config": {"Labels": {"k": "v w", "other": "x"}, "Env": ["X=1", "PATH=/bin", "k=from-env"]},
            "HostConfig": {"LogConfig": {"Type": "json-file", "Config": {"labels": "k,missing,other", "env": "X,PATH"}}},
        });
        assert_eq!(
            detail_attrs(&doc),
            "PATH=%2Fbin,X=1,k=v+w,other=x",
            "sorted, query-escaped"
        );
        let doc = json!({
            "Config": {"Labels": {"k": "label"}, "Env": ["k=env"]},
            "HostConfig": {"LogConfig": {"Config": {"labels": "k", "env": "k"}}},
        });
        assert_eq!(detail_attrs(&doc), "k=env", "env wins over a label");
        let doc =
            json!({"Config": {"Labels": {"k": "v"}}, "HostConfig": {"LogConfig": {"Config": {}}}});
        assert_eq!(detail_attrs(&doc), "");
    }
}
