//! Health checks, as Docker runs them: the container's check (its own
//! `--health-*` settings over the image's `HEALTHCHECK`) runs inside the
//! container like an `exec`, every interval while the container runs
//! (the start interval while it is starting within its start period).
//! Each result goes into `State.Health` (status, failing streak, the last
//! [`MAX_LOG`] results); a change of status is a `health_status: …`
//! event. A check that outlives its timeout is killed and counts as a
//! failure. The checks of a run stop when it stops; an agent that starts
//! again resumes them for the containers it adopts.
//!
//! Build steps (containers labelled `dev.berth.build`) are never checked,
//! as `docker build` never checks its steps.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::config::HealthConfig;
use crate::error::{Error, Result};

/// Docker's default time between checks.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// Docker's default time a check may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Docker's default time between checks during the start period.
pub const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
/// Docker's default failures in a row before `unhealthy`.
pub const DEFAULT_RETRIES: u32 = 3;
/// The most output kept of one check (Docker's `maxOutputLen`).
pub const MAX_OUTPUT: usize = 4096;
/// How many results `State.Health.Log` keeps (Docker's `maxLogEntries`).
pub const MAX_LOG: usize = 5;
/// The shortest duration a health check setting may have (other than 0).
pub const MINIMUM_NS: i64 = 1_000_000;

/// `State.Health.Status` before the first passing check.
pub const STARTING: &str = "starting";
/// `State.Health.Status` after a passing check.
pub const HEALTHY: &str = "healthy";
/// `State.Health.Status` after too many failures in a row.
pub const UNHEALTHY: &str = "unhealthy";

/// A container's health, as `inspect` shows it in `State.Health`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Health {
    /// [`STARTING`], [`HEALTHY`] or [`UNHEALTHY`].
    pub status: String,
    /// Failed checks in a row.
    pub failing_streak: u32,
    /// The last results, oldest first.
    pub log: Vec<HealthResult>,
}

