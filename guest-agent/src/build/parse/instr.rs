//! One instruction's arguments into its [`Kind`].

use super::split::{self, Flag};
use crate::build::ast::{ArgDecl, Command, Copy, Health, Heredoc, Kind, MountKind, Run, RunMount};

/// What one logical line is.
pub(super) enum Parsed {
    /// `FROM [--platform=p] base [AS name]`.
    From {
        base: String,
        name: Option<String>,
        platform: Option<String>,
    },
    /// `ARG …` (global before the first FROM).
    Arg(Vec<ArgDecl>),
    /// Any other instruction.
    Other(Kind),
}

/// The instruction keywords Berth knows.
pub(super) const KEYWORDS: [&str; 18] = [
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
];

/// Parses `kw rest` (kw uppercased) with the heredocs read after it.
pub(super) fn instruction(
    kw: &str,
    rest: &str,
    heredocs: Vec<Heredoc>,
    escape: char,
) -> Result<Parsed, String> {
    let (flags, args) = split::flags(rest);
    let args = args.trim();
    let none = |flags: &[Flag]| no_flags(kw, flags);
    let one = |what: &str| {
        if args.is_empty() {
            Err(format!(
                "{kw} requires {what}, as in `{kw} {}`",
                example(kw)
            ))
        } else {
            Ok(args.to_string())
        }
    };
    Ok(Parsed::Other(match kw {
        "FROM" => return from(flags, args, escape),
        "RUN" => Kind::Run(run(flags, args, heredocs)?),
        "COPY" | "ADD" => {
            let c = copy(kw, flags, args, heredocs, escape)?;
            if kw == "COPY" {
                Kind::Copy(c)
            } else {
                Kind::Add(c)
            }
        }
        "ARG" => {
            none(&flags)?;
            return arg(args, escape).map(Parsed::Arg);
        }
        "ENV" => {
            none(&flags)?;
            Kind::Env(name_values(kw, args, escape)?)
        }
        "LABEL" => {
            none(&flags)?;
            Kind::Label(name_values(kw, args, escape)?)
        }
        "WORKDIR" => none(&flags)
            .and_then(|_| one("a path"))
            .map(Kind::Workdir)?,
        "USER" => none(&flags).and_then(|_| one("a user")).map(Kind::User)?,
        "MAINTAINER" => none(&flags)
            .and_then(|_| one("a name"))
            .map(Kind::Maintainer)?,
        "STOPSIGNAL" => none(&flags)
            .and_then(|_| one("a signal"))
            .map(Kind::StopSignal)?,
        "CMD" | "ENTRYPOINT" => {
            none(&flags)?;
            let c = command(kw, args)?;
            if kw == "CMD" {
                Kind::Cmd(c)
            } else {
                Kind::Entrypoint(c)
            }
        }
        "EXPOSE" | "VOLUME" => {
            none(&flags)?;
            let list = match split::json_array(args) {
                Some(list) if kw == "VOLUME" => list,
                _ => split::raw_words(args, escape),
            };
            if list.is_empty() || list.iter().any(|v| v.trim().is_empty()) {
                return Err(format!(
                    "{kw} requires at least one non-empty argument, as in `{kw} {}`",
                    example(kw)
                ));
            }
            if kw == "EXPOSE" {
                Kind::Expose(list)
            } else {
                Kind::Volume(list)
            }
        }
        "SHELL" => {
            none(&flags)?;
            match split::json_array(args) {
                Some(list) if !list.is_empty() => Kind::Shell(list),
                Some(_) => return Err("SHELL requires at least one argument, as in `SHELL [\"/bin/sh\", \"-c\"]`".into()),
                None => return Err("SHELL requires the arguments in JSON form, as in `SHELL [\"/bin/bash\", \"-c\"]`".into()),
            }
        }
        "HEALTHCHECK" => Kind::Healthcheck(healthcheck(flags, args)?),
        "ONBUILD" => {
            none(&flags)?;
            Kind::Onbuild(onbuild(rest.trim(), heredocs, escape)?)
        }
        _ => return Err(unknown(kw)),
    }))
}

