//! The parser's unit tests of lines: continuations, directives, heredocs
//! and garbage input.

use super::parse;
use super::tests::*;
use crate::build::ast::*;

#[test]
fn continuations_comments_and_text() {
    let i = ins("FROM a\n  # a comment\nRUN apt-get update && \\\n# inside\n\n    make \\  \n  install\nrun   echo   x   \nENV A=1\\\\\n");
    assert_eq!(i[0].line, 3);
    assert_eq!(i[0].text, "RUN apt-get update &&     make   install");
    assert_eq!(
        i[0].kind,
        Kind::Run(Run {
            command: sh("apt-get update &&     make   install"),
            mounts: vec![],
            network: None,
            heredocs: vec![]
        })
    );
    assert_eq!(i[1].line, 8);
    assert_eq!(i[1].text, "RUN echo   x");
    assert_eq!(i[2].kind, Kind::Env(pairs(&[("A", "1\\\\")])));
    // A continuation at the end of the file just ends the instruction.
    assert_eq!(ins("FROM a\nUSER x\\")[0].kind, Kind::User("x".into()));
    // CRLF and a BOM.
    let i = ins("\u{feff}FROM a\r\nRUN a \\\r\n b\r\n");
    assert_eq!(i[0].text, "RUN a  b");
}

#[test]
fn escape_directive() {
    let df = ok("# escape=`\n# syntax=docker/dockerfile:1\nFROM mcr/windows\nRUN dir `\n  c:\\ \nCOPY a\\b c:\\dest\\\n");
    assert_eq!(df.escape, '`');
    let i = &df.stages[0].instructions;
    assert_eq!(
        i[0].kind,
        Kind::Run(Run {
            command: sh("dir   c:\\"),
            mounts: vec![],
            network: None,
            heredocs: vec![]
        })
    );
    assert_eq!(copy_of(&i[1]).dest, "c:\\dest\\");
    // Not at the top: just a comment.
    assert_eq!(ok("FROM a\n# escape=`\nRUN x \\\n y").escape, '\\');
    assert_eq!(ok("\n# escape=`\nFROM a").escape, '\\');
    assert_eq!(
        err("# escape=x\nFROM a").message,
        "invalid escape character 'x': use \\ or `"
    );
    assert_eq!(err("# escape=`\n# escape=`\nFROM a").line, 2);
    assert_eq!(
        ok("#check=skip=all\n# Syntax = x\n#escape=\\\nFROM a").escape,
        '\\'
    );
}

fn copy_of(i: &Instruction) -> &Copy {
    match &i.kind {
        Kind::Copy(c) => c,
        k => panic!("{k:?}"),
    }
}

#[test]
fn heredocs() {
    let i = ins("FROM a\nRUN <<EOF\napt-get update\n  make\nEOF\nUSER x\n");
    assert_eq!(
        i[0].kind,
        Kind::Run(Run {
            command: sh("apt-get update\n  make\n"),
            mounts: vec![],
            network: None,
            heredocs: vec![]
        })
    );
    assert_eq!(i[0].text, "RUN <<EOF\napt-get update\n  make\nEOF");
    assert_eq!((i[1].line, &i[1].kind), (6, &Kind::User("x".into())));

    let r = run("RUN <<-EOT\n\t\techo a\n\tEOT");
    assert_eq!(r.command, sh("echo a\n"));

    let r = run("RUN <<\"EOF\"\n#!/usr/bin/env python3\nprint($HOME)\nEOF");
    assert_eq!(r.command, sh(""));
    assert_eq!(
        r.heredocs,
        [Heredoc {
            name: "EOF".into(),
            body: "#!/usr/bin/env python3\nprint($HOME)\n".into(),
            expand: false
        }]
    );

    let r = run("RUN --network=none python3 <<EOF\nprint(1)\nEOF");
    assert_eq!(r.command, sh("python3 <<EOF"));
    assert_eq!(
        r.heredocs,
        [Heredoc {
            name: "EOF".into(),
            body: "print(1)\n".into(),
            expand: true
        }]
    );

    let i = ins("FROM a\nRUN <<A cat > /a && 3<<'B' cat >/b\none\nA\ntwo\nB\nCMD x");
    let Kind::Run(r) = &i[0].kind else { panic!() };
    assert_eq!(r.command, sh("<<A cat > /a && 3<<'B' cat >/b"));
    assert_eq!(
        r.heredocs
            .iter()
            .map(|h| (h.name.as_str(), h.body.as_str(), h.expand))
            .collect::<Vec<_>>(),
        [("A", "one\n", true), ("B", "two\n", false)]
    );
    assert_eq!(
        i[0].text,
        "RUN <<A cat > /a && 3<<'B' cat >/b\none\nA\ntwo\nB"
    );
    assert_eq!(i[1].line, 7);

    let c = copy(
        "COPY --chmod=0755 <<EOF /usr/local/bin/start\n#!/bin/sh\nFROM not-an-instruction\nEOF",
    );
    assert_eq!(
        (c.dest.as_str(), c.sources.len()),
        ("/usr/local/bin/start", 0)
    );
    assert_eq!(
        c.heredocs,
        [Heredoc {
            name: "EOF".into(),
            body: "#!/bin/sh\nFROM not-an-instruction\n".into(),
            expand: true
        }]
    );

    let c = copy("COPY <<a.txt <<b.txt /dest/\nA\na.txt\nB\nb.txt");
    assert_eq!(
        c.heredocs
            .iter()
            .map(|h| (h.name.as_str(), h.body.as_str()))
            .collect::<Vec<_>>(),
        [("a.txt", "A\n"), ("b.txt", "B\n")]
    );
    assert_eq!(c.dest, "/dest/");

    // Empty body; exec form has no heredocs.
    assert_eq!(run("RUN <<EOF\nEOF").command, sh(""));
    assert_eq!(
        run(r#"RUN ["echo", "<<EOF"]"#).command,
        exec(&["echo", "<<EOF"])
    );
    // Not RUN/COPY/ADD: no heredoc.
    assert_eq!(one("CMD cat <<EOF"), Kind::Cmd(sh("cat <<EOF")));

    let e = err("FROM a\n\nRUN <<EOF\necho\n");
    assert_eq!(
        (e.line, e.message.as_str()),
        (
            3,
            "unterminated heredoc <<EOF: end it with a line holding only EOF"
        )
    );
}

#[test]
fn never_panics() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let alphabet: Vec<char> =
        "FROM RUN COPY ADD ENV <<-EOF\"'`\\$#{}[]=, \n\t\r--mount=type:ü😀\u{feff}"
            .chars()
            .collect();
    for _ in 0..3000 {
        let mut text = String::from(if seed.is_multiple_of(2) {
            "FROM a\n"
        } else {
            ""
        });
        for _ in 0..(seed % 97) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            text.push(alphabet[(seed % alphabet.len() as u64) as usize]);
        }
        let _ = parse(&text);
    }
    let huge = format!(
        "FROM a\nRUN {}\n",
        "x \\\n".repeat(20_000) + &"é".repeat(100_000)
    );
    assert!(parse(&huge).is_ok());
    for t in [
        "\\",
        "`",
        "#",
        "FROM a\nRUN <<",
        "FROM a\nCOPY <<EOF",
        "FROM a\nHEALTHCHECK",
        "FROM a\nRUN --",
        "FROM a\nRUN --mount=,,, x",
        "\u{feff}",
    ] {
        let _ = parse(t);
    }
}
