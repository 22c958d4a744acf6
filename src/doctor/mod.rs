//! `doctor`: the way to the API, one step at a time (config, DNS, TCP, the
//! proxy's tunnel, TLS, the key, the rate limit, each stream's first page,
//! drift from the schemas), each timed and, when it fails, with what to do.
//!
//! The network steps are made here with std and rustls rather than through
//! ureq, which does them all in one call: a user behind a company network
//! needs to know which one failed. The steps from the key on go through the
//! connector's own transport, as a sync does. The steps on the way to the
//! API are in `net`, those of the API itself in `api`.

mod api;
mod net;

use api::api_steps;
use net::{dns_step, proxy_step, tcp_step, tls_step};

use crate::config::Config;
use crate::secret;
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// All of `doctor` ends within this, as `check` does, whatever the network.
const BUDGET: Duration = Duration::from_secs(60);

/// The longest one network step (a lookup, a connect, a handshake) waits.
const STEP_WAIT: Duration = Duration::from_secs(10);

/// What the TLS advice says when the issuer is not trusted.
const GIVE_CA: &str = "if your network inspects HTTPS with its own CA (a company proxy or \
                       firewall), give that CA's certificate (PEM) in the config key \
                       `ca_certificate`, or as a file named by SSL_CERT_FILE; otherwise check \
                       base_url";

/// How a step ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Failed,
    Skipped,
}

/// One row: a step, what it found, how long it took, what to do.
struct Step {
    step: String,
    status: Status,
    result: String,
    ms: Option<u64>,
    advice: Option<String>,
}

impl Step {
    /// The step as JSON, for `--json`.
    fn json(&self) -> Value {
        let status = match self.status {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        };
        let mut step = serde_json::json!({
            "step": self.step,
            "status": status,
            "result": self.result,
        });
        if let Some(ms) = self.ms {
            step["ms"] = ms.into();
        }
        if let Some(advice) = &self.advice {
            step["advice"] = advice.as_str().into();
        }
        step
    }
}

/// The steps so far, and when `doctor` must be done.
struct Report {
    steps: Vec<Step>,
    deadline: Instant,
    /// The step that failed and stops the way, if one did.
    blocked: Option<String>,
}

impl Report {
    /// Time left, at most one step's wait.
    fn wait(&self) -> Duration {
        self.left().min(STEP_WAIT)
    }

    /// Time left until the deadline (never zero: a zero timeout means none).
    fn left(&self) -> Duration {
        self.deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    }

    /// A step that passed, timed from `started`.
    fn ok(&mut self, step: &str, started: Instant, result: String) {
        self.push(step, Status::Ok, Some(started), result, None);
    }

    /// A failed step; the steps after it on the way are skipped.
    fn failed(&mut self, step: &str, started: Instant, result: String, advice: String) {
        self.push(step, Status::Failed, Some(started), result, Some(advice));
        self.blocked.get_or_insert_with(|| step.to_string());
    }

    /// A step that cannot run because `blocked` failed.
    fn skip(&mut self, step: &str) {
        let result = format!(
            "skipped: {} failed",
            self.blocked.as_deref().unwrap_or("a step before")
        );
        self.push(step, Status::Skipped, None, result, None);
    }

    /// One row, its texts masked.
    fn push(
        &mut self,
        step: &str,
        status: Status,
        started: Option<Instant>,
        result: String,
        advice: Option<String>,
    ) {
        self.steps.push(Step {
            step: step.to_string(),
            status,
            // Text from the server or the network, masked before it is shown.
            result: secret::mask(&result),
            ms: started.map(|s| s.elapsed().as_millis() as u64),
            advice: advice.map(|a| secret::mask(&a)),
        });
    }
}

/// The steps of the way to the API, in order.
const WAY: [&str; 5] = ["dns", "tcp", "proxy", "tls", "api key"];