fn example(kw: &str) -> &'static str {
    match kw {
        "WORKDIR" => "/app",
        "USER" => "app:app",
        "MAINTAINER" => "Jane <jane@example.com>",
        "STOPSIGNAL" => "SIGTERM",
        "EXPOSE" => "80/tcp",
        "VOLUME" => "/data",
        "ENV" | "LABEL" => "key=value",
        "ARG" => "VERSION=1.0",
        "CMD" | "ENTRYPOINT" | "RUN" => "[\"executable\", \"arg\"]",
        _ => "…",
    }
}

/// The error for an unknown keyword, with a suggestion for near misses.
pub(super) fn unknown(kw: &str) -> String {
    let near = KEYWORDS
        .iter()
        .map(|k| (distance(kw, k), *k))
        .min()
        .filter(|(d, _)| *d <= 2);
    match near {
        Some((_, k)) => format!("unknown instruction: {kw} (did you mean {k}?)"),
        None => format!("unknown instruction: {kw}"),
    }
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn no_flags(kw: &str, flags: &[Flag]) -> Result<(), String> {
    match flags.first() {
        Some((name, _)) => Err(format!("unknown flag: --{name} ({kw} takes no flags)")),
        None => Ok(()),
    }
}

fn value(kw: &str, name: &str, v: Option<String>) -> Result<String, String> {
    v.ok_or_else(|| format!("{kw} --{name} needs a value, as in --{name}=…"))
}

fn from(flags: Vec<Flag>, args: &str, escape: char) -> Result<Parsed, String> {
    let mut platform = None;
    for (name, v) in flags {
        match name.as_str() {
            "platform" => platform = Some(value("FROM", &name, v)?),
            _ => {
                return Err(format!(
                    "unknown flag: --{name} (FROM accepts only --platform)"
                ))
            }
        }
    }
    let words = split::raw_words(args, escape);
    let name = match words.len() {
        0 => {
            return Err(
                "FROM requires an image, as in `FROM alpine:3.20` (or `FROM scratch`)".into(),
            )
        }
        1 => None,
        3 if words[1].eq_ignore_ascii_case("as") => {
            let name = words[2].to_lowercase();
            let mut chars = name.chars();
            let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !ok {
                return Err(format!("invalid name for build stage: \"{}\": a name starts with a letter and holds only letters, digits, '-', '_' and '.'", words[2]));
            }
            Some(name)
        }
        _ => {
            return Err(
                "FROM takes an image and an optional `AS name`, as in `FROM golang:1.22 AS build`"
                    .into(),
            )
        }
    };
    Ok(Parsed::From {
        base: words[0].clone(),
        name,
        platform,
    })
}

/// `RUN`. A heredoc RUN whose command is only `<<EOF` runs the body as
/// the shell script (`Command::Shell(body)`), or, when the body starts
/// with `#!`, keeps it in `heredocs` with `Command::Shell("")` so the
/// executor writes and runs the file. When the command has other words
/// (`RUN python3 <<EOF`, `RUN cat <<A <<B`), `Command::Shell` holds the
/// command line as written (with its `<<EOF` words) and `heredocs` the
/// bodies; like BuildKit, the executor runs the command line followed,
/// for each heredoc, by `"\n" + body + name` so the shell feeds them.
fn run(flags: Vec<Flag>, args: &str, mut heredocs: Vec<Heredoc>) -> Result<Run, String> {
    let mut run = Run {
        command: Command::Shell(String::new()),
        mounts: vec![],
        network: None,
        heredocs: vec![],
    };
    for (name, v) in flags {
        match name.as_str() {
            "mount" => run.mounts.push(mount(&value("RUN", &name, v)?)?),
            "network" => {
                let v = value("RUN", &name, v)?;
                if !["default", "none", "host"].contains(&v.as_str()) {
                    return Err(format!(
                        "RUN --network={v} is not supported: use default, none or host"
                    ));
                }
                run.network = Some(v);
            }
            "security" | "device" => return Err(format!("RUN --{name} is not supported by Berth")),
            _ => {
                return Err(format!(
                    "unknown flag: --{name} (RUN accepts --mount and --network)"
                ))
            }
        }
    }
    if args.is_empty() {
        return Err("RUN requires a command, as in `RUN make` or `RUN [\"make\"]`".into());
    }
    let single = heredocs.len() == 1
        && split::heredoc_word(args).is_some_and(|(n, ..)| n == heredocs[0].name);
    run.command = if let Some(list) = split::json_array(args) {
        Command::Exec(list)
    } else if single && !heredocs[0].body.starts_with("#!") {
        Command::Shell(heredocs.remove(0).body)
    } else if single {
        Command::Shell(String::new())
    } else {
        Command::Shell(args.to_string())
    };
    run.heredocs = heredocs;
    Ok(run)
}

/// Parses one `--mount=` value (BuildKit's CSV of `key=value` fields).
fn mount(spec: &str) -> Result<RunMount, String> {
    let bad = |why: String| Err(format!("bad --mount={spec}: {why}"));
    let mut m = RunMount::default();
    for field in spec.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let (key, v) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), Some(v.trim_matches('"').to_string())),
            None => (field.to_lowercase(), None),
        };
        let flag = |v: &Option<String>| match v.as_deref() {
            None | Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(o) => Err(format!(
                "bad --mount={spec}: {key}={o} is not true or false"
            )),
        };
        let num = |radix: u32| match v.as_deref().map(|s| u32::from_str_radix(s, radix)) {
            Some(Ok(n)) => Ok(Some(n)),
            _ => Err(format!("bad --mount={spec}: {key} needs a number")),
        };
        match key.as_str() {
            "ro" | "readonly" => (m.read_only, m.read_write) = (flag(&v)?, !flag(&v)?),
            "rw" | "readwrite" => (m.read_write, m.read_only) = (flag(&v)?, !flag(&v)?),
            "required" => m.required = flag(&v)?,
            _ if v.is_none() => return bad(format!("'{field}' must be a key=value pair")),
            "type" => {
                m.kind = match v.as_deref().unwrap_or_default().to_lowercase().as_str() {
                    "bind" => MountKind::Bind,
                    "cache" => MountKind::Cache,
                    "secret" => MountKind::Secret,
                    "tmpfs" => MountKind::Tmpfs,
                    "ssh" => return bad("type=ssh is not supported by Berth".into()),
                    o => {
                        return bad(format!(
                            "unknown mount type \"{o}\" (use bind, cache, secret or tmpfs)"
                        ))
                    }
                }
            }
            "target" | "dst" | "destination" => m.target = v.unwrap_or_default(),
            "source" | "src" => m.source = v,
            "from" => m.from = v,
            "id" => m.id = v,
            "sharing" => {
                let s = v.unwrap_or_default().to_lowercase();
                if !["shared", "private", "locked"].contains(&s.as_str()) {
                    return bad(format!("sharing={s} is not shared, private or locked"));
                }
                m.sharing = Some(s);
            }
            "mode" => m.mode = num(8)?,
            "uid" => m.uid = num(10)?,
            "gid" => m.gid = num(10)?,
            "size" | "env" => return bad(format!("{key}= is not supported by Berth")),
            _ => return bad(format!("unknown option '{key}'")),
        }
    }
    if m.required && m.kind != MountKind::Secret {
        return bad("'required' is only for type=secret".into());
    }
    if m.sharing.is_some() && m.kind != MountKind::Cache {
        return bad("'sharing' is only for type=cache".into());
    }
    if matches!(m.kind, MountKind::Bind | MountKind::Tmpfs)
        && (m.mode.or(m.uid).or(m.gid)).is_some()
    {
        return bad("mode, uid and gid are only for cache and secret mounts".into());
    }
    if m.kind == MountKind::Secret {
        if m.from.is_some() {
            return bad("a secret mount takes no from=".into());
        }
        if m.id.is_none() && m.source.is_none() && m.target.is_empty() {
            return bad("a secret mount needs id= or target=".into());
        }
    } else if m.target.is_empty() {
        return bad("target= is required, as in type=cache,target=/root/.cache".into());
    }
    Ok(m)
}

