//! Stages: which ones the target needs, building them (independent ones
//! at the same time), and each stage's instructions in order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{json, Value};

use super::ast::{Dockerfile, Instruction, Kind};
use super::context::Workspace;
use super::{config, BuildEvent, BuildOptions, Builder, EventTx};
use crate::digest::Hasher;
use crate::error::{Error, Result};
use crate::store::ImageRecord;

/// Build arguments Docker defines without an ARG line.
const PREDEFINED: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// What the Dockerfile asks for, resolved before anything runs.
pub(super) struct Plan {
    /// The Dockerfile's name, for messages.
    pub name: String,
    /// Global ARG values (for FROM lines and `--from`).
    pub globals: BTreeMap<String, String>,
    /// Each stage's base with variables expanded.
    pub bases: Vec<String>,
    /// Each stage's dependencies (stage indexes).
    pub deps: Vec<Vec<usize>>,
    /// The stage built last.
    pub target: usize,
    /// The stages the target needs, the target included.
    pub needed: HashSet<usize>,
    /// Stage names (lowercased) and their indexes.
    pub names: HashMap<String, usize>,
}

impl Plan {
    /// Resolves stage names, bases and the stages `--target` needs.
    pub fn new(file: &Dockerfile, opts: &BuildOptions, name: &str) -> Result<Plan> {
        if file.stages.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{name} has no FROM line: a Dockerfile starts with FROM IMAGE"
            )));
        }
        let escape = file.escape;
        let mut globals = platform_args();
        for a in &file.global_args {
            let v = match opts.build_args.get(&a.name) {
                Some(v) => Some(v.clone()),
                None => match &a.default {
                    Some(d) => Some(
                        super::words::expand(d, &|n| globals.get(n).cloned(), escape)
                            .map_err(Error::InvalidArgument)?,
                    ),
                    None => None,
                },
            };
            if let Some(v) = v {
                globals.insert(a.name.clone(), v);
            }
        }
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut bases = Vec::new();
        let mut deps = Vec::new();
        for (i, s) in file.stages.iter().enumerate() {
            let base = super::words::expand(&s.base, &|n| globals.get(n).cloned(), escape)
                .map_err(|e| Error::InvalidArgument(format!("{name}:{}: {e}", s.line)))?;
            if base.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "{name}:{}: the base image name is empty after expanding {:?}: pass it with --build-arg",
                    s.line, s.base
                )));
            }
            let mut d = Vec::new();
            if let Some(&j) = names.get(&base.to_lowercase()) {
                d.push(j);
            }
            for ins in &s.instructions {
                let froms: Vec<&String> = match &ins.kind {
                    Kind::Copy(c) | Kind::Add(c) => c.from.iter().collect(),
                    Kind::Run(r) => r.mounts.iter().filter_map(|m| m.from.as_ref()).collect(),
                    _ => Vec::new(),
                };
                for f in froms {
                    let f = super::words::expand(f, &|n| globals.get(n).cloned(), escape)
                        .map_err(Error::InvalidArgument)?;
                    if let Some(j) = stage_ref(&names, i, &f) {
                        d.push(j);
                    }
                }
            }
            if let Some(n) = &s.name {
                names.insert(n.clone(), i);
            }
            bases.push(base);
            deps.push(d);
        }
        let target = if opts.target.is_empty() {
            file.stages.len() - 1
        } else {
            *names.get(&opts.target.to_lowercase()).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "target stage \"{}\" could not be found in {name}",
                    opts.target
                ))
            })?
        };
        let mut needed = HashSet::new();
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            if needed.insert(i) {
                todo.extend(deps[i].iter().copied());
            }
        }
        Ok(Plan {
            name: name.to_string(),
            globals,
            bases,
            deps,
            target,
            needed,
            names,
        })
    }
}

/// BuildKit's automatic platform ARGs (`BUILDPLATFORM`, `BUILDOS`,
/// `BUILDARCH`, `BUILDVARIANT` and the same for `TARGET`), both the
/// engine's own platform: defined in the global scope (FROM lines) and, as
/// in BuildKit, inside a stage once it declares them (`ARG TARGETARCH`).
fn platform_args() -> BTreeMap<String, String> {
    let p = crate::image::manifest::Platform::host();
    let variant = p.variant.clone().unwrap_or_default();
    let platform = match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    };
    let mut out = BTreeMap::new();
    for side in ["BUILD", "TARGET"] {
        out.insert(format!("{side}PLATFORM"), platform.clone());
        out.insert(format!("{side}OS"), p.os.clone());
        out.insert(format!("{side}ARCH"), p.architecture.clone());
        out.insert(format!("{side}VARIANT"), variant.clone());
    }
    out
}

