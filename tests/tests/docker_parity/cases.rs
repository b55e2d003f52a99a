//! The parity test's one-command cases: each runs on both sides and is
//! compared by exit code, and by standard output where that is the point.
//! Wherever Docker fails, Berth must fail with the same code and say why
//! in one clear sentence on standard error (see [`clear_error`]); a case
//! made with [`says`] also names words both errors must contain.

/// What to compare.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Compare {
    /// The exit code.
    Code,
    /// The exit code and standard output (ids normalised).
    Output,
}

/// One command, run on both sides.
pub(crate) struct Case {
    /// The arguments (`BB` stands for the image).
    pub(crate) args: &'static [&'static str],
    /// What is compared.
    pub(crate) compare: Compare,
    /// Words both sides' standard error must contain (case aside).
    pub(crate) says: Option<&'static str>,
    /// Why Berth still differs here (reported, not failed).
    pub(crate) known: Option<&'static str>,
}

const fn case(args: &'static [&'static str], compare: Compare) -> Case {
    Case {
        args,
        compare,
        says: None,
        known: None,
    }
}

/// A failing case whose error, on both sides, contains `words`.
const fn says(args: &'static [&'static str], words: &'static str) -> Case {
    Case {
        args,
        compare: Compare::Output,
        says: Some(words),
        known: None,
    }
}

/// As [`says`], standard output aside (dockerd 20.10 writes exec's
/// refusals there).
const fn exec_says(args: &'static [&'static str], words: &'static str) -> Case {
    Case {
        args,
        compare: Compare::Code,
        says: Some(words),
        known: None,
    }
}

/// As [`exec_says`], with a difference in the exit code that is known
/// (`why`): reported, not failed, while the words still match.
const fn known_says(args: &'static [&'static str], words: &'static str, why: &'static str) -> Case {
    Case {
        args,
        compare: Code,
        says: Some(words),
        known: Some(why),
    }
}

use Compare::{Code, Output};

