//! The Dockerfile as the parser gives it to the executor.
//!
//! Arguments that Docker expands with build variables (FROM, COPY, ADD,
//! ENV, LABEL, WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL, ARG defaults)
//! are kept *raw*, with their quotes and `$` references as written:
//! [`super::words`] removes the quotes and substitutes variables in one
//! pass at build time, when the values in scope are known. RUN, CMD and
//! ENTRYPOINT are never expanded by the builder (the shell does it).

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dockerfile {
    /// ARGs declared before the first FROM (usable in FROM lines).
    pub global_args: Vec<ArgDecl>,
    /// The stages, in order.
    pub stages: Vec<Stage>,
    /// The escape character (`\` unless `# escape=` says otherwise).
    pub escape: char,
}

/// One `FROM` and the instructions after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// `AS name`, lowercased as Docker does.
    pub name: Option<String>,
    /// The base image as written (raw: may hold `$VAR`), or `scratch`.
    pub base: String,
    /// `--platform=…` as written (raw).
    pub platform: Option<String>,
    /// The FROM line's number (1-based).
    pub line: usize,
    /// The instructions after FROM, in order.
    pub instructions: Vec<Instruction>,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    /// Its first line's number (1-based).
    pub line: usize,
    /// The instruction as written, continuation lines joined with a space
    /// and the keyword uppercased ("RUN apt-get update && make"), for
    /// progress, history and cache keys. Heredoc bodies are appended
    /// after a newline, as written.
    pub text: String,
    /// What it does.
    pub kind: Kind,
}

/// An instruction's meaning.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `RUN [--mount=…]… [--network=…] command`.
    Run(Run),
    /// `COPY [--from=…] [--chown=…] [--chmod=…] [--link] src… dest`.
    Copy(Copy),
    /// `ADD` (same flags as COPY; sources may be URLs or local tars).
    Add(Copy),
    /// `ENV k=v …` or the legacy `ENV k v`: raw values.
    Env(Vec<(String, String)>),
    /// `ARG name[=default] …` inside a stage.
    Arg(Vec<ArgDecl>),
    /// `WORKDIR path` (raw).
    Workdir(String),
    /// `USER user[:group]` (raw).
    User(String),
    /// `CMD`.
    Cmd(Command),
    /// `ENTRYPOINT`.
    Entrypoint(Command),
    /// `EXPOSE port[/proto] …` (raw words).
    Expose(Vec<String>),
    /// `VOLUME ["/a", "/b"]` or `VOLUME /a /b` (raw words).
    Volume(Vec<String>),
    /// `LABEL k=v …` (raw keys and values).
    Label(Vec<(String, String)>),
    /// `MAINTAINER name` (deprecated; sets the author).
    Maintainer(String),
    /// `STOPSIGNAL sig` (raw).
    StopSignal(String),
    /// `HEALTHCHECK …`; `None` is `HEALTHCHECK NONE`.
    Healthcheck(Option<Health>),
    /// `SHELL ["exe", "arg"]` (exec form only).
    Shell(Vec<String>),
    /// `ONBUILD INSTRUCTION …`: the trigger's text, stored in the image.
    Onbuild(String),
}

/// A command in shell form or exec (JSON) form.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `RUN make all`: run through the stage's SHELL.
    Shell(String),
    /// `RUN ["make", "all"]`: run as is.
    Exec(Vec<String>),
}

/// `RUN`'s parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// The command. A heredoc RUN (`RUN <<EOF` … `EOF`) is a
    /// `Command::Shell` whose text is the heredoc body, run by the shell,
    /// unless the body starts with `#!` (then `heredocs` holds it and the
    /// command runs the file).
    pub command: Command,
    /// `--mount=…` flags.
    pub mounts: Vec<RunMount>,
    /// `--network=default|none|host`.
    pub network: Option<String>,
    /// Further heredocs (`RUN <<A <<B cmd`): files to feed (name, body).
    pub heredocs: Vec<Heredoc>,
}

/// A heredoc's name and body.
#[derive(Debug, Clone, PartialEq)]
pub struct Heredoc {
    /// The word after `<<` (`EOF`), without `-` or quotes.
    pub name: String,
    /// The body, each line ending in `\n`; with `<<-`, leading tabs removed.
    pub body: String,
    /// False when the word was quoted (`<<"EOF"`): no expansion in the body.
    pub expand: bool,
}

/// `RUN --mount=type=…,…`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunMount {
    /// The mount's kind.
    pub kind: MountKind,
    /// `target=` (also `dst=`, `destination=`).
    pub target: String,
    /// `source=` (also `src=`): a path in the context or in `from`.
    pub source: Option<String>,
    /// `from=`: a stage name or index, or an image.
    pub from: Option<String>,
    /// `id=`: the cache's or secret's id.
    pub id: Option<String>,
    /// `rw`/`readwrite` given (bind mounts are read-only by default;
    /// cache mounts are writable unless `ro`).
    pub read_write: bool,
    /// `ro`/`readonly` given.
    pub read_only: bool,
    /// `required` (secrets).
    pub required: bool,
    /// `mode=` in octal.
    pub mode: Option<u32>,
    /// `uid=`.
    pub uid: Option<u32>,
    /// `gid=`.
    pub gid: Option<u32>,
    /// `sharing=shared|private|locked` (cache).
    pub sharing: Option<String>,
}

/// The kinds of RUN mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MountKind {
    /// `type=bind` (the default).
    #[default]
    Bind,
    /// `type=cache`.
    Cache,
    /// `type=secret`.
    Secret,
    /// `type=tmpfs`.
    Tmpfs,
}

/// `COPY`/`ADD`'s parts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Copy {
    /// Sources as written (raw).
    pub sources: Vec<String>,
    /// The destination as written (raw).
    pub dest: String,
    /// `--from=stage|index|image` (raw).
    pub from: Option<String>,
    /// `--chown=user[:group]` (raw).
    pub chown: Option<String>,
    /// `--chmod=mode` (octal, raw).
    pub chmod: Option<String>,
    /// `--link` (accepted; same result here).
    pub link: bool,
    /// `COPY <<EOF /dest`: inline files (name, body) instead of sources.
    pub heredocs: Vec<Heredoc>,
}

/// `ARG name[=default]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgDecl {
    /// Its name.
    pub name: String,
    /// Its default (raw), if any.
    pub default: Option<String>,
}

/// `HEALTHCHECK [options] CMD …`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Health {
    /// Docker's `Test`: `["CMD", args…]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    /// `--interval` in nanoseconds (0 = inherit the default).
    pub interval: i64,
    /// `--timeout` in nanoseconds.
    pub timeout: i64,
    /// `--start-period` in nanoseconds.
    pub start_period: i64,
    /// `--start-interval` in nanoseconds.
    pub start_interval: i64,
    /// `--retries`.
    pub retries: i64,
}

/// A Dockerfile the parser refused: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The line (1-based).
    pub line: usize,
    /// What is wrong, as one sentence.
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}
