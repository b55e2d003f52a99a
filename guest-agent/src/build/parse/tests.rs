//! The parser's unit tests.

use super::parse;
use crate::build::ast::*;

pub(super) fn ok(text: &str) -> Dockerfile {
    parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}
pub(super) fn err(text: &str) -> ParseError {
    parse(text).expect_err("should fail")
}
/// The instructions of the only (last) stage.
pub(super) fn ins(text: &str) -> Vec<Instruction> {
    ok(text).stages.pop().unwrap().instructions
}
pub(super) fn one(text: &str) -> Kind {
    ins(&format!("FROM scratch\n{text}")).remove(0).kind
}
pub(super) fn run(text: &str) -> Run {
    match one(text) {
        Kind::Run(r) => r,
        k => panic!("{k:?}"),
    }
}
pub(super) fn copy(text: &str) -> Copy {
    match one(text) {
        Kind::Copy(c) | Kind::Add(c) => c,
        k => panic!("{k:?}"),
    }
}
pub(super) fn sh(s: &str) -> Command {
    Command::Shell(s.into())
}
pub(super) fn exec(v: &[&str]) -> Command {
    Command::Exec(v.iter().map(|s| s.to_string()).collect())
}
pub(super) fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}
pub(super) fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn stages_and_global_args() {
    let df = ok("# syntax=docker/dockerfile:1\nARG V=1 B\n\nfrom --platform=$P alpine:$V As Build\nrun make\nFROM scratch\nCOPY --from=build /a /b\n");
    assert_eq!(df.escape, '\\');
    assert_eq!(
        df.global_args,
        [
            ArgDecl {
                name: "V".into(),
                default: Some("1".into())
            },
            ArgDecl {
                name: "B".into(),
                default: None
            }
        ]
    );
    assert_eq!(df.stages.len(), 2);
    let s0 = &df.stages[0];
    assert_eq!(
        (
            s0.name.as_deref(),
            s0.base.as_str(),
            s0.platform.as_deref(),
            s0.line
        ),
        (Some("build"), "alpine:$V", Some("$P"), 4)
    );
    assert_eq!(s0.instructions[0].text, "RUN make");
    assert_eq!(s0.instructions[0].line, 5);
    assert_eq!(df.stages[1].name, None);
    assert_eq!(df.stages[1].instructions[0].line, 7);
}