/// `BB` is the image, `pc` a running container, `lc` a stopped one, `pv`
/// a volume, `pn` a network.
pub(crate) const CASES: &[Case] = &[
    // Words after the image or the container are the container's (rows 1, 2, 32).
    case(&["run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", "BB", "-c", "echo x"], Output),
    case(&["run", "--rm", "--network", "none", "--entrypoint", "ls", "BB", "-d", "/etc"], Output),
    case(&["run", "--rm", "--network", "none", "BB", "echo", "--", "-c"], Output),
    case(&["run", "--rm", "--network", "none", "BB", "sh", "-c", "echo $0 $1", "-e", "X=1"], Output),
    case(&["run", "--rm", "--network", "none", "BB", "echo", "-e", "X=1", "-c", "max=200", "-d"], Output),
    case(&["exec", "pc", "ls", "-d", "/etc"], Output),
    // Templates (rows 4, 5, 9, 10, 11).
    case(&["inspect", "-f", "{{.Config.Labels}}", "pc"], Output),
    case(&["inspect", "-f", "{{.Config.Env}} {{.Config.Cmd}}", "pc"], Output),
    case(&["inspect", "-f", "{{json .Config.Labels}} {{index .Config.Labels \"k\"}} {{len .Config.Labels}}", "pc"], Output),
    case(&["inspect", "-f", "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}{{end}} {{if .State.Running}}up{{else}}down{{end}} {{upper .Name}}", "pc"], Output),
    case(&["inspect", "-f", "{{index .Config.Labels \"k\"}} {{if .State.Running}}up{{else}}down{{end}} {{upper .Name}} {{len .Name}}", "pc"], Output),
    case(&["inspect", "-f", "{{if gt (len .Name) 2}}long{{end}} {{if eq .State.Status \"running\"}}eq{{end}} {{lower \"AB\"}} {{split .Name \"p\"}} {{join .Config.Cmd \",\"}}", "pc"], Output),
    case(&["inspect", "-f", "{{.Name}} {{.State.Status}} {{.State.ExitCode}} {{.HostConfig.NetworkMode}}", "pc"], Output),
    case(&["inspect", "-f", "{{json .Config.Cmd}} {{.Config.User}}", "pc"], Output),
    case(&["inspect", "-f", "{{.Config.WorkingDir}} {{json .Config.Entrypoint}} {{json .Config.ExposedPorts}}", "pc"], Output),
    case(&["inspect", "-f", "{{json .Config.Env}}", "pc"], Output),
    case(&["inspect", "-f", "{{json .Config.Volumes}} {{.Config.Hostname}}", "pc"], Output),
    says(&["inspect", "-f", "{{.Nope}}", "pc"], "Nope"),
    says(&["inspect", "-f", "{{.Name", "pc"], "template"),
    case(&["inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", "ec"], Output),
    case(&["image", "inspect", "-f", "{{.Os}} {{.Architecture}}", "BB"], Output),
    // The unpacked size to the byte, links counted as overlay2 counts them (row 33).
    case(&["image", "inspect", "-f", "{{.Size}}", "BB"], Output),
    case(&["images", "--format", "{{.Repository}}:{{.Tag}}", "BB"], Output),
    case(&["version", "-f", "{{.Client.Os}} {{.Server.Os}} {{.Server.Arch}}"], Output),
    case(&["volume", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Scope}}", "pv"], Output),
    case(&["network", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Scope}}", "pn"], Output),
    case(&["inspect", "--type", "volume", "-f", "{{.Name}} {{.Driver}}", "pv"], Output),
    case(&["inspect", "--type", "network", "-f", "{{.Name}}", "pn"], Output),
    case(&["inspect", "--type", "image", "-f", "{{.Os}}", "BB"], Output),
    says(&["inspect", "--type", "container", "-f", "{{.Name}}", "pv"], "pv"),
    case(&["inspect", "-f", "{{.Name}}", "pc", "pn", "pv"], Output),
    says(&["inspect", "-f", "{{.Name}}", "pc", "no-such-thing", "pv"], "no-such-thing"),
    says(&["image", "inspect", "no-such-image:1"], "no-such-image:1"),
    says(&["volume", "inspect", "-f", "{{.Name}}", "no-such-volume"], "no such volume"),
    case(&["ps", "--filter", "name=pc", "--format", "table {{.Names}}\t{{.Image}}\t{{.State}}"], Output),
    case(&["ps", "-q", "--no-trunc", "--filter", "name=pc"], Output),
    case(&["ps", "--filter", "name=pc", "--format", "{{.Command}}|{{.Mounts}}"], Output),
    case(&["ps", "--no-trunc", "--filter", "name=pc", "--format", "{{.Command}}"], Output),
    says(&["ps", "--filter", "status=bogus"], "bogus"),
    // stats: a stopped container's zeros, and templates (rows 9, 30).
    case(&["stats", "--no-stream", "lc"], Output),
    case(&["stats", "--no-stream", "--format", "{{.Name}} {{.NetIO}} {{.BlockIO}}", "pc"], Output),
    case(&["stats", "--no-stream", "--format", "{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.NetIO}} {{.PIDs}}", "lc"], Output),
    case(&["stats", "--no-stream", "--format", "table {{.Container}}\t{{.Name}}\t{{.MemPerc}}", "lc"], Output),
    case(&["stats", "--no-stream", "--format", "json", "lc"], Output),
    case(&["images", "BB"], Output),
    case(&["images", "--format", "{{.Digest}} {{.Size}}", "BB"], Output),
    case(&["images", "--format", "json", "no-such-image"], Output),
    case(&["port", "pc"], Output),
    case(&["logs", "pc"], Output),
    // Counts (row 7) and the Build Cache row (row 5).
    case(&["system", "df", "--format", "{{.Type}}"], Output),
    case(&["system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}"], Output),
    case(&["info", "--format", "{{.Containers}} {{.ContainersRunning}} {{.ContainersStopped}} {{.Images}}"], Output),
    case(&["info", "--format", "{{.OSType}}"], Output),
    // The container's filesystem: Docker's init layer (row 36).
    case(&["exec", "pc", "sh", "-c", "test -f /.dockerenv && echo dockerenv; readlink /etc/mtab; ls /dev/pts /dev/shm >/dev/null && echo dev"], Output),
    // A volume filled from the image keeps owners, modes and times (row 37).
    case(&["run", "--rm", "--network", "none", "BB", "stat", "-c", "%Y %U:%G %a %n", "/etc/passwd", "/etc/group"], Output),
    case(&["run", "--rm", "--network", "none", "-v", "fillv:/etc", "BB", "stat", "-c", "%Y %U:%G %a %n", "/etc/passwd", "/etc/group"], Output),
    // A user's groups come from the image's /etc/group (row 18).
    case(&["run", "--rm", "--network", "none", "BB", "id"], Output),
    case(&["run", "--rm", "--network", "none", "-u", "1000", "BB", "id"], Output),
    case(&["run", "--rm", "--network", "none", "-u", "nobody", "BB", "id"], Output),
    case(&["run", "--rm", "--network", "none", "-u", "root", "BB", "id"], Output),
    case(&["run", "--rm", "--network", "none", "-u", "65534:50", "BB", "id"], Output),
    case(&["exec", "-u", "nobody", "pc", "id"], Output),
    // run flags people use (row 19; --cidfile in the steps).
    case(&["run", "--rm", "--network", "none", "--group-add", "staff", "--group-add", "1234", "BB", "id"], Output),
    case(&["run", "--rm", "--network", "none", "-u", "nobody", "--group-add", "root", "BB", "id"], Output),
    says(&["run", "--rm", "--network", "none", "--group-add", "no-such-group", "BB", "id"], "no-such-group"),
    case(&["run", "--rm", "--network", "none", "-a", "stdout", "BB", "sh", "-c", "echo out; echo err >&2"], Output),
    case(&["run", "--rm", "--network", "none", "--tty=false", "BB", "echo", "hi"], Output),
    case(&["run", "--rm", "--network", "none", "--shm-size", "8m", "BB", "sh", "-c", "df -k /dev/shm | tail -n 1 | awk '{print $2}'"], Output),
    case(&["run", "--rm", "--network", "none", "--security-opt", "no-new-privileges", "BB", "grep", "NoNewPrivs", "/proc/self/status"], Output),
    case(&["run", "--rm", "--network", "none", "--sysctl", "net.ipv4.ip_forward=1", "BB", "cat", "/proc/sys/net/ipv4/ip_forward"], Output),
    case(&["run", "--rm", "--network", "none", "--device", "/dev/null:/dev/xnull", "BB", "sh", "-c", "test -c /dev/xnull && echo char"], Output),
    case(&["run", "--rm", "--network", "none", "--cpuset-cpus", "0", "BB", "true"], Code),
    case(&["run", "--rm", "--network", "none", "--log-opt", "max-size=1m", "BB", "true"], Code),
    case(&["run", "--rm", "--network", "none", "--expose", "7000", "BB", "true"], Code),
    case(&["run", "--rm", "--network", "none", "--pull", "never", "BB", "true"], Code),
    says(&["run", "--rm", "--network", "none", "--pull", "bogus", "BB", "true"], "bogus"),
    case(&["run", "--rm", "--network", "none", "--health-cmd", "true", "BB", "true"], Code),
    case(&["run", "--rm", "--network", "none", "--volumes-from", "pc", "BB", "ls", "/q"], Output),
    says(&["run", "--rm", "--network", "none", "--volumes-from", "no-such-container", "BB", "true"], "no-such-container"),
    says(&["run", "--rm", "--network", "none", "--sysctl", "kernel.hostname=x", "BB", "true"], "kernel.hostname"),
    says(&["run", "--rm", "--network", "none", "--security-opt", "bogus", "BB", "true"], "bogus"),
    says(&["run", "--rm", "--network", "none", "--pull", "never", "no-such/image:1", "true"], "no-such/image:1"),
    // The host's network keeps the host's name (row 27).
    case(&["run", "--rm", "--network", "host", "BB", "hostname"], Output),
    // history, ps -s, logs --details (row 29).
    case(&["history", "BB"], Output),
    case(&["history", "-q", "BB"], Output),
    case(&["image", "history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Size}}|{{.Comment}}", "BB"], Output),
    case(&["history", "--format", "{{.ID}} {{.CreatedSince}}", "BB"], Output),
    case(&["ps", "-s", "--filter", "name=pc", "--format", "{{.Names}} {{.Size}}"], Output),
    case(&["logs", "--details", "--tail", "2", "lc"], Output),
    case(&["logs", "--details", "dc"], Output),
    // Exit codes and their sentences (rows 12-17, 26, 31).
    says(&["run", "--bogus", "BB"], "unknown flag: --bogus"),
    says(&["ps", "--bogus"], "unknown flag: --bogus"),
    says(&["images", "--bogus"], "unknown flag: --bogus"),
    says(&["run"], "run' requires at least 1 argument"),
    says(&["exec", "pc"], "exec' requires at least 2 arguments"),
    says(&["no-such-command"], "unknown command"),
    says(&["volume", "bogus"], "unknown command"),
    says(&["image", "ls", "--filter"], "flag needs an argument: --filter"),
    says(&["ps", "-n", "abc"], "invalid argument \"abc\" for"),
    says(&["logs"], "logs' requires 1 argument"),
    says(&["rename", "a", "b", "c"], "rename' requires 2 arguments"),
    says(&["volume", "create", "x", "y"], "create' requires at most 1 argument"),
    says(&["commit"], "commit' requires at least 1 and at most 2 arguments"),
    case(&[], Code),
    case(&["volume"], Code),
    // The command and what is wrong with it, in runc's words (current
    // Docker says "is a directory" where dockerd 20.10's runc says
    // "permission denied": both give 126).
    says(&["run", "--rm", "--network", "none", "BB", "/etc"], "exec: \"/etc\": "),
    says(&["run", "--rm", "--network", "none", "BB", "/etc/passwd"], "exec: \"/etc/passwd\": permission denied"),
    says(&["run", "--rm", "--network", "none", "BB", "no-such-command"], "exec: \"no-such-command\": executable file not found in $PATH"),
    case(&["run", "--rm", "--network", "none", "BB", "sh", "-c", "exit 3"], Code),
    says(&["run", "--rm", "--env-file", "/nonexistent", "BB", "true"], "/nonexistent"),
    says(&["run", "--rm", "-p", "abc", "BB", "true"], "abc"),
    says(&["run", "--rm", "-p", "99999:80", "BB", "true"], "99999"),
    says(&["run", "--rm", "-m", "64x", "BB", "true"], "64x"),
    says(&["run", "--rm", "-v", "/x:relative", "BB", "true"], "relative"),
    says(&["run", "--rm", "--restart", "always", "BB", "true"], "--rm"),
    says(&["run", "--rm", "--network", "no-such-net", "BB", "true"], "no-such-net"),
    says(&["run", "--rm", "--network", "none", "--cpus", "999", "BB", "true"], "CPUs"),
    says(&["create", "--name", "pc", "BB"], "\"/pc\" is already in use"),
    exec_says(&["exec", "pc", "/etc/passwd"], "exec: \"/etc/passwd\": permission denied"),
    known_says(&["exec", "pc", "no-such-command"], "exec: \"no-such-command\": executable file not found in $PATH", "dockerd 20.10 answers 126; current Docker documents 127, which Berth follows"),
    exec_says(&["exec", "-u", "no-such-user", "pc", "id"], "no-such-user"),
    // Errors about missing things name them as Docker's do (row 38).
    says(&["stop", "no-such-container"], "No such container: no-such-container"),
    says(&["logs", "no-such-container"], "No such container: no-such-container"),
    says(&["inspect", "no-such-thing"], "No such object: no-such-thing"),
    says(&["rmi", "no-such-image:1"], "No such image: no-such-image:1"),
    case(&["rmi", "-f", "no-such-image:1"], Output),
    says(&["volume", "inspect", "no-such-volume"], "no such volume"),
    says(&["network", "inspect", "no-such-network"], "network no-such-network not found"),
    says(&["pull", "127.0.0.1:1/no/such:1"], "connection refused"),
    // Prunes ask on standard output and read the answer (none: no) from
    // standard input, a terminal or not (row 8).
    case(&["image", "prune", "-a"], Output),
    case(&["image", "prune"], Output),
    case(&["container", "prune"], Output),
    case(&["network", "prune"], Output),
    case(&["system", "prune"], Output),
];

/// Why Berth's standard error is not one clear sentence, if it is not: it
/// must say something, its first line must be the sentence (no panic, no
/// debug dump, no Rust error chain, no parser's `error:` line), and any
/// further lines may only point to usage or help.
pub(crate) fn clear_error(stderr: &str) -> Option<String> {
    let text = stderr.trim();
    let Some(first) = text.lines().next() else {
        return Some("nothing on standard error".into());
    };
    let first = first.trim_start_matches("Error: ");
    let noise = [
        "panicked",
        "RUST_BACKTRACE",
        "Status {",
        "Caused by",
        "(os error",
        "\nerror:",
    ];
    if let Some(n) = noise.iter().find(|n| format!("\n{text}").contains(*n)) {
        return Some(format!("it contains {n:?}"));
    }
    if first.trim().len() < 8 {
        return Some(format!("its first line {first:?} says too little"));
    }
    let hint = |l: &str| {
        let l = l.trim();
        l.is_empty() || l.starts_with("Usage:") || l.starts_with("See '") || l.starts_with("Run '")
    };
    if let Some(extra) = text.lines().skip(1).find(|l| !hint(l)) {
        return Some(format!("a second sentence follows: {extra:?}"));
    }
    None
}
