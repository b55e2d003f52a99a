//! Command-line mistakes told as Docker's CLI tells them: one sentence
//! (`unknown flag: --bogus`, `'berth run' requires at least 1 argument`,
//! `unknown command: berth nope`), a pointer to the command's help, and
//! Docker's exit code (125 for a bad flag or value, 1 for a missing
//! argument or an unknown command, 0 for help asked for or shown because
//! a command group was given alone).

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// What to print for a parse error, where, and the exit code.
pub struct Refusal {
    /// The text, ending in a newline.
    pub text: String,
    /// Whether it goes to standard error.
    pub to_stderr: bool,
    /// The exit code.
    pub code: i32,
}

/// Docker's answer to clap's `error` for the command line `args` (the
/// program's name first), parsed against `cli`.
pub fn refusal(e: &clap::Error, cli: &clap::Command, args: &[String]) -> Refusal {
    let mut code = match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            return Refusal {
                text: e.render().to_string(),
                to_stderr: false,
                code: 0,
            }
        }
        // `berth` or `berth volume` alone: the help, on standard error,
        // with 0, as Docker's.
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            return Refusal {
                text: e.render().to_string(),
                to_stderr: true,
                code: 0,
            }
        }
        ErrorKind::MissingRequiredArgument
        | ErrorKind::MissingSubcommand
        | ErrorKind::InvalidSubcommand
        | ErrorKind::TooFewValues
        | ErrorKind::WrongNumberOfValues => 1,
        _ => 125,
    };
    let path = command_path(cli, args);
    let (sentence, help) = match e.kind() {
        ErrorKind::UnknownArgument => {
            let arg = strings(e, ContextKind::InvalidArg).join(" ");
            let sentence = if arg.starts_with('-') {
                format!("unknown flag: {arg}")
            } else {
                // A word too many: 1, as a word too few.
                code = 1;
                let (min, max) = positionals(cli, &path);
                word_count(&path, min, max)
            };
            (sentence, format!("See '{path} --help'."))
        }
        ErrorKind::InvalidSubcommand => (
            format!(
                "unknown command: {path} {}",
                strings(e, ContextKind::InvalidSubcommand).join(" ")
            ),
            format!("Run '{path} --help' for more information."),
        ),
        ErrorKind::MissingRequiredArgument
        | ErrorKind::TooFewValues
        | ErrorKind::WrongNumberOfValues => {
            let missing = strings(e, ContextKind::InvalidArg);
            let flags: Vec<&String> = missing.iter().filter(|m| m.starts_with('-')).collect();
            let sentence = if let Some(flag) = flags.first() {
                format!("'{path}' requires the flag {flag}")
            } else {
                // As cobra: "requires 1 argument" for a fixed number of
                // words, "requires at least 2 arguments" for more.
                let (mut min, max) = positionals(cli, &path);
                if let Some(n) = [ContextKind::MinValues, ContextKind::ExpectedNumValues]
                    .into_iter()
                    .find_map(|k| match e.get(k) {
                        Some(ContextValue::Number(n)) => Some(*n as usize),
                        _ => None,
                    })
                {
                    min = min.max(n);
                }
                word_count(&path, min.max(missing.len()).max(1), max)
            };
            (sentence, format!("See '{path} --help'."))
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let arg = strings(e, ContextKind::InvalidArg).join(" ");
            let arg = arg.split(' ').next().unwrap_or_default();
            let value = strings(e, ContextKind::InvalidValue).join(" ");
            let valid = strings(e, ContextKind::ValidValue);
            let why = std::error::Error::source(e).map(|s| s.to_string());
            let sentence = match (valid.is_empty(), why) {
                _ if value.is_empty() && e.kind() == ErrorKind::InvalidValue => {
                    format!("flag needs an argument: {arg}")
                }
                (false, _) => format!(
                    "invalid argument \"{value}\" for \"{arg}\" flag: must be one of {}",
                    valid.join(", ")
                ),
                (true, Some(why)) => {
                    format!("invalid argument \"{value}\" for \"{arg}\" flag: {why}")
                }
                (true, None) => format!("invalid argument \"{value}\" for \"{arg}\" flag"),
            };
            (sentence, format!("See '{path} --help'."))
        }
        _ => (first_line(e), format!("See '{path} --help'.")),
    };
    Refusal {
        text: format!("Error: {sentence}\n{help}\n"),
        to_stderr: true,
        code,
    }
}

/// The command the words name (`berth run`, `berth volume ls`): the
/// leading subcommands of `args`, past flags and the values of those that
/// take one.
fn command_path(cli: &clap::Command, args: &[String]) -> String {
    let mut path = vec![cli.get_name().to_string()];
    let mut cmd = cli;
    let mut words = args.iter().skip(1);
    while let Some(w) = words.next() {
        if let Some(flag) = w.strip_prefix('-') {
            let takes_value = !w.contains('=')
                && cmd.get_arguments().any(|a| {
                    let named = match flag.strip_prefix('-') {
                        Some(long) => a.get_long() == Some(long),
                        None => flag.len() == 1 && a.get_short() == flag.chars().next(),
                    };
                    named && a.get_action().takes_values()
                });
            if takes_value {
                words.next();
            }
            continue;
        }
        match cmd.find_subcommand(w) {
            Some(sub) => {
                path.push(sub.get_name().to_string());
                cmd = sub;
            }
            None => break,
        }
    }
    path.join(" ")
}