impl Health {
    /// The status as `ps` shows it in parentheses after "Up …".
    pub fn label(&self) -> String {
        if self.status == STARTING {
            "health: starting".into()
        } else {
            self.status.clone()
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthResult {
    /// When it started.
    pub start: DateTime<Utc>,
    /// When it ended.
    pub end: DateTime<Utc>,
    /// Its exit code (0 passes; -1 when it timed out or could not run).
    pub exit_code: i32,
    /// Its output (stdout and stderr), cut at [`MAX_OUTPUT`] bytes.
    pub output: String,
}

/// The check's timing, with Docker's defaults for what is unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Between checks.
    pub interval: Duration,
    /// How long one check may take.
    pub timeout: Duration,
    /// Failures within this time of the start do not count.
    pub start_period: Duration,
    /// Between checks while starting within the start period.
    pub start_interval: Duration,
    /// Failures in a row that make the container unhealthy.
    pub retries: u32,
}

impl Timing {
    /// The timing of `h`.
    pub fn of(h: &HealthConfig) -> Timing {
        let or = |ns: i64, d: Duration| {
            if ns > 0 {
                Duration::from_nanos(ns as u64)
            } else {
                d
            }
        };
        Timing {
            interval: or(h.interval, DEFAULT_INTERVAL),
            timeout: or(h.timeout, DEFAULT_TIMEOUT),
            start_period: or(h.start_period, Duration::ZERO),
            start_interval: or(h.start_interval, DEFAULT_START_INTERVAL),
            retries: if h.retries > 0 {
                h.retries as u32
            } else {
                DEFAULT_RETRIES
            },
        }
    }

    /// The wait before the next check, `since_start` after the start.
    pub fn next_interval(&self, status: &str, since_start: Duration) -> Duration {
        if since_start < self.start_period && status == STARTING {
            self.start_interval
        } else {
            self.interval
        }
    }
}

/// The image's `Healthcheck` as a [`HealthConfig`].
pub fn from_image(v: &Value) -> Option<HealthConfig> {
    serde_json::from_value(v.clone()).ok()
}

/// The container's check: the user's settings with the image's filling
/// in what they leave unset (as Docker merges them at create).
pub fn merged(user: Option<&HealthConfig>, image: Option<HealthConfig>) -> Option<HealthConfig> {
    let Some(user) = user else { return image };
    let mut h = user.clone();
    if let Some(i) = image {
        if h.test.is_empty() {
            h.test = i.test;
        }
        for (mine, theirs) in [
            (&mut h.interval, i.interval),
            (&mut h.timeout, i.timeout),
            (&mut h.start_period, i.start_period),
            (&mut h.start_interval, i.start_interval),
        ] {
            if *mine == 0 {
                *mine = theirs;
            }
        }
        if h.retries == 0 {
            h.retries = i.retries;
        }
    }
    Some(h)
}

/// Refuses settings Docker's engine refuses, with its sentences.
pub fn validate(h: &HealthConfig) -> Result<()> {
    for (name, ns) in [
        ("Interval", h.interval),
        ("Timeout", h.timeout),
        ("StartPeriod", h.start_period),
        ("StartInterval", h.start_interval),
    ] {
        if ns != 0 && ns < MINIMUM_NS {
            return Err(Error::InvalidArgument(format!(
                "{name} in Healthcheck cannot be less than 1ms"
            )));
        }
    }
    if h.retries < 0 {
        return Err(Error::InvalidArgument(
            "Retries in Healthcheck cannot be negative".into(),
        ));
    }
    Ok(())
}

/// The command a check runs, or `None` for no check (`NONE`, empty);
/// `CMD-SHELL` runs in the image's `shell` (`/bin/sh -c` when empty).
pub fn probe(h: &HealthConfig, shell: &[String]) -> Option<Vec<String>> {
    let (kind, rest) = h.test.split_first()?;
    match kind.as_str() {
        "CMD" if !rest.is_empty() => Some(rest.to_vec()),
        "CMD-SHELL" if !rest.is_empty() => {
            let mut argv = if shell.is_empty() {
                vec!["/bin/sh".into(), "-c".into()]
            } else {
                shell.to_vec()
            };
            argv.push(rest.join(" "));
            Some(argv)
        }
        _ => None,
    }
}

/// `Config.Healthcheck` as Docker shows it (unset durations left out).
pub fn config_json(h: &HealthConfig) -> Value {
    let mut v = json!({ "Test": h.test });
    for (name, n) in [
        ("Interval", h.interval),
        ("Timeout", h.timeout),
        ("StartPeriod", h.start_period),
        ("StartInterval", h.start_interval),
        ("Retries", h.retries as i64),
    ] {
        if n != 0 {
            v[name] = json!(n);
        }
    }
    v
}

/// `State.Health` as Docker shows it.
pub fn state_json(h: &Health) -> Value {
    let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Nanos, true);
    json!({
        "Status": h.status,
        "FailingStreak": h.failing_streak,
        "Log": h.log.iter().map(|r| json!({
            "Start": time(&r.start),
            "End": time(&r.end),
            "ExitCode": r.exit_code,
            "Output": r.output,
        })).collect::<Vec<_>>(),
    })
}

/// A duration as Go prints it ("30s", "1m30s", "500ms", "1.5s").
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos() as u64;
    let frac = |n: u64, unit: u64, width: usize| {
        let (whole, rem) = (n / unit, n % unit);
        if rem == 0 {
            whole.to_string()
        } else {
            let digits = format!("{rem:0width$}");
            format!("{whole}.{}", digits.trim_end_matches('0'))
        }
    };
    match ns {
        0 => "0s".into(),
        n if n < 1_000 => format!("{n}ns"),
        n if n < 1_000_000 => format!("{}µs", frac(n, 1_000, 3)),
        n if n < 1_000_000_000 => format!("{}ms", frac(n, 1_000_000, 6)),
        n => {
            let (h, m) = (n / 3_600_000_000_000, n / 60_000_000_000 % 60);
            let s = frac(n % 60_000_000_000, 1_000_000_000, 9);
            match (h, m) {
                (0, 0) => format!("{s}s"),
                (0, m) => format!("{m}m{s}s"),
                (h, m) => format!("{h}h{m}m{s}s"),
            }
        }
    }
}

/// Applies one result to `h` as Docker does: a pass makes it healthy; a
/// failure adds to the streak (not while starting within the start
/// period) and makes it unhealthy at `retries`.
pub fn apply(h: &mut Health, result: HealthResult, t: &Timing, started: Option<DateTime<Utc>>) {
    if result.exit_code == 0 {
        h.failing_streak = 0;
        h.status = HEALTHY.into();
    } else {
        let since = started
            .and_then(|s| (result.start - s).to_std().ok())
            .unwrap_or_default();
        if !(h.status == STARTING && since < t.start_period) {
            h.failing_streak += 1;
            if h.failing_streak >= t.retries {
                h.status = UNHEALTHY.into();
            }
        }
    }
    h.log.push(result);
    let extra = h.log.len().saturating_sub(MAX_LOG);
    h.log.drain(..extra);
}

/// The health a run starts with: `starting` with no failures (the log
/// kept), or none when the container has no check.
pub fn at_start(old: Option<Health>, checked: bool) -> Option<Health> {
    checked.then(|| Health {
        status: STARTING.into(),
        failing_streak: 0,
        log: old.map(|h| h.log).unwrap_or_default(),
    })
}

