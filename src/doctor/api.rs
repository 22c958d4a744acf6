//! The steps of the API itself, through the connector's own transport: the
//! key, the rate limit, each stream's first page, and drift from the
//! schemas.

use super::{Report, Status};
use crate::config::Config;
use crate::drift::{Drift, Schema};
use crate::http::transport::Transport;
use crate::page;
use crate::streams::{Paging, STREAMS};
use crate::time;
use serde_json::Value;
use std::time::Instant;

/// A first page as the API answered it.
pub(super) struct Answer {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: Vec<u8>,
}

/// The key, the rate limit, each stream's first page and drift, through
/// the connector's own transport.
pub(super) fn api_steps(config: &Config, report: &mut Report) {
    let mut transport = Transport::new(config);
    let mut get = |path: &str, report: &Report| {
        let timeout = config.timeout.min(report.left());
        let mut body = Vec::new();
        transport
            .get(path, timeout, &mut body)
            .map(|head| Answer {
                status: head.status,
                headers: head.headers,
                body,
            })
            .map_err(|f| f.error.to_string())
    };
    let started = Instant::now();
    let users = get("users?page=1", report);
    let answer = match users {
        Err(e) => {
            let result = format!("GET users failed: {e}");
            let advice = "check the rows above; try again, and if it persists, send this \
                          report (run on the failing sync's network) to support"
                .to_string();
            report.failed("api key", started, result, advice);
            for step in ["rate limit", "streams", "drift"] {
                report.skip(step);
            }
            return;
        }
        Ok(a) => a,
    };
    let id = request_id(&answer.headers);
    match answer.status {
        200..=299 => report.ok(
            "api key",
            started,
            format!("GET users: HTTP {}, the key is accepted{id}", answer.status),
        ),
        status @ (401 | 403) => report.failed(
            "api key",
            started,
            format!("GET users: HTTP {status}{}{id}", api_reason(&answer.body)),
            "the API key was rejected: copy it again from PersistIq (Settings > Integrations > \
             API Key) into the config's api_key"
                .into(),
        ),
        429 => report.failed(
            "api key",
            started,
            format!("GET users: HTTP 429, rate limited{id}"),
            "the key's rate window is used up: wait for its reset (the next row), and check \
             that no other program uses the same key"
                .into(),
        ),
        status => report.failed(
            "api key",
            started,
            format!("GET users: HTTP {status}{}{id}", api_reason(&answer.body)),
            "the API did not answer as expected: check base_url, or try again later and quote \
             the request id to PersistIq's support"
                .into(),
        ),
    }
    // A refused key says nothing of the rate window; a 429 says when.
    if matches!(answer.status, 401 | 403) {
        for step in ["rate limit", "streams", "drift"] {
            report.skip(step);
        }
        return;
    }
    let key_failed = report.blocked.take();
    rate_step(&answer, report);
    if key_failed.is_some() {
        report.blocked = key_failed;
    }
    if report.blocked.is_some() {
        report.skip("streams");
        report.skip("drift");
        return;
    }
    let mut drifts: Vec<String> = Vec::new();
    let mut first_campaign: Option<String> = None;
    let mut checked = 0;
    for def in STREAMS {
        let step = format!("stream {}", def.name);
        let started = Instant::now();
        let mut path = def.path.to_string();
        if def.parent.is_some() {
            let Some(campaign) = &first_campaign else {
                let result = "skipped: no campaign to ask about".to_string();
                report.push(&step, Status::Skipped, None, result, None);
                continue;
            };
            path = path.replace("{parent_id}", &crate::url::encode(campaign));
        }
        if def.paging == Paging::Pages {
            path.push_str("?page=1");
        }
        let answer = if def.name == "users" {
            Ok(Answer {
                status: answer.status,
                headers: answer.headers.clone(),
                body: answer.body.clone(),
            })
        } else {
            get(&path, report)
        };
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                let result = format!("GET {path} failed: {e}");
                let advice = "try again; if it persists, send this report to support".into();
                report.failed(&step, started, result, advice);
                continue;
            }
        };
        let id = request_id(&answer.headers);
        if !(200..300).contains(&answer.status) {
            let result = format!(
                "GET {path}: HTTP {}{}{id}",
                answer.status,
                api_reason(&answer.body)
            );
            let advice = match answer.status {
                429 => "rate limited: wait for the rate window to reset, then run doctor again",
                _ => {
                    "a sync would fail on this stream: try again later, and quote the request \
                      id to PersistIq's support if it persists"
                }
            };
            report.failed(&step, started, result, advice.into());
            continue;
        }
        let layout = match page::scan(&answer.body, def.collection, None) {
            Ok(l) => l,
            Err(why) => {
                let result = format!(
                    "GET {path}: HTTP {}, an unusable page: {why}{id}",
                    answer.status
                );
                let advice = "base_url may point at something other than PersistIq's API; \
                              check it, or quote the request id to support"
                    .into();
                report.failed(&step, started, result, advice);
                continue;
            }
        };
        let page = layout.page(&answer.body);
        if def.name == "campaigns" {
            first_campaign = page
                .records
                .first()
                .and_then(|r| r.id_text())
                .map(|t| t.into_owned());
        }
        let on = match def.parent {
            Some(_) => format!(" (campaign {})", first_campaign.as_deref().unwrap_or("")),
            None => String::new(),
        };
        report.ok(
            &step,
            started,
            format!(
                "HTTP {}{on}: {}, has_more {}{id}",
                answer.status,
                crate::text::count(page.records.len() as u64, "record"),
                page.has_more
            ),
        );
        checked += 1;
        let schema = Schema::of(def.schema);
        let mut seen: Vec<Drift> = Vec::new();
        for record in &page.records {
            for d in schema.check(record.json) {
                if !seen.iter().any(|s| s.field == d.field) {
                    seen.push(d);
                }
            }
        }
        drifts.extend(
            seen.iter()
                .map(|d| format!("{}: {}", def.name, d.describe())),
        );
    }
    let started = Instant::now();
    if drifts.is_empty() {
        let result = format!(
            "every field of {} is declared in its schema, with a type it allows",
            crate::text::count(checked, "first page")
        );
        report.ok("drift", started, result);
    } else {
        let advice = "the records still carry these fields, but a typed destination drops \
                      undeclared columns and may fail to type a changed one: report them (this \
                      output) to the connector's maintainers"
            .to_string();
        report.failed("drift", started, drifts.join("; "), advice);
    }
}