/// How many words the command at `path` takes: at least, and at most
/// (`None`: no limit).
fn positionals(cli: &clap::Command, path: &str) -> (usize, Option<usize>) {
    let mut cmd = cli;
    for name in path.split(' ').skip(1) {
        match cmd.find_subcommand(name) {
            Some(sub) => cmd = sub,
            None => break,
        }
    }
    let (mut min, mut max) = (0, Some(0));
    for a in cmd.get_positionals() {
        let range = a.get_num_args().unwrap_or_default();
        let most = match (range.max_values(), a.get_action()) {
            (_, clap::ArgAction::Append) | (usize::MAX, _) => None,
            (n, _) => Some(n),
        };
        if a.is_required_set() {
            min += range.min_values().max(1);
        }
        max = max.zip(most).map(|(x, y)| x + y);
    }
    (min, max)
}

/// Cobra's sentence for a command given too few or too many words.
fn word_count(path: &str, min: usize, max: Option<usize>) -> String {
    let s = |n: usize| if n == 1 { "" } else { "s" };
    match max {
        Some(max) if max == min => format!("'{path}' requires {min} argument{}", s(min)),
        Some(max) if min == 0 => format!("'{path}' requires at most {max} argument{}", s(max)),
        Some(max) => format!("'{path}' requires at least {min} and at most {max} arguments"),
        None => format!("'{path}' requires at least {min} argument{}", s(min)),
    }
}

/// A context's strings.
fn strings(e: &clap::Error, kind: ContextKind) -> Vec<String> {
    match e.get(kind) {
        Some(ContextValue::String(s)) => vec![s.clone()],
        Some(ContextValue::Strings(v)) => v.clone(),
        Some(ContextValue::StyledStr(s)) => vec![s.to_string()],
        Some(ContextValue::StyledStrs(v)) => v.iter().map(|s| s.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// The first line of clap's own message, without its `error: `.
fn first_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    text.lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::refusal;
    use clap::{Parser, Subcommand};

    #[derive(Parser, Debug)]
    #[command(name = "berth")]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Subcommand, Debug)]
    enum Command {
        Run {
            #[arg(long)]
            pull: Option<Pull>,
            #[arg(required = true)]
            image: Vec<String>,
        },
        Exec {
            #[arg(num_args = 2.., required = true)]
            words: Vec<String>,
        },
        Logs {
            container: String,
        },
        Commit {
            container: String,
            reference: Option<String>,
        },
    }

    #[derive(clap::ValueEnum, Clone, Debug)]
    enum Pull {
        Always,
        Never,
    }

    fn told(args: &[&str]) -> (i32, String) {
        use clap::CommandFactory;
        let e = Cli::try_parse_from(args).unwrap_err();
        let words: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let r = refusal(&e, &Cli::command(), &words);
        (r.code, r.text)
    }

    #[test]
    fn mistakes_are_one_sentence_and_dockers_codes() {
        assert_eq!(
            told(&["berth", "run", "--bogus", "x"]),
            (
                125,
                "Error: unknown flag: --bogus\nSee 'berth run --help'.\n".into()
            )
        );
        assert_eq!(
            told(&["berth", "run"]),
            (
                1,
                "Error: 'berth run' requires at least 1 argument\nSee 'berth run --help'.\n".into()
            )
        );
        assert_eq!(
            told(&["berth", "exec", "c"]).1,
            "Error: 'berth exec' requires at least 2 arguments\nSee 'berth exec --help'.\n"
        );
        assert_eq!(
            told(&["berth", "logs"]).1,
            "Error: 'berth logs' requires 1 argument\nSee 'berth logs --help'.\n"
        );
        let commit = "Error: 'berth commit' requires at least 1 and at most 2 arguments\nSee 'berth commit --help'.\n";
        assert_eq!(told(&["berth", "commit"]), (1, commit.into()));
        assert_eq!(
            told(&["berth", "commit", "a", "b", "c"]),
            (1, commit.into())
        );
        assert_eq!(
            told(&["berth", "nope"]),
            (
                1,
                "Error: unknown command: berth nope\nRun 'berth --help' for more information.\n"
                    .into()
            )
        );
        let (code, text) = told(&["berth", "run", "--pull", "bogus", "x"]);
        assert_eq!(code, 125);
        assert_eq!(
            text,
            "Error: invalid argument \"bogus\" for \"--pull\" flag: must be one of always, never\nSee 'berth run --help'.\n"
        );
        let (code, text) = told(&["berth", "run", "--pull=bogus", "x"]);
        assert_eq!(code, 125);
        assert!(text.ends_with("See 'berth run --help'.\n"), "{text}");
        assert_eq!(
            told(&["berth", "run", "x", "--pull"]).1,
            "Error: flag needs an argument: --pull\nSee 'berth run --help'.\n"
        );
        assert_eq!(told(&["berth"]).0, 0, "help shown for a group given alone");
    }
}