#[test]
fn run_forms_and_flags() {
    assert_eq!(
        run("RUN apt-get update && make").command,
        sh("apt-get update && make")
    );
    assert_eq!(
        run(r#"RUN ["make", "all"]"#).command,
        exec(&["make", "all"])
    );
    assert_eq!(run("RUN [not json] x").command, sh("[not json] x"));
    let r = run("RUN --mount=type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0755,uid=1,gid=2 --mount=type=bind,src=/s,dst=/d,from=build,rw --network=none pip install");
    assert_eq!(r.network.as_deref(), Some("none"));
    assert_eq!(r.mounts.len(), 2);
    let c = &r.mounts[0];
    assert_eq!(
        (
            c.kind,
            c.target.as_str(),
            c.id.as_deref(),
            c.sharing.as_deref()
        ),
        (
            MountKind::Cache,
            "/root/.cache",
            Some("pip"),
            Some("locked")
        )
    );
    assert_eq!((c.mode, c.uid, c.gid), (Some(0o755), Some(1), Some(2)));
    let b = &r.mounts[1];
    assert_eq!(
        (
            b.kind,
            b.source.as_deref(),
            b.target.as_str(),
            b.from.as_deref(),
            b.read_write
        ),
        (MountKind::Bind, Some("/s"), "/d", Some("build"), true)
    );
    let r = run("RUN --mount=type=secret,id=tok,required --mount=type=tmpfs,destination=/t --mount=target=/x,readonly cat /run/secrets/tok");
    assert_eq!(
        (
            r.mounts[0].kind,
            r.mounts[0].required,
            r.mounts[0].target.as_str()
        ),
        (MountKind::Secret, true, "")
    );
    assert_eq!(
        (r.mounts[1].kind, r.mounts[1].target.as_str()),
        (MountKind::Tmpfs, "/t")
    );
    assert!(r.mounts[2].read_only && r.mounts[2].kind == MountKind::Bind);
    assert_eq!(r.command, sh("cat /run/secrets/tok"));
}

#[test]
fn run_errors() {
    let e = |t: &str| err(&format!("FROM a\n{t}"));
    assert_eq!(
        e("RUN --foo x"),
        ParseError {
            line: 2,
            message: "unknown flag: --foo (RUN accepts --mount and --network)".into()
        }
    );
    assert!(e("RUN --network=bridge x")
        .message
        .contains("not supported"));
    assert!(e("RUN --mount=type=nfs,target=/x x")
        .message
        .contains("unknown mount type"));
    assert!(e("RUN --mount=type=cache x")
        .message
        .contains("target= is required"));
    assert!(e("RUN --mount=type=cache,target=/x,bogus=1 x")
        .message
        .contains("unknown option 'bogus'"));
    assert!(e("RUN --mount=type=cache,target=/x,mode=9 x")
        .message
        .contains("mode needs a number"));
    assert!(e("RUN --mount=type=bind,target=/x,required x")
        .message
        .contains("only for type=secret"));
    assert!(e("RUN --mount=type=bind,target=/x,uid=1 x")
        .message
        .contains("only for cache and secret"));
    assert!(e("RUN --mount=type=secret x")
        .message
        .contains("needs id= or target="));
    assert!(e("RUN --mount=type=ssh x")
        .message
        .contains("not supported"));
    assert!(e("RUN --mount x").message.contains("needs a value"));
    assert!(e("RUN").message.starts_with("RUN requires a command"));
}

#[test]
fn copy_and_add() {
    let c = copy("COPY --from=build --chown=app:app --chmod=0755 --link a \"b c\" /dst/");
    assert_eq!(
        (
            c.from.as_deref(),
            c.chown.as_deref(),
            c.chmod.as_deref(),
            c.link
        ),
        (Some("build"), Some("app:app"), Some("0755"), true)
    );
    assert_eq!(c.sources, s(&["a", "\"b c\""]));
    assert_eq!(c.dest, "/dst/");
    assert!(!copy("COPY --link=false a b").link);
    assert_eq!(copy(r#"COPY ["a b", "/c"]"#).sources, s(&["a b"]));
    assert!(
        matches!(one("ADD https://x/y.tgz /z"), Kind::Add(c) if c.sources == ["https://x/y.tgz"])
    );
    let e = err("FROM a\nCOPY onlyone");
    assert_eq!(e, ParseError { line: 2, message: "COPY requires at least two arguments, but only one was provided. Destination could not be determined.".into() });
    for f in [
        "--parents",
        "--exclude=*.md",
        "--keep-git-dir",
        "--checksum=sha256:x",
    ] {
        let m = err(&format!("FROM a\nADD {f} a b")).message;
        assert!(m.ends_with("is not supported by Berth"), "{m}");
    }
    assert!(err("FROM a\nCOPY --owner=1 a b")
        .message
        .starts_with("unknown flag: --owner"));
    assert!(err("FROM a\nCOPY --from a b")
        .message
        .contains("needs a value"));
}

#[test]
fn env_label_arg() {
    assert_eq!(
        one("ENV A=1 B=\"two words\" C=$A\\ x"),
        Kind::Env(pairs(&[
            ("A", "1"),
            ("B", "\"two words\""),
            ("C", "$A\\ x")
        ]))
    );
    assert_eq!(
        one("ENV PATH /usr/bin:$PATH   with spaces"),
        Kind::Env(pairs(&[("PATH", "/usr/bin:$PATH   with spaces")]))
    );
    assert_eq!(
        one("LABEL a.b=c \"k 2\"='v 2'"),
        Kind::Label(pairs(&[("a.b", "c"), ("\"k 2\"", "'v 2'")]))
    );
    assert_eq!(
        one("LABEL version 1.0"),
        Kind::Label(pairs(&[("version", "1.0")]))
    );
    assert_eq!(
        one("ARG A B=\"x y\""),
        Kind::Arg(vec![
            ArgDecl {
                name: "A".into(),
                default: None
            },
            ArgDecl {
                name: "B".into(),
                default: Some("\"x y\"".into())
            }
        ])
    );
    assert_eq!(err("FROM a\n\nENV ALONE").line, 3);
    assert!(err("FROM a\nENV ALONE").message.contains("has no value"));
    assert!(err("FROM a\nENV A=1 B").message.contains("can't find ="));
    assert!(err("FROM a\nENV =1").message.contains("can not be blank"));
    assert!(err("FROM a\nLABEL")
        .message
        .contains("requires at least one"));
    assert!(err("FROM a\nARG").message.contains("requires a name"));
    assert!(err("FROM a\nARG =x").message.contains("can not be blank"));
}

#[test]
fn simple_instructions() {
    assert_eq!(one("WORKDIR /app/$X"), Kind::Workdir("/app/$X".into()));
    assert_eq!(one("USER app:app"), Kind::User("app:app".into()));
    assert_eq!(
        one("MAINTAINER Jane <j@x>"),
        Kind::Maintainer("Jane <j@x>".into())
    );
    assert_eq!(
        one("STOPSIGNAL SIGKILL"),
        Kind::StopSignal("SIGKILL".into())
    );
    assert_eq!(
        one("EXPOSE 80 443/udp $P"),
        Kind::Expose(s(&["80", "443/udp", "$P"]))
    );
    assert_eq!(
        one(r#"VOLUME ["/a", "/b c"]"#),
        Kind::Volume(s(&["/a", "/b c"]))
    );
    assert_eq!(one("VOLUME /a /b"), Kind::Volume(s(&["/a", "/b"])));
    assert_eq!(one("CMD echo hi"), Kind::Cmd(sh("echo hi")));
    assert_eq!(one(r#"CMD ["a","b"]"#), Kind::Cmd(exec(&["a", "b"])));
    assert_eq!(one("ENTRYPOINT []"), Kind::Entrypoint(exec(&[])));
    assert_eq!(
        one(r#"ENTRYPOINT ["/init"]"#),
        Kind::Entrypoint(exec(&["/init"]))
    );
    assert_eq!(
        one(r#"SHELL ["/bin/bash", "-c"]"#),
        Kind::Shell(s(&["/bin/bash", "-c"]))
    );
    for (t, m) in [
        ("WORKDIR", "WORKDIR requires a path"),
        ("USER", "USER requires a user"),
        ("STOPSIGNAL", "STOPSIGNAL requires a signal"),
        ("EXPOSE", "EXPOSE requires at least one"),
        ("VOLUME []", "VOLUME requires at least one"),
        ("CMD", "CMD requires a command"),
        ("ENTRYPOINT", "ENTRYPOINT requires a command"),
        (
            "SHELL /bin/sh -c",
            "SHELL requires the arguments in JSON form",
        ),
        ("SHELL []", "SHELL requires at least one"),
        ("CMD --help", "unknown flag: --help"),
        ("WORKDIR --x /a", "unknown flag: --x"),
    ] {
        let e = err(&format!("FROM a\n{t}"));
        assert!(e.message.starts_with(m) && e.line == 2, "{t}: {e}");
    }
}

#[test]
fn healthcheck() {
    assert_eq!(one("HEALTHCHECK NONE"), Kind::Healthcheck(None));
    let Kind::Healthcheck(Some(h)) = one("HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=1.5s --start-interval=2s --retries=3 CMD curl -f http://x/ || exit 1") else { panic!() };
    assert_eq!(h.test, s(&["CMD-SHELL", "curl -f http://x/ || exit 1"]));
    assert_eq!(
        (
            h.interval,
            h.timeout,
            h.start_period,
            h.start_interval,
            h.retries
        ),
        (90_000_000_000, 500_000_000, 1_500_000_000, 2_000_000_000, 3)
    );
    let Kind::Healthcheck(Some(h)) = one(r#"healthcheck cmd ["/bin/check", "-q"]"#) else {
        panic!()
    };
    assert_eq!(h.test, s(&["CMD", "/bin/check", "-q"]));
    assert_eq!(h.interval, 0);
    for (t, m) in [
        ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no"),
        (
            "HEALTHCHECK --interval=5s NONE",
            "HEALTHCHECK NONE takes no",
        ),
        (
            "HEALTHCHECK --interval=5 CMD x",
            "HEALTHCHECK --interval=5: \"5\" is not a duration",
        ),
        (
            "HEALTHCHECK --interval=-5s CMD x",
            "HEALTHCHECK --interval=-5s: ",
        ),
        (
            "HEALTHCHECK --timeout=10us CMD x",
            "HEALTHCHECK --timeout=10us cannot be less than 1ms",
        ),
        (
            "HEALTHCHECK --retries=x CMD x",
            "HEALTHCHECK --retries=x must be",
        ),
        ("HEALTHCHECK --bogus=1 CMD x", "unknown flag: --bogus"),
        ("HEALTHCHECK RUN x", "HEALTHCHECK takes NONE or CMD"),
        ("HEALTHCHECK CMD", "HEALTHCHECK CMD requires a command"),
    ] {
        let e = err(&format!("FROM a\n{t}"));
        assert!(e.message.starts_with(m) && e.line == 2, "{t}: {e}");
    }
    assert_eq!(
        super::instr::duration("1h2m3s4ms5us6ns").unwrap(),
        3_723_004_005_006
    );
    assert_eq!(super::instr::duration("0").unwrap(), 0);
}

#[test]
fn onbuild() {
    assert_eq!(
        one("ONBUILD run make  all"),
        Kind::Onbuild("RUN make  all".into())
    );
    assert_eq!(
        one("ONBUILD COPY . /src"),
        Kind::Onbuild("COPY . /src".into())
    );
    let k = ins("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\nUSER x");
    assert_eq!(k[0].kind, Kind::Onbuild("RUN <<EOF\necho hi\nEOF".into()));
    assert_eq!(k[1].kind, Kind::User("x".into()));
    for (t, m) in [
        ("ONBUILD ONBUILD RUN x", "chaining ONBUILD"),
        ("ONBUILD FROM a", "FROM isn't allowed"),
        ("ONBUILD maintainer me", "MAINTAINER isn't allowed"),
        ("ONBUILD", "ONBUILD requires an instruction"),
        ("ONBUILD COPY a", "ONBUILD COPY: COPY requires at least two"),
        ("ONBUILD FORM x", "ONBUILD FORM: unknown instruction"),
    ] {
        let e = err(&format!("FROM a\n{t}"));
        assert!(e.message.starts_with(m) && e.line == 2, "{t}: {e}");
    }
}

#[test]
fn structural_errors() {
    let e = |t: &str| err(t);
    assert_eq!(
        e(""),
        ParseError {
            line: 1,
            message: "the Dockerfile is empty: it needs at least a FROM line".into()
        }
    );
    assert_eq!(
        e("# only\n\n").message,
        "the Dockerfile is empty: it needs at least a FROM line"
    );
    assert_eq!(e("ARG A\nARG B").line, 2);
    assert!(e("ARG A").message.contains("no FROM"));
    assert_eq!(e("RUN x\nFROM a"), ParseError { line: 1, message: "no build stage in current context: the Dockerfile must start with FROM (ARG may come before it)".into() });
    assert_eq!(
        e("FROM a\nFORM b"),
        ParseError {
            line: 2,
            message: "unknown instruction: FORM (did you mean FROM?)".into()
        }
    );
    assert_eq!(
        e("FROM a\nfrobnicate x").message,
        "unknown instruction: FROBNICATE"
    );
    assert!(e("FROM").message.starts_with("FROM requires an image"));
    assert!(e("FROM a AS")
        .message
        .starts_with("FROM takes an image and an optional `AS name`"));
    assert!(e("FROM a BS b").message.starts_with("FROM takes"));
    assert!(e("FROM a AS 1x")
        .message
        .starts_with("invalid name for build stage: \"1x\""));
    assert!(e("FROM a AS b$c").message.starts_with("invalid name"));
    assert!(e("FROM --bogus=1 a")
        .message
        .starts_with("unknown flag: --bogus"));
    assert_eq!(
        e("FROM a AS x\nRUN y\nFROM b as X"),
        ParseError {
            line: 3,
            message:
                "duplicate stage name \"x\": line 1 already uses it; give each stage its own name"
                    .into()
        }
    );
    assert_eq!(
        ok("FROM a AS my-stage_1.0").stages[0].name.as_deref(),
        Some("my-stage_1.0")
    );
}
