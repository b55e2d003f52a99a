//! What of the context a Dockerfile can read: the sources of its COPY and
//! ADD lines (not `--from` another stage or image, not URLs) and of its
//! `RUN --mount=type=bind` mounts, as patterns of path components. Only
//! literal paths and simple globs (`*`, `?`) are read; anything unusual
//! (variables, heredocs, quotes, `**`, classes, `..`, unknown flags, the
//! whole context as a source, an escape directive) gives no answer, and
//! the whole context is sent as before.

/// The context paths a Dockerfile can read and the images its stages
/// start from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Uses {
    /// Each source as its path components (globs allowed per component).
    patterns: Vec<Vec<String>>,
    /// The images FROM names (not earlier stages, not scratch): their
    /// ONBUILD triggers could read anything.
    pub bases: Vec<String>,
}

impl Uses {
    /// Reads a Dockerfile; `None` when it uses the context in a way this
    /// reader does not follow (then everything must be sent).
    pub fn of(text: &str) -> Option<Uses> {
        let mut uses = Uses::default();
        let mut stages: Vec<String> = Vec::new();
        for line in logical_lines(text)? {
            let (word, rest) = line
                .trim()
                .split_once(char::is_whitespace)
                .unwrap_or((line.trim(), ""));
            match word.to_ascii_lowercase().as_str() {
                "from" => uses.from(rest, &mut stages)?,
                "copy" => uses.copy(rest, false)?,
                "add" => uses.copy(rest, true)?,
                "run" => uses.run(rest)?,
                _ => {}
            }
        }
        Some(uses)
    }

    /// Keeps `rel` (the Dockerfile, the ignore file) whatever the sources.
    pub fn keep(&mut self, rel: &str) {
        let comps: Vec<String> = rel
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(String::from)
            .collect();
        if !comps.is_empty() {
            self.patterns.push(comps);
        }
    }

    /// Whether `rel` is at or under a path some source names.
    pub fn needed(&self, rel: &str) -> bool {
        let comps: Vec<&str> = rel.split('/').collect();
        self.patterns
            .iter()
            .any(|p| p.len() <= comps.len() && matches(p, &comps))
    }

    /// Whether `rel` is exactly a path some source names.
    pub fn named(&self, rel: &str) -> bool {
        let comps: Vec<&str> = rel.split('/').collect();
        self.patterns
            .iter()
            .any(|p| p.len() == comps.len() && matches(p, &comps))
    }

    /// Whether the folder `rel` may hold a path some source names.
    pub fn leads_to(&self, rel: &str) -> bool {
        let comps: Vec<&str> = rel.split('/').collect();
        self.patterns
            .iter()
            .any(|p| p.len() > comps.len() && matches(p, &comps))
    }

    fn from(&mut self, rest: &str, stages: &mut Vec<String>) -> Option<()> {
        let words: Vec<&str> = rest
            .split_whitespace()
            .filter(|w| !w.starts_with("--"))
            .collect();
        let image = *words.first()?;
        if image.contains('$') {
            return None;
        }
        let known = image.eq_ignore_ascii_case("scratch")
            || stages.iter().any(|s| s.eq_ignore_ascii_case(image));
        if !known {
            self.bases.push(image.to_string());
        }
        if let [_, as_, name] = words[..] {
            if as_.eq_ignore_ascii_case("as") {
                stages.push(name.to_string());
            }
        }
        Some(())
    }

    fn copy(&mut self, rest: &str, add: bool) -> Option<()> {
        let mut rest = rest.trim_start();
        while let Some(flag) = rest.strip_prefix("--") {
            let (flag, after) = flag.split_once(char::is_whitespace).unwrap_or((flag, ""));
            let name = flag.split_once('=').map_or(flag, |(n, _)| n);
            match name {
                "from" => return Some(()),
                "chown" | "chmod" | "link" | "checksum" | "keep-git-dir" => {}
                _ => return None,
            }
            rest = after.trim_start();
        }
        let args: Vec<String> = if rest.starts_with('[') {
            serde_json::from_str(rest).ok()?
        } else if rest.contains(['"', '\'']) {
            return None;
        } else {
            rest.split_whitespace().map(String::from).collect()
        };
        let (_, sources) = args.split_last()?;
        if sources.is_empty() {
            return None;
        }
        for s in sources {
            if add && (s.contains("://") || s.starts_with("git@")) {
                continue;
            }
            self.pattern(s)?;
        }
        Some(())
    }

    fn run(&mut self, rest: &str) -> Option<()> {
        for word in rest.split_whitespace() {
            let Some(flag) = word.strip_prefix("--") else {
                break;
            };
            if flag == "mount" {
                return None;
            }
            let Some(mount) = flag.strip_prefix("mount=") else {
                continue;
            };
            if mount.contains(['"', '\'']) {
                return None;
            }
            let (mut kind, mut source, mut from) = ("bind", ".", false);
            for field in mount.split(',') {
                match field.split_once('=') {
                    Some(("type", v)) => kind = v,
                    Some(("source" | "src", v)) => source = v,
                    Some(("from", _)) => from = true,
                    _ => {}
                }
            }
            if kind == "bind" && !from {
                self.pattern(source)?;
            }
        }
        Some(())
    }