/// A stage name or index that `--from` means, if it is one (else an
/// image).
pub(super) fn stage_ref(
    names: &HashMap<String, usize>,
    current: usize,
    from: &str,
) -> Option<usize> {
    if let Some(&j) = names.get(&from.to_lowercase()) {
        return Some(j);
    }
    from.parse::<usize>().ok().filter(|&j| j < current)
}

/// A stage's result: where its instructions left the image.
#[derive(Clone)]
pub(super) struct State {
    /// The image holding the layers so far (None: scratch, no layer yet).
    pub image: Option<ImageRecord>,
    /// The image config so far.
    pub config: Value,
    /// The cache key of everything so far.
    pub key: String,
    /// Config changed since `image` was stored.
    pub dirty: bool,
}

/// One build in progress.
pub(super) struct Run {
    pub builder: Arc<Builder>,
    pub opts: Arc<BuildOptions>,
    pub work: Arc<Workspace>,
    pub file: Arc<Dockerfile>,
    pub plan: Arc<Plan>,
    pub tx: EventTx,
    /// The stages built so far.
    pub done: Mutex<HashMap<usize, State>>,
    /// The exit code of the RUN that failed last.
    pub exit: std::sync::atomic::AtomicI32,
}

/// Hashes parts into a cache key.
pub(super) fn key_of(parts: &[&str]) -> String {
    let mut h = Hasher::default();
    for p in parts {
        h.update(p.as_bytes());
        h.update(b"\0");
    }
    h.finish()
}