fn copy(
    kw: &str,
    flags: Vec<Flag>,
    args: &str,
    heredocs: Vec<Heredoc>,
    escape: char,
) -> Result<Copy, String> {
    let mut c = Copy::default();
    for (name, v) in flags {
        match name.as_str() {
            "from" => c.from = Some(value(kw, &name, v)?),
            "chown" => c.chown = Some(value(kw, &name, v)?),
            "chmod" => c.chmod = Some(value(kw, &name, v)?),
            "link" => {
                c.link = match v.as_deref() {
                    None | Some("true") => true,
                    Some("false") => false,
                    Some(o) => return Err(format!("{kw} --link={o}: use --link or --link=false")),
                }
            }
            "parents" | "exclude" | "keep-git-dir" | "checksum" | "unpack" => {
                return Err(format!("{kw} --{name} is not supported by Berth"))
            }
            _ => {
                return Err(format!(
                    "unknown flag: --{name} ({kw} accepts --from, --chown, --chmod and --link)"
                ))
            }
        }
    }
    let mut words = match split::json_array(args) {
        Some(list) => list,
        None => split::raw_words(args, escape),
    };
    if words.len() < 2 {
        let n = if words.is_empty() {
            "none was"
        } else {
            "only one was"
        };
        return Err(format!("{kw} requires at least two arguments, but {n} provided. Destination could not be determined."));
    }
    c.dest = words.pop().unwrap_or_default();
    let mut docs = heredocs.into_iter();
    for w in words {
        match split::heredoc_word(&w) {
            Some(_) => c.heredocs.extend(docs.next()),
            None => c.sources.push(w),
        }
    }
    Ok(c)
}

