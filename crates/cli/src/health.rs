//! The health check flags of `create` and `run` (`--health-cmd`,
//! `--health-interval`, …, `--no-healthcheck`), read as Docker's CLI
//! reads them: durations in Go's notation ("30s", "1m30s", "500ms").

use anyhow::{bail, Result};
use berth_client::types as pb;
use clap::Args;

/// Docker's health check flags.
#[derive(Args, Debug, Clone, Default)]
pub struct HealthArgs {
    /// Command to run to check health.
    #[arg(long = "health-cmd")]
    pub cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 0s).
    #[arg(long = "health-interval", value_parser = parse_duration, allow_hyphen_values = true)]
    pub interval: Option<i64>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 0s).
    #[arg(long = "health-timeout", value_parser = parse_duration, allow_hyphen_values = true)]
    pub timeout: Option<i64>,
    /// Consecutive failures needed to report unhealthy.
    #[arg(long = "health-retries", allow_hyphen_values = true)]
    pub retries: Option<i32>,
    /// Start period for the container to initialize before starting
    /// health-retries countdown (ms|s|m|h) (default 0s).
    #[arg(long = "health-start-period", value_parser = parse_duration, allow_hyphen_values = true)]
    pub start_period: Option<i64>,
    /// Time between running the check during the start period (ms|s|m|h)
    /// (default 0s).
    #[arg(long = "health-start-interval", value_parser = parse_duration, allow_hyphen_values = true)]
    pub start_interval: Option<i64>,
    /// Disable any container-specified HEALTHCHECK.
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
}

impl HealthArgs {
    /// The health check the flags ask for (`None`: the image's), with
    /// Docker's refusals.
    pub fn config(&self) -> Result<Option<pb::HealthConfig>> {
        let interval = self.interval.unwrap_or(0);
        let timeout = self.timeout.unwrap_or(0);
        let retries = self.retries.unwrap_or(0);
        let start_period = self.start_period.unwrap_or(0);
        let start_interval = self.start_interval.unwrap_or(0);
        let any = self.cmd.as_deref().is_some_and(|c| !c.is_empty())
            || interval != 0
            || timeout != 0
            || retries != 0
            || start_period != 0
            || start_interval != 0;
        if self.no_healthcheck {
            if any {
                bail!("--no-healthcheck conflicts with --health-* options");
            }
            return Ok(Some(pb::HealthConfig {
                test: vec!["NONE".into()],
                ..Default::default()
            }));
        }
        if !any {
            return Ok(None);
        }
        for (flag, n) in [
            ("--health-interval", interval),
            ("--health-timeout", timeout),
            ("--health-retries", i64::from(retries)),
            ("--health-start-period", start_period),
            ("--health-start-interval", start_interval),
        ] {
            if n < 0 {
                bail!("{flag} cannot be negative");
            }
        }
        Ok(Some(pb::HealthConfig {
            test: match self.cmd.as_deref() {
                Some(c) if !c.is_empty() => vec!["CMD-SHELL".into(), c.into()],
                _ => Vec::new(),
            },
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        }))
    }
}

/// A Go duration ("300ms", "1.5h", "2h45m", "-1s", "0") in nanoseconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let bad = || format!("time: invalid duration \"{text}\"");
    let (sign, mut rest) = match text.strip_prefix('-') {
        Some(r) => (-1.0, r),
        None => (1.0, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration \"{text}\""))?;
        let number: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            unit => {
                return Err(format!(
                    "time: unknown unit \"{unit}\" in duration \"{text}\""
                ))
            }
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Ok((sign * total).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        for (text, ns) in [
            ("30s", 30_000_000_000),
            ("1m30s", 90_000_000_000),
            ("500ms", 500_000_000),
            ("1.5h", 5_400_000_000_000),
            ("0", 0),
            ("-1s", -1_000_000_000),
            ("10us", 10_000),
        ] {
            assert_eq!(parse_duration(text), Ok(ns), "{text}");
        }
        for text in ["", "5", "1x", "s", "1.2.3s"] {
            assert!(parse_duration(text).is_err(), "{text}");
        }
    }

    #[test]
    fn flags_become_docker_s_health_config() {
        assert_eq!(HealthArgs::default().config().unwrap(), None);
        let a = HealthArgs {
            cmd: Some("curl -f localhost".into()),
            interval: Some(200_000_000),
            retries: Some(2),
            ..Default::default()
        };
        let h = a.config().unwrap().unwrap();
        assert_eq!(h.test, ["CMD-SHELL", "curl -f localhost"]);
        assert_eq!((h.interval, h.retries, h.timeout), (200_000_000, 2, 0));
        let none = HealthArgs {
            no_healthcheck: true,
            ..Default::default()
        };
        assert_eq!(none.config().unwrap().unwrap().test, ["NONE"]);
        let both = HealthArgs {
            retries: Some(1),
            ..none
        };
        assert_eq!(
            both.config().unwrap_err().to_string(),
            "--no-healthcheck conflicts with --health-* options"
        );
        let negative = HealthArgs {
            timeout: Some(-1),
            ..Default::default()
        };
        assert_eq!(
            negative.config().unwrap_err().to_string(),
            "--health-timeout cannot be negative"
        );
    }
}