/// The rate limit, from the answer's `X-RateLimit-*` headers.
pub(super) fn rate_step(answer: &Answer, report: &mut Report) {
    let started = Instant::now();
    let header = |name: &str| {
        answer
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string())
    };
    let limit = header("x-ratelimit-limit");
    let remaining = header("x-ratelimit-remaining");
    let reset = header("x-ratelimit-reset");
    if limit.is_none() && remaining.is_none() && reset.is_none() {
        let result = "not sent (no X-RateLimit-* headers): a sync paces itself by the API's 429s"
            .to_string();
        report.ok("rate limit", started, result);
        return;
    }
    let reset_at = reset
        .as_deref()
        .and_then(|r| r.parse::<i64>().ok())
        .map(|secs| {
            let left = secs - time::now_secs();
            format!("{} (in {left} s)", time::format_utc(secs))
        });
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "not sent".into());
    let result = format!(
        "limit {}, remaining {}, resets {}",
        shown(&limit),
        shown(&remaining),
        reset_at.unwrap_or_else(|| shown(&reset))
    );
    if remaining.as_deref() == Some("0") {
        let advice = "the rate window is used up: a sync now would wait for it; run after the \
                      reset, and check that no other program uses the same key"
            .to_string();
        report.failed("rate limit", started, result, advice);
        // The streams can still be asked for, and say when they are refused.
        report.blocked = None;
    } else {
        report.ok("rate limit", started, result);
    }
}

/// "; request id X" when the answer names one (what PersistIq's support
/// asks for), as the client says it, or that it named none.
fn request_id(headers: &ureq::http::HeaderMap) -> String {
    let id = crate::http::errors::request_id(headers);
    if id.is_empty() {
        return "; no x-request-id".into();
    }
    id
}

/// ": reason" from PersistIq's error envelope; only its `reason`, as a
/// rejection's message may echo the key in a form masking does not know.
pub(super) fn api_reason(body: &[u8]) -> String {
    let value: Value = serde_json::from_slice(body).unwrap_or_default();
    match value["error"]["reason"].as_str() {
        Some(reason) => format!(" ({})", reason.chars().take(100).collect::<String>()),
        None => String::new(),
    }
}