fn arg(args: &str, escape: char) -> Result<Vec<ArgDecl>, String> {
    let words = split::raw_words(args, escape);
    if words.is_empty() {
        return Err("ARG requires a name, as in `ARG VERSION` or `ARG VERSION=1.0`".into());
    }
    words
        .into_iter()
        .map(|w| {
            let (name, default) = match w.split_once('=') {
                Some((n, d)) => (n.to_string(), Some(d.to_string())),
                None => (w, None),
            };
            if name.is_empty() {
                return Err("ARG names can not be blank: write `ARG name=value`".to_string());
            }
            Ok(ArgDecl { name, default })
        })
        .collect()
}

/// `ENV`/`LABEL`: `k=v …` pairs, or the legacy `k v with spaces`.
fn name_values(kw: &str, args: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let words = split::raw_words(args, escape);
    let Some(first) = words.first() else {
        return Err(format!(
            "{kw} requires at least one key=value pair, as in `{kw} key=value`"
        ));
    };
    if !first.contains('=') {
        let value = args[args.find(char::is_whitespace).unwrap_or(args.len())..].trim();
        if value.is_empty() {
            return Err(format!(
                "{kw} {first} has no value: write `{kw} {first}=value`"
            ));
        }
        return Ok(vec![(first.clone(), value.to_string())]);
    }
    words
        .iter()
        .map(|w| match w.split_once('=') {
            Some(("", _)) => Err(format!("{kw} names can not be blank (in \"{w}\")")),
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(format!(
                "{kw} syntax error: can't find = in \"{w}\"; write it as name=value"
            )),
        })
        .collect()
}