impl Run {
    /// Builds the stages the target needs; returns the target's image id.
    pub async fn build(&self) -> Result<String> {
        let vertices = Arc::new(AtomicU32::new(0));
        let done = &self.done;
        let mut left: Vec<usize> = {
            let mut v: Vec<usize> = self.plan.needed.iter().copied().collect();
            v.sort();
            v
        };
        while !left.is_empty() {
            let finished: HashSet<usize> = done.lock().unwrap().keys().copied().collect();
            let (ready, wait): (Vec<usize>, Vec<usize>) = left
                .iter()
                .partition(|&&i| self.plan.deps[i].iter().all(|d| finished.contains(d)));
            if ready.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "{}: the stages refer to each other in a circle",
                    self.plan.name
                )));
            }
            let results = futures::future::try_join_all(ready.iter().map(|&i| {
                let vertices = vertices.clone();
                async move {
                    let state = self.stage(i, done, &vertices).await?;
                    Ok::<_, Error>((i, state))
                }
            }))
            .await?;
            for (i, s) in results {
                done.lock().unwrap().insert(i, s);
            }
            left = wait;
        }
        let state = done
            .lock()
            .unwrap()
            .remove(&self.plan.target)
            .expect("built");
        match state.image {
            Some(image) => Ok(image.id),
            None => Err(Error::InvalidArgument(format!(
                "{}: the target stage has no files (FROM scratch with nothing added); add a COPY or RUN",
                self.plan.name
            ))),
        }
    }

    /// Notes a failed RUN's exit code for its Failed event.
    pub fn set_exit(&self, code: i32) {
        self.exit.store(code, Ordering::Relaxed);
    }

    /// Sends an event; an error when the client has gone.
    pub fn send(&self, e: BuildEvent) -> Result<()> {
        self.tx
            .send(e)
            .map_err(|_| Error::Cancelled("the build's client went away".into()))
    }

    async fn stage(
        &self,
        i: usize,
        done: &Mutex<HashMap<usize, State>>,
        vertices: &AtomicU32,
    ) -> Result<State> {
        let stage = &self.file.stages[i];
        let base = &self.plan.bases[i];
        let label = stage
            .name
            .clone()
            .map(|n| format!("{n} "))
            .unwrap_or_default();
        let mut steps = 1 + stage
            .instructions
            .iter()
            .filter(|i| matches!(i.kind, Kind::Run(_) | Kind::Copy(_) | Kind::Add(_)))
            .count();
        let vertex = || vertices.fetch_add(1, Ordering::Relaxed) + 1;
        let v = vertex();
        let started = Instant::now();
        self.send(BuildEvent::Step {
            vertex: v,
            name: format!("[{label}1/{steps}] FROM {base}"),
        })?;
        let from_stage = self.plan.deps[i]
            .first()
            .filter(|&&j| self.file.stages[j].name.as_deref() == Some(&base.to_lowercase()))
            .copied();
        let mut state = match from_stage {
            Some(j) => done.lock().unwrap().get(&j).cloned().expect("built before"),
            None => self.base_state(base).await.inspect_err(|e| {
                let _ = self.send(BuildEvent::Failed {
                    vertex: v,
                    message: e.to_string(),
                    exit_code: 0,
                });
            })?,
        };
        self.send(BuildEvent::Done {
            vertex: v,
            cached: false,
            seconds: started.elapsed().as_secs_f64(),
        })?;
        let mut args: BTreeMap<String, String> = BTreeMap::new();
        for p in PREDEFINED {
            if let Some(v) = self.opts.build_args.get(p) {
                args.insert(p.to_string(), v.clone());
            }
        }
        // The base image's ONBUILD triggers run first, and are not
        // inherited further.
        let mut instructions: Vec<Instruction> = Vec::new();
        if let Some(triggers) = state.config["config"]["OnBuild"].as_array().cloned() {
            for t in triggers.iter().filter_map(|t| t.as_str()) {
                let parsed = super::parse::parse(&format!("FROM scratch\n{t}")).map_err(|e| {
                    Error::InvalidArgument(format!(
                        "the base image's ONBUILD {t:?} is invalid: {}",
                        e.message
                    ))
                })?;
                for mut ins in parsed.stages.into_iter().flat_map(|s| s.instructions) {
                    ins.line = stage.line;
                    if matches!(ins.kind, Kind::Run(_) | Kind::Copy(_) | Kind::Add(_)) {
                        steps += 1;
                    }
                    instructions.push(ins);
                }
            }
            state.config["config"]["OnBuild"] = Value::Null;
        }
        instructions.extend(stage.instructions.iter().cloned());
        let mut n = 1;
        for ins in &instructions {
            let fail = |vertex: u32, e: &Error| {
                let _ = self.send(BuildEvent::Failed {
                    vertex,
                    message: e.to_string(),
                    exit_code: self.exit.swap(0, Ordering::Relaxed),
                });
            };
            match &ins.kind {
                Kind::Arg(decls) => {
                    for a in decls {
                        let value = match self.opts.build_args.get(&a.name) {
                            Some(v) => Some(v.clone()),
                            None => match &a.default {
                                Some(d) => Some(
                                    config::expand(&state.config, &args, self.file.escape, d)
                                        .map_err(|e| self.at(ins, e))?,
                                ),
                                None => self.plan.globals.get(&a.name).cloned(),
                            },
                        };
                        match value {
                            Some(v) => {
                                state.key = key_of(&[&state.key, "ARG", &a.name, &v]);
                                args.insert(a.name.clone(), v);
                            }
                            None => {
                                args.remove(&a.name);
                            }
                        }
                    }
                }
                Kind::Run(_) | Kind::Copy(_) | Kind::Add(_) => {
                    n += 1;
                    let v = vertex();
                    let started = Instant::now();
                    self.send(BuildEvent::Step {
                        vertex: v,
                        name: format!("[{label}{n}/{steps}] {}", shown(ins)),
                    })?;
                    let r = match &ins.kind {
                        Kind::Run(r) => self.run(&mut state, &args, ins, r, v, started).await,
                        Kind::Copy(c) => self.copy(&mut state, &args, ins, c, false, done).await,
                        Kind::Add(c) => self.copy(&mut state, &args, ins, c, true, done).await,
                        _ => unreachable!("matched above"),
                    };
                    match r {
                        Ok(cached) => self.send(BuildEvent::Done {
                            vertex: v,
                            cached,
                            seconds: started.elapsed().as_secs_f64(),
                        })?,
                        Err(e) => {
                            let e = self.at(ins, e);
                            fail(v, &e);
                            return Err(e);
                        }
                    }
                }
                kind => {
                    config::apply(&mut state.config, &args, self.file.escape, kind)
                        .map_err(|e| self.at(ins, e))?;
                    // WORKDIR's history shows the folder it set, as Docker's.
                    let shown = match kind {
                        Kind::Workdir(_) => format!(
                            "WORKDIR {}",
                            state.config["config"]["WorkingDir"].as_str().unwrap_or("/")
                        ),
                        _ => ins.text.clone(),
                    };
                    config::add_history(&mut state.config, &shown, true);
                    state.key = key_of(&[&state.key, &ins.text, &args_key(&args)]);
                    state.dirty = true;
                }
            }
        }
        if i == self.plan.target && !self.opts.labels.is_empty() {
            for (k, v) in &self.opts.labels {
                state.config["config"]["Labels"][k] = json!(v);
                state.key = key_of(&[&state.key, "LABEL", k, v]);
            }
            state.dirty = true;
        }
        if state.dirty {
            self.finish(&mut state).await?;
        }
        Ok(state)
    }

    /// An error with the instruction's place in the Dockerfile.
    fn at(&self, ins: &Instruction, e: Error) -> Error {
        let msg = format!("{}:{}: {e}", self.plan.name, ins.line);
        match e {
            Error::FailedPrecondition(_) => Error::FailedPrecondition(msg),
            Error::NotFound(w, _) => Error::NotFound(w, msg),
            Error::Cancelled(_) => e,
            _ => Error::InvalidArgument(msg),
        }
    }

    /// The state a FROM line starts from: scratch or an image (pulled
    /// when missing, or always with `--pull`).
    async fn base_state(&self, base: &str) -> Result<State> {
        if base == "scratch" {
            let p = crate::image::manifest::Platform::host();
            return Ok(State {
                image: None,
                config: json!({
                    "architecture": p.architecture,
                    "os": p.os,
                    "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
                    "rootfs": {"type": "layers", "diff_ids": []},
                    "history": [],
                }),
                key: key_of(&["scratch"]),
                dirty: false,
            });
        }
        let images = &self.builder.images;
        let entry = self.image_entry(base, self.opts.pull).await?;
        let config: Value = serde_json::from_slice(&images.content.read(&entry.record.id)?)
            .map_err(|e| Error::Internal(format!("the image's config is unreadable: {e}")))?;
        Ok(State {
            key: key_of(&["image", &entry.record.id]),
            image: Some(entry.record),
            config,
            dirty: false,
        })
    }

    /// The stored image `reference` names, pulled when missing (or
    /// always, with `pull`).
    pub async fn image_entry(
        &self,
        reference: &str,
        pull: bool,
    ) -> Result<crate::image::manage::ImageEntry> {
        let images = &self.builder.images;
        if !pull {
            if let Ok(e) = images.find(reference) {
                return Ok(e);
            }
        }
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let creds = crate::image::registry::Credentials::default();
        images.pull(reference, None, &creds, &tx).await?;
        images.find(reference)
    }

    /// Stores the config changes made since the last layer as an image of
    /// their own (cached like any step).
    async fn finish(&self, state: &mut State) -> Result<()> {
        let key = key_of(&[&state.key, "image"]);
        if !self.opts.no_cache {
            if let Some(r) = self.builder.images.cached_step(&key)? {
                state.image = Some(r);
                state.dirty = false;
                return Ok(());
            }
        }
        let Some(base) = &state.image else {
            return Ok(());
        };
        let id = self
            .builder
            .images
            .store_composed(Some(base), None, state.config.clone(), Value::Null, None)
            .await?;
        self.builder.images.meta.set_cached(&key, &id)?;
        state.image = self.builder.images.meta.image(&id)?;
        state.dirty = false;
        Ok(())
    }

    /// Records a step's new image (made from `state.config`) under `key`.
    pub async fn commit(
        &self,
        state: &mut State,
        key: String,
        layer: crate::image::compose::NewLayer,
        created_by: &str,
    ) -> Result<()> {
        let mut cfg = state.config.clone();
        cfg["history"] = cfg["history"]
            .as_array()
            .cloned()
            .map(Value::from)
            .unwrap_or(json!([]));
        let history = json!({
            "created": chrono::Utc::now().to_rfc3339(),
            "created_by": created_by,
            "comment": "buildkit.dockerfile.v0",
        });
        let id = self
            .builder
            .images
            .store_composed(state.image.as_ref(), Some(layer), cfg, history, None)
            .await?;
        self.builder.images.meta.set_cached(&key, &id)?;
        self.adopt(state, key, &id)
    }

    /// Moves the state to the stored image `id`.
    pub fn adopt(&self, state: &mut State, key: String, id: &str) -> Result<()> {
        let images = &self.builder.images;
        let record = images
            .meta
            .image(id)?
            .ok_or_else(|| Error::Internal(format!("the step's image {id} vanished")))?;
        state.config = serde_json::from_slice(&images.content.read(id)?)
            .map_err(|e| Error::Internal(format!("a cached config is unreadable: {e}")))?;
        state.image = Some(record);
        state.key = key;
        state.dirty = false;
        Ok(())
    }

    /// The cached image for `key`, unless `--no-cache`.
    pub fn lookup(&self, key: &str) -> Result<Option<ImageRecord>> {
        if self.opts.no_cache {
            return Ok(None);
        }
        self.builder.images.cached_step(key)
    }
}

/// The ARGs in scope as one string, for cache keys.
pub(super) fn args_key(args: &BTreeMap<String, String>) -> String {
    args.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

/// An instruction as progress shows it: its first line.
fn shown(ins: &Instruction) -> String {
    ins.text.lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