/// Runs every step, prints the rows (or one JSON document); the exit code.
pub fn run(path: &Path, json: bool) -> u8 {
    let mut report = Report {
        steps: Vec::new(),
        deadline: Instant::now() + BUDGET,
        blocked: None,
    };
    let config = config_step(path, &mut report);
    match config {
        Some(config) => walk(&config, &mut report),
        None => {
            for step in WAY.into_iter().chain(["rate limit", "streams", "drift"]) {
                report.skip(step);
            }
        }
    }
    let ok = report.steps.iter().all(|s| s.status == Status::Ok);
    let text = if json {
        let steps: Vec<Value> = report.steps.iter().map(Step::json).collect();
        let doc = serde_json::json!({
            "ok": ok,
            "version": env!("CARGO_PKG_VERSION"),
            "steps": steps,
        });
        // One line, as every other JSON the connector writes.
        format!("{doc}\n")
    } else {
        rows(&report.steps)
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    u8::from(!ok)
}

/// Aligned rows: status, step, time, result; the advice under a failure.
fn rows(steps: &[Step]) -> String {
    let width = steps.iter().map(|s| s.step.len()).max().unwrap_or(0);
    // Colour only for a person at a terminal; a file or a ticket gets none.
    let colour = std::io::stdout().is_terminal();
    let mut out = String::new();
    for s in steps {
        let (tag, paint) = match s.status {
            Status::Ok => ("[ OK ]", "32"),
            Status::Failed => ("[FAIL]", "31"),
            Status::Skipped => ("[SKIP]", "2"),
        };
        let tag = match colour {
            true => format!("\x1b[{paint}m{tag}\x1b[0m"),
            false => tag.to_string(),
        };
        let ms = s.ms.map(|m| format!("{m} ms")).unwrap_or_default();
        out.push_str(&format!(
            "{tag} {:width$}  {ms:>8}  {}\n",
            s.step,
            crate::progress::printable(&s.result)
        ));
        if let Some(advice) = &s.advice {
            let pad = " ".repeat(width + 19);
            out.push_str(&format!(
                "{pad}what to do: {}\n",
                crate::progress::printable(advice)
            ));
        }
    }
    out
}

/// The config: read, checked as every command checks it, its keys named.
fn config_step(path: &Path, report: &mut Report) -> Option<Config> {
    let started = Instant::now();
    let value = match crate::input::read_json_file(path, "config") {
        Ok(v) => v,
        Err(e) => {
            let advice = "give --config a JSON file such as {\"api_key\": \"...\"}".into();
            report.failed("config", started, e.message, advice);
            return None;
        }
    };
    if let Some(key) = value.get("api_key").and_then(Value::as_str) {
        secret::protect(key);
    }
    let config = match Config::from_json(&value) {
        Ok(c) => c,
        Err(e) => {
            let advice = "fix that key (`source-persistiq --help` lists them)".into();
            report.failed("config", started, e.message, advice);
            return None;
        }
    };
    let spec: Value = serde_json::from_str(crate::config::SPEC_JSON).unwrap_or_default();
    let known = spec["properties"].as_object();
    let keys: Vec<&String> = value
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    let unknown: Vec<&str> = keys
        .iter()
        .filter(|k| known.is_none_or(|p| !p.contains_key(k.as_str())))
        .map(|k| k.as_str())
        .collect();
    let keys: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
    let mut result = format!(
        "keys {}; base_url {}; CAs: {}",
        keys.join(", "),
        config.base_url.as_str(),
        config.trust.source
    );
    if unknown.is_empty() {
        report.ok("config", started, result);
    } else {
        result.push_str(&format!("; unknown keys: {}", unknown.join(", ")));
        let advice = format!(
            "unknown keys are ignored: check their spelling against `source-persistiq --help` \
             ({})",
            known
                .map(|p| p.keys().cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        );
        report.failed("config", started, result, advice);
        // A misspelt key is no reason not to try the way to the API.
        report.blocked = None;
    }
    Some(config)
}

/// Where base_url points: host (brackets off) and port.
fn target(config: &Config) -> (String, u16) {
    let host = config.base_url.host();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host.to_string(), config.base_url.port())
}

/// Every step from DNS on.
fn walk(config: &Config, report: &mut Report) {
    let (host, port) = target(config);
    // Through a proxy, this machine resolves and reaches the proxy; the
    // proxy resolves the API's host.
    let proxy = config.proxy.as_ref();
    let (dial_host, dial_port) = match proxy {
        Some(p) => (p.proxy.host().to_string(), p.proxy.port()),
        None => (host.clone(), port),
    };
    let addrs = dns_step(&dial_host, dial_port, proxy.is_some(), report);
    let stream = match addrs {
        Some(addrs) => tcp_step(&addrs, &dial_host, proxy.is_some(), report),
        None => {
            report.skip("tcp");
            None
        }
    };
    let stream = match stream {
        Some(stream) => proxy_step(config, stream, &host, port, report),
        None => {
            report.skip("proxy");
            None
        }
    };
    match stream {
        Some(stream) if !config.base_url.plain_http() => tls_step(config, stream, &host, report),
        Some(_) => {
            let result = "none: plain http to a loopback host".to_string();
            report.ok("tls", Instant::now(), result);
        }
        None => report.skip("tls"),
    }
    if report.blocked.is_some() {
        for step in ["api key", "rate limit", "streams", "drift"] {
            report.skip(step);
        }
        return;
    }
    api_steps(config, report);
}