    /// Adds a source; `None` for one this reader does not follow.
    fn pattern(&mut self, source: &str) -> Option<()> {
        if source.contains(['$', '\\', '[']) || source.contains("**") {
            return None;
        }
        let comps: Vec<String> = source
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(String::from)
            .collect();
        if comps.is_empty() || comps.iter().any(|c| c == "..") {
            return None;
        }
        self.patterns.push(comps);
        Some(())
    }
}

impl crate::Client {
    /// What of the context a build can read, when that is known: never
    /// with `--pull` (a new base could bring ONBUILD triggers), and only
    /// when every base image is stored here without ONBUILD triggers
    /// (they could read anything of the context).
    pub(super) async fn context_uses(&self, options: &berth_api::v1::BuildOptions) -> Option<Uses> {
        if options.pull {
            return None;
        }
        let uses = Uses::of(std::str::from_utf8(&options.dockerfile_text).ok()?)?;
        for base in &uses.bases {
            let detail = self.inspect_image(base).await.ok()?;
            let config: serde_json::Value = serde_json::from_str(&detail.config_json).ok()?;
            let triggers = &config["config"]["OnBuild"];
            if triggers.as_array().is_some_and(|t| !t.is_empty()) {
                return None;
            }
        }
        Some(uses)
    }
}

/// The Dockerfile's instructions, continuations joined, comments and
/// blank lines dropped; `None` with heredocs or an escape directive.
fn logical_lines(text: &str) -> Option<Vec<String>> {
    if text.contains("<<") {
        return None;
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    for raw in text.lines() {
        let t = raw.trim();
        if let Some(comment) = t.strip_prefix('#') {
            let directive = comment.trim_start().to_ascii_lowercase();
            if directive.replace(' ', "").starts_with("escape=") {
                return None;
            }
            continue;
        }
        if t.is_empty() {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => {
                cur.push_str(part);
                cur.push(' ');
            }
            None => {
                cur.push_str(t);
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    Some(out)
}

/// Whether the first `comps.len()` (or `pattern.len()`) components match.
fn matches(pattern: &[String], comps: &[&str]) -> bool {
    pattern.iter().zip(comps).all(|(p, c)| glob(p, c))
}

/// One component against a pattern of `*` (any run) and `?` (one
/// character).
fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut back: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            back = Some((pi, ni));
            pi += 1;
        } else if let Some((bp, bn)) = back {
            pi = bp + 1;
            ni = bn + 1;
            back = Some((bp, bn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_of_copy_add_and_bind_mounts_are_read() {
        let u = Uses::of(
            "# syntax=docker/dockerfile:1\nFROM busybox AS build\nCOPY --chown=1:1 src/ \\\n  /src/\nADD [\"a b.txt\", \"http://x/y\", \"/d/\"]\nRUN --mount=type=bind,source=tools,target=/t --mount=type=cache,target=/c make\nCOPY --from=build /out /out\nFROM build\nCOPY ./conf/*.toml /etc/\n",
        )
        .unwrap();
        assert_eq!(u.bases, ["busybox"], "a stage is no base");
        for yes in [
            "src",
            "src/main.rs",
            "a b.txt",
            "tools/x/y",
            "conf/app.toml",
        ] {
            assert!(u.needed(yes), "{yes}");
        }
        for no in [
            "out",
            "b.txt",
            "conf",
            "conf/app.yaml",
            "conf/x/app.toml",
            "y",
        ] {
            assert!(!u.needed(no), "{no}");
        }
        assert!(u.leads_to("conf") && !u.leads_to("src") && !u.leads_to("other"));
        assert!(u.named("conf/app.toml") && !u.named("src/main.rs"));
    }

    #[test]
    fn anything_unusual_gives_no_answer() {
        for text in [
            "FROM b\nCOPY . /app\n",
            "FROM b\nCOPY ./ /app\n",
            "FROM b\nARG D=x\nCOPY $D /app\n",
            "FROM $BASE\nCOPY a /app\n",
            "FROM b\nCOPY ../a /app\n",
            "FROM b\nCOPY **/a /app\n",
            "FROM b\nCOPY [ab] /app\n",
            "FROM b\nCOPY \"a\" /app\n",
            "FROM b\nCOPY --parents a /app\n",
            "FROM b\nCOPY <<EOF /f\nx\nEOF\n",
            "# escape=`\nFROM b\nCOPY a /app\n",
            "FROM b\nRUN --mount=type=bind,target=/src make\n",
            "FROM b\nRUN --mount=target=/src make\n",
            "FROM b\nRUN --mount type=bind,source=a,target=/a make\n",
            "FROM b\nCOPY a\n",
        ] {
            assert_eq!(Uses::of(text), None, "{text}");
        }
    }

    #[test]
    fn globs_match_within_one_component() {
        assert!(glob("*.rs", "main.rs") && glob("*", ".hidden") && glob("a?c", "abc"));
        assert!(glob("*a*b", "xxaxxb") && !glob("*.rs", "main.rc") && !glob("a?", "a"));
    }
}
