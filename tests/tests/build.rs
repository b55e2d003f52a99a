//! `berth build` end to end: Dockerfiles on a busybox base from a real
//! registry, built by the real agent and CLI as root, checked by what a
//! user notices (what the image runs, its config and history, which steps
//! the cache answered, what is left behind), and the same Dockerfiles
//! built by buildah giving the same root filesystems.

use std::path::Path;

use berth_tests::build::{context, BuildEnv, Buildah};
use berth_tests::containers::mounts_under;
use berth_tests::images::sha;

/// The Dockerfile with the base image put in for `@BASE@`.
fn dockerfile(env: &BuildEnv, text: &str) -> String {
    text.replace("@BASE@", &env.base)
}

fn run(env: &BuildEnv, args: &[&str]) -> String {
    let mut all = vec!["run", "--rm"];
    all.extend_from_slice(args);
    env.agent.ok(&all)
}

fn config(env: &BuildEnv, image: &str) -> serde_json::Value {
    let out = env.agent.ok(&["image", "inspect", image]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("inspect prints JSON");
    v[0]["Config"].clone()
}

const APP: &str = r#"FROM @BASE@
ARG WHO=world
ENV APP_HOME=/app MSG="hello ${WHO}"
WORKDIR $APP_HOME
COPY greet.sh ./
COPY data/ ./data/
RUN echo "built by $(id -u) in $(pwd)" > built.txt
USER nobody
EXPOSE 8080/tcp 9090/udp
LABEL org.example.name="berth test" version=1
CMD ["./greet.sh"]
"#;

const GREET: &str = "#!/bin/sh\necho \"$MSG from $(pwd) as $(id -un)\"\ncat built.txt data/x.txt\n";

fn app_context(env: &BuildEnv) -> tempfile::TempDir {
    context(&[
        ("Dockerfile", &dockerfile(env, APP)),
        ("greet.sh", GREET),
        ("data/x.txt", "x-content\n"),
    ])
}

#[test]
fn a_dockerfile_builds_an_image_that_runs_with_its_config_and_history() {
    let Some(env) = BuildEnv::start() else {
        return;
    };
    let ctx = app_context(&env);
    let b = env.build_ok(
        ctx.path(),
        &["-t", "app", "-t", "app:v2", "--label", "built.with=berth"],
    );
    assert!(
        b.stderr.contains("#") && b.stderr.contains("RUN echo"),
        "plain progress names the steps:\n{}",
        b.stderr
    );
    let run_step = b.step("RUN echo");
    assert_eq!(run_step.status, "DONE", "{}", b.stderr);
    let expected = "hello world from /app as nobody\nbuilt by 0 in /app\nx-content\n";
    assert_eq!(run(&env, &["app"]), expected);
    assert_eq!(run(&env, &["app:v2"]), expected, "every -t names the image");

    let c = config(&env, "app");
    assert_eq!(c["Cmd"], serde_json::json!(["./greet.sh"]));
    let env_list: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for want in ["APP_HOME=/app", "MSG=hello world", "PATH=/bin"] {
        assert!(env_list.contains(&want), "Env lacks {want}: {env_list:?}");
    }
    assert!(
        !env_list.iter().any(|e| e.starts_with("WHO=")),
        "an ARG is not kept in the image's Env: {env_list:?}"
    );
    assert_eq!(c["WorkingDir"], "/app");
    assert_eq!(c["User"], "nobody");
    let ports = c["ExposedPorts"].as_object().expect("ExposedPorts");
    for p in ["8080/tcp", "9090/udp"] {
        assert!(ports.contains_key(p), "ExposedPorts lacks {p}: {ports:?}");
    }
    assert_eq!(c["Labels"]["org.example.name"], "berth test");
    assert_eq!(c["Labels"]["version"], "1");
    assert_eq!(c["Labels"]["built.with"], "berth", "--label is applied");
    assert_eq!(
        c["Labels"]["made-by"], "berth-tests",
        "the base's labels stay"
    );

    let history = env
        .agent
        .ok(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", "app"]);
    let lines: Vec<&str> = history.lines().collect();
    let find = |needles: &[&str]| -> usize {
        lines
            .iter()
            .position(|l| needles.iter().all(|n| l.contains(n)))
            .unwrap_or_else(|| panic!("history lacks {needles:?}:\n{history}"))
    };
    let cmd = find(&["CMD", "greet.sh"]);
    let label = find(&["LABEL", "org.example.name"]);
    let expose = find(&["EXPOSE", "8080"]);
    let user = find(&["USER nobody"]);
    let run_line = find(&["RUN", "built by"]);
    let copy = find(&["COPY", "greet.sh"]);
    let workdir = find(&["WORKDIR /app"]);
    let envl = find(&["ENV", "APP_HOME=/app"]);
    let base = find(&["berth-tests"]);
    let order = [
        cmd, label, expose, user, run_line, copy, workdir, envl, base,
    ];
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "history lists the newest step first:\n{history}"
    );
}

#[test]
fn a_second_identical_build_is_all_cached_and_gives_the_same_id() {
    let Some(env) = BuildEnv::start() else {
        return;
    };
    let ctx = app_context(&env);
    let id = env.build_id(ctx.path(), &["-t", "app"]);
    let again = env.build_ok(ctx.path(), &["-t", "app"]);
    let steps = again.instruction_steps();
    for needle in ["COPY greet.sh", "COPY data/", "RUN echo"] {
        assert!(
            steps.iter().any(|s| s.name.contains(needle)),
            "no step named like {needle:?}:\n{}",
            again.stderr
        );
    }
    for s in &steps {
        assert_eq!(
            s.status, "CACHED",
            "{} was not cached:\n{}",
            s.name, again.stderr
        );
    }
    let iid_dir = tempfile::tempdir().unwrap();
    let iid = iid_dir.path().join("iid");
    let iid = iid.to_str().unwrap();
    assert_eq!(
        env.build_id(ctx.path(), &["-t", "app", "--iidfile", iid]),
        id
    );
    assert_eq!(std::fs::read_to_string(iid).unwrap().trim(), id);
    let images = env.agent.ok(&["images", "-q", "--no-trunc", "app"]);
    assert_eq!(images.trim(), id, "the tag names the built id");
    // --no-cache runs every step again.
    let fresh = env.build_ok(ctx.path(), &["--no-cache", "-t", "app"]);
    assert_eq!(fresh.step("RUN echo").status, "DONE", "{}", fresh.stderr);
}

#[test]
fn changing_a_copied_file_rebuilds_from_that_copy_on() {
    let Some(env) = BuildEnv::start() else {
        return;
    };
    let text = dockerfile(
        &env,
        "FROM @BASE@\nRUN echo one > /one\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt\n",
    );
    let ctx = context(&[("Dockerfile", &text), ("a.txt", "first\n")]);
    env.build_ok(ctx.path(), &["-t", "c"]);
    // A new mtime alone changes nothing: the cache keys on content.
    let a = ctx.path().join("a.txt");
    let f = std::fs::File::options().write(true).open(&a).unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
        .unwrap();
    drop(f);
    let b = env.build_ok(ctx.path(), &["-t", "c"]);
    for s in b.instruction_steps() {
        assert_eq!(
            s.status, "CACHED",
            "touching a file rebuilt {}:\n{}",
            s.name, b.stderr
        );
    }
    std::fs::write(&a, "second\n").unwrap();
    let b = env.build_ok(ctx.path(), &["-t", "c"]);
    assert!(b.cached("RUN echo one"), "{}", b.stderr);
    assert!(!b.cached("COPY a.txt"), "{}", b.stderr);
    assert!(!b.cached("RUN cat /a.txt"), "{}", b.stderr);
    assert_eq!(run(&env, &["c", "cat", "/b.txt", "/one"]), "second\none\n");
}

#[test]
fn a_copy_rebuilt_after_one_file_changed_shows_every_file_as_the_context_has_it() {
    let Some(env) = BuildEnv::start() else {
        return;
    };
    // Enough files that the new layer is made with links to the last one's.
    let text = dockerfile(
        &env,
        "FROM @BASE@\nCOPY src /src\nRUN cat /src/d/* > /all\n",
    );
    let bodies: Vec<(String, String)> = (0..60)
        .map(|i| (format!("src/d/f{i:02}"), format!("file {i}\n")))
        .collect();
    let mut files: Vec<(&str, &str)> = vec![("Dockerfile", &text)];
    files.extend(bodies.iter().map(|(n, b)| (n.as_str(), b.as_str())));
    let ctx = context(&files);
    std::fs::set_permissions(
        ctx.path().join("src/d/f07"),
        std::os::unix::fs::PermissionsExt::from_mode(0o750),
    )
    .unwrap();
    env.build_ok(ctx.path(), &["-t", "many"]);
    std::fs::write(ctx.path().join("src/d/f03"), "changed\n").unwrap();
    let b = env.build_ok(ctx.path(), &["-t", "many"]);
    assert!(!b.cached("COPY src"), "{}", b.stderr);
    // What a container sees: each file's mode, owner, time, size and content.
    let seen = run(
        &env,
        &[
            "many",
            "sh",
            "-c",
            "cd /src/d && for f in *; do stat -c '%n %a %u %g %Y %s' $f; cat $f; done",
        ],
    );
    let mut want = String::new();
    for (name, _) in &bodies {
        use std::os::unix::fs::MetadataExt;
        let path = ctx.path().join(name);
        let m = std::fs::metadata(&path).unwrap();
        let base = name.rsplit('/').next().unwrap();
        want.push_str(&format!(
            "{base} {:o} 0 0 {} {}\n{}",
            m.mode() & 0o7777,
            m.mtime(),
            m.len(),
            std::fs::read_to_string(&path).unwrap()
        ));
    }
    assert_eq!(seen, want);
    let all = run(&env, &["many", "cat", "/all"]);
    assert!(
        all.starts_with("file 0\nfile 1\nfile 2\nchanged\nfile 4\n"),
        "{all}"
    );
}

#[test]
fn multi_stage_builds_copy_between_stages_and_skip_unneeded_ones() {
    let Some(env) = BuildEnv::start() else {
        return;
    };
    let text = dockerfile(
        &env,
        r#"FROM @BASE@ AS build
RUN echo built-in-build > /out && echo BUILD-STAGE-RAN
FROM @BASE@ AS unused
RUN echo UNUSED-STAGE-RAN
FROM @BASE@
COPY --from=build /out /copied
CMD ["cat", "/copied"]
"#,
    );
    let ctx = context(&[("Dockerfile", &text)]);
    let b = env.build_ok(ctx.path(), &["-t", "final"]);
    assert!(b.stderr.contains("BUILD-STAGE-RAN"), "{}", b.stderr);
    assert!(
        !b.stderr.contains("UNUSED-STAGE-RAN"),
        "a stage the target does not need was built:\n{}",
        b.stderr
    );
    assert_eq!(run(&env, &["final"]), "built-in-build\n");
    let (code, _, _) = env.agent.run(&["run", "--rm", "final", "ls", "/out"]);
    assert_ne!(
        code, 0,
        "the build stage's files stay out of the final image"
    );
    let t = env.build_ok(ctx.path(), &["--target", "build", "-t", "first"]);
    assert!(
        !t.stderr.contains("COPY --from") && !t.stderr.contains("UNUSED-STAGE-RAN"),
        "--target build built more than the first stage:\n{}",
        t.stderr
    );
    assert_eq!(run(&env, &["first", "cat", "/out"]), "built-in-build\n");
    let t = env.build(ctx.path(), &["--target", "nosuchstage"]);
    assert_ne!(t.code, 0, "an unknown --target fails");
}

#[test]
fn args_and_env_expand_like_docker() {
    let Some(env) = BuildEnv::start() else {
        return;
    };
    let text = dockerfile(
        &env,
        r#"ARG BASEIMG=@BASE@
ARG NOTE=global
ARG HIDDEN=h
FROM ${BASEIMG}
ARG NAME=default-name
ARG EMPTY
ARG SET=set
ARG NOTE
ENV A=${NAME} B=${EMPTY:-fallback} C=${SET:+alt} D=${EMPTY:+alt} E=${NAME:-unused}
RUN echo "A=$A B=$B C=$C D=[$D] E=$E N=$NAME T=[$NOTE] H=[$HIDDEN]" > /vars
"#,
    );
    let ctx = context(&[("Dockerfile", &text)]);
    env.build_ok(ctx.path(), &["-t", "v1"]);
    assert_eq!(
        run(&env, &["v1", "cat", "/vars"]),
        "A=default-name B=fallback C=alt D=[] E=default-name N=default-name T=[global] H=[]\n"
    );
    env.build_ok(ctx.path(), &["-t", "v2", "--build-arg", "NAME=from-cli"]);
    assert_eq!(
        run(&env, &["v2", "cat", "/vars"]),
        "A=from-cli B=fallback C=alt D=[] E=from-cli N=from-cli T=[global] H=[]\n"
    );
    let c = config(&env, "v2");
    let envs = c["Env"].to_string();
    assert!(envs.contains("A=from-cli"), "{envs}");
    assert!(
        !envs.contains("NAME="),
        "ARGs stay out of the image: {envs}"
    );
}

#[test]
fn user_and_workdir_apply_to_later_steps() {
    let Some(env) = BuildEnv::start() else {
        return;
    };
    let text = dockerfile(
        &env,
        r#"FROM @BASE@
WORKDIR /work/deep/dir
RUN touch made-here && id -u > /tmp/root-id
WORKDIR rel
RUN pwd > /tmp/rel-pwd
USER 1234:50
RUN echo "$(id -u):$(id -g)" > /tmp/numeric
USER nobody
RUN id -u > /tmp/nobody-id && id -un >> /tmp/nobody-id && touch /tmp/by-nobody
"#,
    );
    let ctx = context(&[("Dockerfile", &text)]);
    env.build_ok(ctx.path(), &["-t", "u"]);
    let out = run(
        &env,
        &[
            "u",
            "sh",
            "-c",
            "ls /work/deep/dir; cat /tmp/root-id /tmp/rel-pwd /tmp/numeric /tmp/nobody-id; \
             stat -c %u /tmp/by-nobody; pwd; id -un",
        ],
    );
    assert_eq!(
        out,
        "made-here\nrel\n0\n/work/deep/dir/rel\n1234:50\n65534\nnobody\n65534\n/work/deep/dir/rel\nnobody\n"
    );
}

#[test]
fn dockerignore_excludes_files_except_its_exceptions() {
    let Some(env) = BuildEnv::start() else {
        return;
    };
    let text = dockerfile(&env, "FROM @BASE@\nCOPY . /ctx/\n");
    let ctx = context(&[
        ("Dockerfile", &text),
        (
            ".dockerignore",
            "*.log\nsecret/\ndocs/**\n!docs/keep.md\n.dockerignore\n",
        ),
        ("app.txt", "app\n"),
        ("debug.log", "log\n"),
        ("secret/key", "key\n"),
        ("docs/a.md", "a\n"),
        ("docs/keep.md", "keep\n"),
        ("sub/nested.log", "nested\n"),
    ]);
    env.build_ok(ctx.path(), &["-t", "ign"]);
    let out = run(&env, &["ign", "sh", "-c", "cd /ctx && find . | sort"]);
    assert_eq!(
        out,
        "".to_string()
            + ".\n./Dockerfile\n./app.txt\n./docs\n./docs/keep.md\n./sub\n./sub/nested.log\n",
        "*.log matches only at the top, like Docker"
    );
}

#[test]
fn cache_mounts_persist_and_secrets_never_reach_the_image() {
    let Some(env) = BuildEnv::start() else {
        return;
    };
    let text = dockerfile(
        &env,
        r#"FROM @BASE@
RUN --mount=type=cache,target=/cache n=$(cat /cache/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /cache/n; echo "count=$n"
"#,
    );
    let ctx = context(&[("Dockerfile", &text)]);
    let b = env.build_ok(ctx.path(), &["-t", "cm"]);
    let step = "RUN --mount=type=cache";
    assert!(
        b.step(step).output.contains(&"count=1".to_string()),
        "{}",
        b.stderr
    );
    let b = env.build_ok(ctx.path(), &["--no-cache", "-t", "cm"]);
    assert!(
        b.step(step).output.contains(&"count=2".to_string()),
        "the cache mount's files stay between builds:\n{}",
        b.stderr
    );
    let out = run(&env, &["cm", "sh", "-c", "ls -A /cache 2>/dev/null; true"]);
    assert_eq!(out, "", "a cache mount's files stay out of the image");

    let secret = "S3CRET-berth-4242-token";
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("tok.txt");
    std::fs::write(&src, secret).unwrap();
    let text = dockerfile(
        &env,
        r#"FROM @BASE@
RUN --mount=type=secret,id=tok echo "secret-sha $(sha256sum < /run/secrets/tok | cut -c1-64)" && wc -c < /run/secrets/tok > /secret-len
RUN ls /run/secrets/ > /after 2>&1; true
"#,
    );
    let ctx = context(&[("Dockerfile", &text)]);
    let spec = format!("id=tok,src={}", src.display());
    let b = env.build_ok(ctx.path(), &["-t", "sec", "--secret", &spec]);
    let want = format!("secret-sha {}", &sha(secret.as_bytes())[7..]);
    assert!(
        b.step("--mount=type=secret").output.contains(&want),
        "the step sees the secret:\n{}",
        b.stderr
    );
    assert!(!b.stderr.contains(secret) && !b.stdout.contains(secret));
    assert_eq!(
        run(&env, &["sec", "cat", "/secret-len"]).trim(),
        secret.len().to_string()
    );
    let (code, _, _) = env
        .agent
        .run(&["run", "--rm", "sec", "cat", "/run/secrets/tok"]);
    assert_ne!(code, 0, "the secret file is not in the image");
    for layer in env.saved_layers("sec") {
        assert!(
            !layer.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a layer holds the secret"
        );
    }
    let history = env.agent.ok(&["history", "--no-trunc", "sec"]);
    assert!(!history.contains(secret), "{history}");
    assert!(!env.agent.ok(&["image", "inspect", "sec"]).contains(secret));
}

#[test]
fn errors_name_the_line_and_a_failed_run_leaves_nothing_behind() {
    let Some(env) = BuildEnv::start() else {
        return;
    };
    let before = mounts_under(&env.agent.root());
    let bad = dockerfile(&env, "FROM @BASE@\nRUN echo ok\nFROBNICATE now\n");
    let ctx = context(&[("Dockerfile", &bad)]);
    let b = env.build(ctx.path(), &["-t", "bad"]);
    assert_ne!(b.code, 0);
    let err = b.stderr.to_lowercase();
    assert!(
        (err.contains("dockerfile:3") || err.contains("line 3")) && err.contains("frobnicate"),
        "the error names the line and the instruction:\n{}",
        b.stderr
    );
    assert!(!b.stderr.contains("panicked"), "{}", b.stderr);

    let failing = dockerfile(&env, "FROM @BASE@\nRUN echo ok\nRUN echo boom; exit 3\n");
    std::fs::write(ctx.path().join("Dockerfile"), failing).unwrap();
    let b = env.build(ctx.path(), &["-t", "bad"]);
    assert_eq!(b.code, 1, "{}", b.stderr);
    let step = b.step("RUN echo boom");
    assert_eq!(step.status, "ERROR", "{}", b.stderr);
    assert!(step.output.iter().any(|l| l == "boom"), "{}", b.stderr);
    assert!(
        b.stderr.contains("exit code: 3"),
        "the exit code is shown:\n{}",
        b.stderr
    );
    assert!(
        b.stderr
            .trim_end()
            .lines()
            .last()
            .unwrap_or_default()
            .starts_with("ERROR: failed to solve:"),
        "{}",
        b.stderr
    );
    assert_eq!(
        env.agent.ok(&["ps", "-aq"]).trim(),
        "",
        "a build container is left"
    );
    let after = mounts_under(&env.agent.root());
    let left: Vec<&String> = after.iter().filter(|m| !before.contains(m)).collect();
    assert!(
        left.is_empty(),
        "mounts left under the agent's root: {left:?}"
    );
    let (_, images, _) = env.agent.run(&["images", "--format", "{{.Repository}}"]);
    assert!(
        !images.lines().any(|l| l == "bad"),
        "a failed build tagged an image"
    );
    // The agent still builds, and the step before the failure is cached.
    let ok = dockerfile(&env, "FROM @BASE@\nRUN echo ok\nRUN echo fine\n");
    std::fs::write(ctx.path().join("Dockerfile"), ok).unwrap();
    let b = env.build_ok(ctx.path(), &["-t", "good"]);
    assert!(b.cached("RUN echo ok"), "{}", b.stderr);
}

fn build_cache_row(env: &BuildEnv) -> (String, String) {
    let out = env.agent.ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}}|{{.TotalCount}}|{{.Size}}",
    ]);
    let row = out
        .lines()
        .find(|l| l.starts_with("Build Cache|"))
        .unwrap_or_else(|| panic!("system df has no Build Cache row:\n{out}"));
    let mut parts = row.split('|').skip(1);
    (
        parts.next().unwrap().to_string(),
        parts.next().unwrap_or_default().to_string(),
    )
}