fn command(kw: &str, args: &str) -> Result<Command, String> {
    match split::json_array(args) {
        Some(list) => Ok(Command::Exec(list)),
        None if args.is_empty() => Err(format!(
            "{kw} requires a command, as in `{kw} [\"executable\", \"arg\"]`"
        )),
        None => Ok(Command::Shell(args.to_string())),
    }
}

fn healthcheck(flags: Vec<Flag>, args: &str) -> Result<Option<Health>, String> {
    let (typ, rest) = match args.split_once(char::is_whitespace) {
        Some((t, r)) => (t, r.trim()),
        None => (args, ""),
    };
    if typ.eq_ignore_ascii_case("NONE") {
        if !rest.is_empty() || !flags.is_empty() {
            return Err("HEALTHCHECK NONE takes no options or arguments".into());
        }
        return Ok(None);
    }
    let mut h = Health::default();
    for (name, v) in flags {
        let v = value("HEALTHCHECK", &name, v)?;
        let slot = match name.as_str() {
            "interval" => &mut h.interval,
            "timeout" => &mut h.timeout,
            "start-period" => &mut h.start_period,
            "start-interval" => &mut h.start_interval,
            "retries" => {
                h.retries = match v.parse::<i64>() {
                    Ok(n) if n >= 0 => n,
                    _ => return Err(format!("HEALTHCHECK --retries={v} must be a number of 0 or more")),
                };
                continue;
            }
            _ => return Err(format!("unknown flag: --{name} (HEALTHCHECK accepts --interval, --timeout, --start-period, --start-interval and --retries)")),
        };
        let d = duration(&v).map_err(|e| format!("HEALTHCHECK --{name}={v}: {e}"))?;
        if d != 0 && d < 1_000_000 {
            return Err(format!("HEALTHCHECK --{name}={v} cannot be less than 1ms"));
        }
        *slot = d;
    }
    if !typ.eq_ignore_ascii_case("CMD") {
        return Err(format!("HEALTHCHECK takes NONE or CMD, not \"{typ}\": write `HEALTHCHECK CMD curl -f http://localhost/`"));
    }
    h.test = match command("HEALTHCHECK CMD", rest)? {
        Command::Exec(list) => std::iter::once("CMD".to_string()).chain(list).collect(),
        Command::Shell(s) => vec!["CMD-SHELL".into(), s],
    };
    Ok(Some(h))
}

/// A Go duration (`1m30s`, `500ms`, `1.5h`) in nanoseconds; no sign.
pub(super) fn duration(s: &str) -> Result<i64, String> {
    let bad = || {
        Err(format!(
            "\"{s}\" is not a duration such as 30s, 1m30s or 500ms"
        ))
    };
    if s.is_empty() || s == "0" {
        return Ok(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let Ok(num) = rest[..n].parse::<f64>() else {
            return bad();
        };
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return bad(),
        };
        rest = &rest[u..];
        total += num * unit;
    }
    if total > i64::MAX as f64 {
        return bad();
    }
    Ok(total.round() as i64)
}

fn onbuild(trigger: &str, heredocs: Vec<Heredoc>, escape: char) -> Result<String, String> {
    let (kw, rest) = match trigger.split_once(char::is_whitespace) {
        Some((k, r)) => (k.to_uppercase(), r.trim()),
        None => (trigger.to_uppercase(), ""),
    };
    match kw.as_str() {
        "" => return Err("ONBUILD requires an instruction, as in `ONBUILD RUN make`".into()),
        "ONBUILD" => return Err("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()),
        "FROM" | "MAINTAINER" => return Err(format!("{kw} isn't allowed as an ONBUILD trigger")),
        _ => {}
    }
    let mut text = if rest.is_empty() {
        kw.clone()
    } else {
        format!("{kw} {rest}")
    };
    for h in &heredocs {
        text.push_str(&format!("\n{}{}", h.body, h.name));
    }
    instruction(&kw, rest, heredocs, escape).map_err(|e| format!("ONBUILD {kw}: {e}"))?;
    Ok(text)
}