mod check;

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(test: &[&str]) -> HealthConfig {
        HealthConfig {
            test: test.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn result(code: i32, start: DateTime<Utc>) -> HealthResult {
        HealthResult {
            start,
            end: start,
            exit_code: code,
            output: String::new(),
        }
    }

    #[test]
    fn go_durations_print_as_go_s() {
        for (ns, text) in [
            (0, "0s"),
            (500_000_000, "500ms"),
            (1_500_000_000, "1.5s"),
            (30_000_000_000, "30s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (1_000_000, "1ms"),
            (1_500, "1.5µs"),
        ] {
            assert_eq!(go_duration(Duration::from_nanos(ns)), text);
        }
    }

    #[test]
    fn probes_from_tests() {
        assert_eq!(
            probe(&cfg(&["CMD", "true", "x"]), &[]),
            Some(vec!["true".into(), "x".into()])
        );
        assert_eq!(
            probe(&cfg(&["CMD-SHELL", "exit 1"]), &[]),
            Some(vec!["/bin/sh".into(), "-c".into(), "exit 1".into()])
        );
        assert_eq!(probe(&cfg(&["NONE"]), &[]), None);
        assert_eq!(probe(&cfg(&[]), &[]), None);
        assert_eq!(probe(&cfg(&["CMD"]), &[]), None);
        let bash = ["/bin/bash".to_string(), "-ec".to_string()];
        assert_eq!(
            probe(&cfg(&["CMD-SHELL", "x"]), &bash),
            Some(vec!["/bin/bash".into(), "-ec".into(), "x".into()])
        );
    }

    #[test]
    fn the_users_settings_win_and_the_images_fill_in() {
        let image = HealthConfig {
            interval: 5,
            retries: 7,
            ..cfg(&["CMD", "true"])
        };
        let user = HealthConfig {
            interval: 9,
            ..Default::default()
        };
        let m = merged(Some(&user), Some(image.clone())).expect("a check");
        assert_eq!((m.test, m.interval, m.retries), (image.test.clone(), 9, 7));
        assert_eq!(merged(None, Some(image.clone())), Some(image));
        let none = merged(Some(&cfg(&["NONE"])), Some(cfg(&["CMD", "x"])));
        assert_eq!(none.as_ref().and_then(|h| probe(h, &[])), None);
        assert_eq!(merged(None, None), None);
    }

    #[test]
    fn settings_under_a_millisecond_are_refused() {
        let h = HealthConfig {
            interval: 999_999,
            ..Default::default()
        };
        let e = validate(&h).expect_err("refused");
        assert_eq!(
            e.to_string(),
            Error::InvalidArgument("Interval in Healthcheck cannot be less than 1ms".into())
                .to_string()
        );
        assert!(validate(&HealthConfig {
            retries: -1,
            ..Default::default()
        })
        .is_err());
        assert!(validate(&HealthConfig {
            interval: 1_000_000,
            ..Default::default()
        })
        .is_ok());
    }

    #[test]
    fn results_move_the_status_as_docker_s() {
        let t = Timing::of(&HealthConfig {
            retries: 2,
            start_period: 10_000_000_000,
            ..Default::default()
        });
        let started = Utc::now();
        let mut h = at_start(None, true).expect("checked");
        // Failures within the start period do not count.
        apply(&mut h, result(1, started), &t, Some(started));
        assert_eq!((h.status.as_str(), h.failing_streak), (STARTING, 0));
        let later = started + chrono::Duration::seconds(11);
        apply(&mut h, result(1, later), &t, Some(started));
        assert_eq!((h.status.as_str(), h.failing_streak), (STARTING, 1));
        apply(&mut h, result(1, later), &t, Some(started));
        assert_eq!((h.status.as_str(), h.failing_streak), (UNHEALTHY, 2));
        apply(&mut h, result(0, later), &t, Some(started));
        assert_eq!((h.status.as_str(), h.failing_streak), (HEALTHY, 0));
        for _ in 0..5 {
            apply(&mut h, result(3, later), &t, Some(started));
        }
        assert_eq!(h.log.len(), MAX_LOG);
        assert_eq!(h.log[0].exit_code, 3);
        assert_eq!(h.label(), "unhealthy");
        let again = at_start(Some(h), true).expect("checked");
        assert_eq!(
            (again.label(), again.log.len()),
            ("health: starting".into(), MAX_LOG)
        );
        assert_eq!(at_start(Some(again), false), None);
    }

    #[test]
    fn the_start_interval_applies_while_starting_in_the_start_period() {
        let t = Timing::of(&HealthConfig {
            interval: 2_000_000_000,
            start_period: 10_000_000_000,
            ..Default::default()
        });
        assert_eq!(
            t.next_interval(STARTING, Duration::from_secs(1)),
            DEFAULT_START_INTERVAL
        );
        assert_eq!(
            t.next_interval(HEALTHY, Duration::from_secs(1)),
            Duration::from_secs(2)
        );
        assert_eq!(
            t.next_interval(STARTING, Duration::from_secs(11)),
            Duration::from_secs(2)
        );
        assert_eq!((t.timeout, t.retries), (DEFAULT_TIMEOUT, DEFAULT_RETRIES));
    }
}