#[test]
fn builder_prune_empties_the_build_cache() {
    let Some(env) = BuildEnv::start() else {
        return;
    };
    let text = dockerfile(&env, "FROM @BASE@\nRUN echo cached > /f\n");
    let ctx = context(&[("Dockerfile", &text)]);
    env.build_ok(ctx.path(), &["-t", "p"]);
    let (count, _) = build_cache_row(&env);
    assert_ne!(count, "0", "a build leaves cache entries");
    env.agent.ok(&["builder", "prune", "-f"]);
    let (count, size) = build_cache_row(&env);
    assert_eq!(count, "0");
    assert!(
        size.starts_with('0'),
        "Build Cache size after prune: {size}"
    );
    let b = env.build_ok(ctx.path(), &["-t", "p"]);
    assert!(!b.cached("RUN echo cached"), "{}", b.stderr);
    assert_eq!(run(&env, &["p", "cat", "/f"]), "cached\n");
}

/// Paths that differ for reasons of the environment, not the build:
/// - `etc/hosts`, `etc/hostname`, `etc/resolv.conf`: buildah leaves empty
///   files (mode 755) where it bind-mounted its own during RUN;
/// - `dev`, `proc`, `sys`, `run` when empty directories: buildah leaves the
///   mount points it made for RUN (the base has none of them). Dropped from
///   both trees alike.
fn without_noise(tree: Vec<String>) -> Vec<String> {
    let empty_stub = |path: &str, line: &str| {
        matches!(path, "dev" | "proc" | "sys" | "run")
            && line.contains(" dir ")
            && !tree.iter().any(|l| l.starts_with(&format!("{path}/")))
    };
    let keep: Vec<bool> = tree
        .iter()
        .map(|l| {
            let path = l.split(' ').next().unwrap_or_default();
            let env_file = matches!(path, "etc/hosts" | "etc/hostname" | "etc/resolv.conf");
            !env_file && !empty_stub(path, l)
        })
        .collect();
    tree.iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(l, _)| l.clone())
        .collect()
}

