//! Which stages a build needs, and how FROM lines resolve.

use super::*;
use crate::build::parse::parse;

fn plan(text: &str, opts: &BuildOptions) -> Result<Plan> {
    Plan::new(&parse(text).expect("parses"), opts, "Dockerfile")
}

const STAGES: &str = "\
FROM busybox AS base
RUN echo base
FROM base AS build
RUN echo build > /out
FROM busybox AS unused
RUN echo unused
FROM busybox
COPY --from=build /out /out
";

#[test]
fn the_last_stage_needs_only_what_it_copies_from() {
    let p = plan(STAGES, &BuildOptions::default()).unwrap();
    assert_eq!(p.target, 3);
    let mut needed: Vec<usize> = p.needed.iter().copied().collect();
    needed.sort();
    assert_eq!(needed, [0, 1, 3], "the unused stage is not built");
    assert_eq!(p.deps[1], [0], "FROM base depends on the base stage");
}

#[test]
fn a_target_builds_only_its_own_stages() {
    let opts = BuildOptions {
        target: "BUILD".into(),
        ..Default::default()
    };
    let p = plan(STAGES, &opts).unwrap();
    assert_eq!(p.target, 1);
    let mut needed: Vec<usize> = p.needed.iter().copied().collect();
    needed.sort();
    assert_eq!(needed, [0, 1]);
}

#[test]
fn an_unknown_target_is_named() {
    let opts = BuildOptions {
        target: "nope".into(),
        ..Default::default()
    };
    let e = plan(STAGES, &opts).err().unwrap().to_string();
    assert!(
        e.contains("target stage \"nope\" could not be found"),
        "{e}"
    );
}

#[test]
fn global_args_and_build_args_reach_from_lines() {
    let text = "ARG TAG=1.36\nARG IMG=busybox:${TAG}\nFROM $IMG\nFROM ${OTHER:-alpine}\n";
    let p = plan(text, &BuildOptions::default()).unwrap();
    assert_eq!(p.bases, ["busybox:1.36", "alpine"]);
    let opts = BuildOptions {
        build_args: [("TAG".to_string(), "latest".to_string())].into(),
        ..Default::default()
    };
    assert_eq!(plan(text, &opts).unwrap().bases[0], "busybox:latest");
}

#[test]
fn an_empty_base_says_which_argument_to_pass() {
    let e = plan("ARG IMG\nFROM $IMG\n", &BuildOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("Dockerfile:2") && e.contains("--build-arg"),
        "{e}"
    );
}

#[test]
fn a_numeric_from_names_an_earlier_stage() {
    let text = "FROM busybox\nRUN true\nFROM busybox\nCOPY --from=0 /x /x\n";
    let p = plan(text, &BuildOptions::default()).unwrap();
    assert_eq!(p.deps[1], [0]);
    assert_eq!(p.needed.len(), 2);
}

#[test]
fn cache_keys_change_with_every_part() {
    assert_ne!(key_of(&["a", "b"]), key_of(&["ab"]));
    assert_eq!(key_of(&["a", "b"]), key_of(&["a", "b"]));
}

#[test]
fn platform_args_are_defined_for_from_lines_and_declared_stage_args() {
    let host = crate::image::manifest::Platform::host();
    let p = plan(
        "FROM --platform=$BUILDPLATFORM busybox:$TARGETARCH AS b\nFROM b\n",
        &BuildOptions::default(),
    )
    .unwrap();
    assert_eq!(p.bases[0], format!("busybox:{}", host.architecture));
    assert_eq!(
        p.globals.get("TARGETPLATFORM").map(String::as_str),
        Some(format!("{}/{}", host.os, host.architecture).as_str())
    );
    assert_eq!(p.globals.get("BUILDOS").map(String::as_str), Some("linux"));
    // A --build-arg still wins.
    let opts = BuildOptions {
        build_args: [("TARGETARCH".to_string(), "x".to_string())].into(),
        ..Default::default()
    };
    let p = plan("ARG TARGETARCH\nFROM busybox:$TARGETARCH\n", &opts).unwrap();
    assert_eq!(p.bases[0], "busybox:x");
}