#[test]
fn the_same_dockerfiles_give_the_same_trees_as_buildah() {
    let Some(env) = BuildEnv::start() else {
        return;
    };
    let multi = dockerfile(
        &env,
        "FROM @BASE@ AS build\nRUN mkdir -p /out/d && echo x > /out/d/f && ln -s d/f /out/link && chmod 700 /out/d\n\
         FROM @BASE@\nRUN rm /bin/ls && mkdir /data && chown nobody /data\nCOPY --from=build /out /opt/\n\
         RUN ln -s /opt/link /l && chmod 4755 /opt/d/f\n",
    );
    let ignore = dockerfile(&env, "FROM @BASE@\nCOPY . /ctx/\nRUN rm -r /ctx/sub\n");
    let app = app_context(&env);
    let multi_ctx = context(&[("Dockerfile", &multi)]);
    let ignore_ctx = context(&[
        ("Dockerfile", &ignore),
        (".dockerignore", "*.log\n!keep.log\n"),
        ("a.sh", "#!/bin/sh\n"),
        ("b.log", "b\n"),
        ("keep.log", "k\n"),
        ("sub/c", "c\n"),
    ]);
    let cases: [(&str, &Path); 3] = [
        ("app", app.path()),
        ("multi", multi_ctx.path()),
        ("ignore", ignore_ctx.path()),
    ];
    let buildah = Buildah::new();
    let mut failures = vec![];
    for (name, ctx) in cases {
        env.build_ok(ctx, &["-t", name]);
        buildah.bud(&env, ctx, name, &[]);
        let ours = without_noise(env.image_tree(name));
        let theirs = without_noise(berth_tests::build::image_tree(&buildah.layers(&env, name)));
        if ours != theirs {
            let only_ours: Vec<&String> = ours.iter().filter(|l| !theirs.contains(l)).collect();
            let only_theirs: Vec<&String> = theirs.iter().filter(|l| !ours.contains(l)).collect();
            failures.push(format!(
                "{name}: only in Berth's image: {only_ours:#?}\nonly in buildah's: {only_theirs:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
