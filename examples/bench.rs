//! Throughput and memory benchmark of the release connector.
//!
//!   cargo run --release --features bench --example bench
//!   cargo run --release --features bench --example bench -- --leads 100000 --runs 7 --rss-leads 10000,1000000
//!
//! It reads the leads stream from the loopback mock, to /dev/null, and fetches
//! the same pages with a bare HTTP/1.1 keep-alive client (the floor for a
//! sequential client on this machine), runs interleaved so that machine noise
//! hits both, and prints medians. It is a tool, not a test: no figure here
//! fails a build. CPU time and peak RSS are measured on Linux only; see
//! `spawn_measured`.
//!
//! Flags (all optional):
//!   --leads N           leads served for the main table (default 100000)
//!   --runs K            timed runs of each client at N (default 5)
//!   --spec-runs M       runs of `spec` (default 101)
//!   --rss-leads A,B     further sizes for the RSS-by-N table ("" skips; default 10000,1000000)
//!   --rss-runs R        runs of each client at those sizes (default 3)
//!   --connector PATH    the binary to measure (default: this profile's source-persistiq)
//!   --latency-leads L   leads for the latency-shaped scenario ("0" skips; default 30000)
//!   --https             also read the main table's leads over HTTPS (the mock
//!                       behind a TLS front, its CA given by SSL_CERT_FILE),
//!                       interleaved with the other clients
//!
//! The latency-shaped scenario is what a real user feels: the mock answers
//! each page after 20 ms and enforces a rate window of 100 requests per
//! 10 s with `X-RateLimit-*` headers. It reports the sync's wall time over
//! its floor (what a client that knew the windows exactly would need) and
//! the 429s the server had to send.
//!
//! Internal modes (the bench runs itself as these child processes):
//!   --serve N [--delay-ms D] [--rate L/W] [--tls CA_FILE]
//!                       the mock server with N leads, until stdin closes;
//!                       then it prints how many 429s it sent; with --tls,
//!                       also over HTTPS, its CA written to CA_FILE
//!   --fetch-raw URL P   fetch pages 1..=P of leads with the bare client
//!   --fetch-ureq URL P  the same with a ureq agent (the connector's HTTP stack)

#[path = "../tests/support/mock.rs"]
mod mock;
#[path = "shared/connector.rs"]
mod shared;
#[path = "../tests/support/tls.rs"]
mod tls;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const DEFAULT_LEADS: usize = 100_000;
const MB: f64 = 1e6;
const MIB: f64 = (1 << 20) as f64;

// Targets, printed next to the measurements they judge.
const TARGET_SPEC_MS: f64 = 5.0;
const TARGET_RSS_MIB: f64 = 10.0;
const TARGET_RSS_GROWTH_MIB: f64 = 1.0;

fn main() -> ExitCode {
    let mut args = pico_args::Arguments::from_env();
    let result = if let Some(n) = opt::<usize>(&mut args, "--serve") {
        serve(n, args)
    } else if let Some(url) = opt::<String>(&mut args, "--fetch-raw") {
        fetch(&url, free(&mut args), fetch_raw)
    } else if let Some(url) = opt::<String>(&mut args, "--fetch-ureq") {
        fetch(&url, free(&mut args), fetch_ureq)
    } else {
        bench(args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn opt<T: std::str::FromStr>(args: &mut pico_args::Arguments, key: &'static str) -> Option<T>
where
    T::Err: std::fmt::Display,
{
    args.opt_value_from_str(key)
        .unwrap_or_else(|e| usage(&e.to_string()))
}

fn free<T: std::str::FromStr>(args: &mut pico_args::Arguments) -> T
where
    T::Err: std::fmt::Display,
{
    args.free_from_str()
        .unwrap_or_else(|e| usage(&e.to_string()))
}

fn usage(why: &str) -> ! {
    eprintln!("bench: {why}\nusage: cargo run --release --features bench --example bench -- [--leads N] [--runs K] [--spec-runs M] [--rss-leads A,B] [--rss-runs R] [--connector PATH] [--latency-leads L] [--https]");
    std::process::exit(2)
}

type Res<T = ()> = Result<T, String>;

// ------------------------------------------------------------ the bench

struct Settings {
    latency_leads: usize,
    leads: usize,
    runs: usize,
    spec_runs: usize,
    rss_leads: Vec<usize>,
    rss_runs: usize,
    connector: PathBuf,
    https: bool,
}

fn bench(mut args: pico_args::Arguments) -> Res {
    let rss_leads: String = opt(&mut args, "--rss-leads").unwrap_or_else(|| "10000,1000000".into());
    let s = Settings {
        latency_leads: opt(&mut args, "--latency-leads").unwrap_or(30_000),
        leads: opt(&mut args, "--leads").unwrap_or(DEFAULT_LEADS),
        runs: opt(&mut args, "--runs").unwrap_or(5),
        spec_runs: opt(&mut args, "--spec-runs").unwrap_or(101),
        rss_leads: rss_leads
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().replace('_', "").parse())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("--rss-leads: {e}"))?,
        rss_runs: opt(&mut args, "--rss-runs").unwrap_or(3),
        connector: opt::<PathBuf>(&mut args, "--connector").unwrap_or_else(connector_binary),
        https: args.contains("--https"),
    };
    let rest = args.finish();
    if !rest.is_empty() {
        usage(&format!("unexpected arguments {rest:?}"));
    }
    if s.runs == 0 || s.rss_runs == 0 || s.spec_runs == 0 {
        usage("run counts must be at least 1");
    }
    let dir = std::env::temp_dir().join(format!("source-persistiq-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let result = run_all(&s, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_all(s: &Settings, dir: &Path) -> Res {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "source-persistiq bench: {} on {cpus} CPUs; figures are medians (min..max) of interleaved \
         runs",
        s.connector.display()
    );
    println!("MB = 10^6 bytes of page bodies as served; MiB = 2^20 bytes; RSS = peak resident set (wait4 ru_maxrss)");

    let main = measure_size(s, dir, s.leads, s.runs)?;
    print_main(&main, s.runs);

    let spec = measure_spec(s)?;
    println!();
    println!(
        "spec, process start to exit: {} ms over {} runs, peak RSS {:.2} MiB   (target <= \
         {TARGET_SPEC_MS} ms: {})",
        spread(&walls(&spec), 2),
        spec.len(),
        median(&rss_mibs(&spec)),
        verdict(median(&walls(&spec)) <= TARGET_SPEC_MS)
    );

    if s.latency_leads > 0 {
        measure_latency(s, dir)?;
    }

    let mut sizes = vec![main];
    for &n in &s.rss_leads {
        if n != s.leads {
            sizes.push(measure_size(s, dir, n, s.rss_runs)?);
        }
    }
    sizes.sort_by_key(|m| m.leads);
    print_by_size(&sizes);
    println!(
        "RSS floor: a forked child starts with the bench's anonymous memory ({:.2} MiB here) \
         counted in its RSS, so figures above that are the child's own",
        anon_rss_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}

/// Every measurement at one data size.
struct SizeResult {
    leads: usize,
    pages: usize,
    body_bytes: u64,
    connector: Vec<Measured>,
    /// The connector over HTTPS (`--https`), else empty.
    https: Vec<Measured>,
    raw: Vec<Measured>,
    ureq: Vec<Measured>,
}

fn measure_size(s: &Settings, dir: &Path, leads: usize, runs: usize) -> Res<SizeResult> {
    eprintln!("bench: starting the mock with {leads} leads");
    let ca_file = dir.join(format!("ca-{leads}.pem"));
    let ca_text = ca_file.to_string_lossy().into_owned();
    let https = s.https && leads == s.leads;
    let server = match https {
        true => Server::start_with(leads, &["--tls", &ca_text])?,
        false => Server::start(leads)?,
    };
    let config = dir.join(format!("config-{leads}.json"));
    let config_json = format!(
        r#"{{"api_key":"{}","base_url":"{}","retry_schedule_seconds":[0.1]}}"#,
        mock::API_KEY,
        server.base_url
    );
    std::fs::write(&config, config_json).map_err(|e| format!("write the config: {e}"))?;
    let connector = || {
        let mut c = Command::new(&s.connector);
        c.args(["read", "--config"])
            .arg(&config)
            .args(["--streams", "leads"]);
        c
    };
    let https_config = dir.join(format!("config-{leads}-https.json"));
    if let Some(url) = &server.https_url {
        let json = format!(
            r#"{{"api_key":"{}","base_url":"{url}","retry_schedule_seconds":[0.1]}}"#,
            mock::API_KEY
        );
        std::fs::write(&https_config, json).map_err(|e| format!("write the config: {e}"))?;
    }
    let over_https = || {
        let mut c = Command::new(&s.connector);
        c.args(["read", "--config"])
            .arg(&https_config)
            .args(["--streams", "leads"])
            .env("SSL_CERT_FILE", &ca_file);
        c
    };
    let fetcher = |mode: &str| {
        let mut c = Command::new(std::env::current_exe().expect("current exe"));
        c.args([mode, &server.base_url, &server.pages.to_string()]);
        c
    };

    // Untimed: proves the read is complete (and warms the caches); the
    // timed runs then send stdout to /dev/null.
    let checked = spawn_measured(&mut connector(), Capture::CountRecords)?;
    if checked.records != leads as u64 {
        return Err(format!(
            "the connector wrote {} leads RECORDs, expected {leads}",
            checked.records
        ));
    }
    if https {
        let checked = spawn_measured(&mut over_https(), Capture::CountRecords)?;
        if checked.records != leads as u64 {
            return Err(format!(
                "the connector over HTTPS wrote {} leads RECORDs, expected {leads}",
                checked.records
            ));
        }
    }
    let body_bytes = spawn_measured(&mut fetcher("--fetch-raw"), Capture::Stdout)?.reported;
    let ureq_bytes = spawn_measured(&mut fetcher("--fetch-ureq"), Capture::Stdout)?.reported;
    if ureq_bytes != body_bytes {
        return Err(format!(
            "the two references disagree on the body bytes: {body_bytes} vs {ureq_bytes}"
        ));
    }

    let mut result = SizeResult {
        leads,
        pages: server.pages,
        body_bytes,
        connector: Vec::new(),
        https: Vec::new(),
        raw: Vec::new(),
        ureq: Vec::new(),
    };
    eprintln!("bench: {leads} leads: {runs} interleaved runs of each client");
    for run in 0..runs {
        // Alternate the order too, so no client always runs right after another.
        let order: [u8; 4] = if run % 2 == 0 {
            [0, 1, 2, 3]
        } else {
            [3, 2, 1, 0]
        };
        for which in order {
            match which {
                3 if !https => {}
                3 => result
                    .https
                    .push(spawn_measured(&mut over_https(), Capture::Null)?),
                0 => result
                    .connector
                    .push(spawn_measured(&mut connector(), Capture::Null)?),
                1 => result.raw.push(spawn_measured(
                    &mut fetcher("--fetch-raw"),
                    Capture::Stdout,
                )?),
                _ => result.ureq.push(spawn_measured(
                    &mut fetcher("--fetch-ureq"),
                    Capture::Stdout,
                )?),
            }
        }
    }
    Ok(result)
}

fn measure_spec(s: &Settings) -> Res<Vec<Measured>> {
    let mut runs = Vec::with_capacity(s.spec_runs);
    for _ in 0..s.spec_runs {
        let mut c = Command::new(&s.connector);
        c.arg("spec");
        runs.push(spawn_measured(&mut c, Capture::Null)?);
    }
    Ok(runs)
}

fn print_main(m: &SizeResult, runs: usize) {
    println!();
    println!(
        "read --streams leads, N = {} leads: {} pages, {:.2} MB of page bodies, {runs} runs",
        thousands(m.leads as u64),
        thousands(m.pages as u64),
        m.body_bytes as f64 / MB
    );
    println!(
        "  {:<38} {:>22} {:>11} {:>10} {:>9} {:>10}",
        "client", "wall ms", "records/s", "API MB/s", "CPU ms", "RSS MiB"
    );
    let rows = [
        ("connector: release binary, read", &m.connector),
        ("connector over HTTPS (TLS front)", &m.https),
        ("reference: bare HTTP/1.1 keep-alive", &m.raw),
        ("reference: ureq 3 agent, bytes only", &m.ureq),
    ];
    for (name, runs) in rows.into_iter().filter(|(_, r)| !r.is_empty()) {
        let wall = median(&walls(runs));
        println!(
            "  {:<38} {:>22} {:>11} {:>10.1} {:>9.1} {:>10.2}",
            name,
            spread(&walls(runs), 1),
            thousands((m.leads as f64 / (wall / 1e3)) as u64),
            m.body_bytes as f64 / MB / (wall / 1e3),
            median(&runs.iter().map(|r| ms(r.cpu)).collect::<Vec<_>>()),
            median(&runs.iter().map(Measured::rss_mib).collect::<Vec<_>>()),
        );
    }
    let ratio = ratios(&m.connector, &m.raw);
    println!(
        "connector / bare reference, wall: {}   (one request in flight: the page's check and \
         write are not overlapped)",
        spread(&ratio, 2)
    );
    println!(
        "  connector / ureq reference, wall: {}   (the connector's own work over its HTTP stack)",
        spread(&ratios(&m.connector, &m.ureq), 2)
    );
    println!(
        "  ureq reference / bare reference, wall: {}   (the HTTP stack's own share of the budget)",
        spread(&ratios(&m.ureq, &m.raw), 2)
    );
    println!(
        "  connector / bare reference, CPU:  {}   (steadier than wall on a busy machine)",
        spread(&cpu_ratios(&m.connector, &m.raw), 2)
    );
    if !m.https.is_empty() {
        println!(
            "  connector HTTPS / HTTP, wall: {}   CPU: {}   (what TLS costs the connector)",
            spread(&ratios(&m.https, &m.connector), 2),
            spread(&cpu_ratios(&m.https, &m.connector), 2)
        );
    }
    let raw_wall = median(&walls(&m.raw)) / 1e3;
    println!(
        "mock server: served the bare reference {:.0} MB/s, {} pages/s (a sequential client can \
         draw at least this)",
        m.body_bytes as f64 / MB / raw_wall,
        thousands((m.pages as f64 / raw_wall) as u64)
    );
}

fn print_by_size(sizes: &[SizeResult]) {
    println!();
    println!("connector peak RSS by N (read --streams leads)");
    println!(
        "  {:>10} {:>7} {:>5} {:>10} {:>12} {:>10} {:>10}",
        "leads", "pages", "runs", "wall ms", "ratio/bare", "RSS MiB", "RSS range"
    );
    for m in sizes {
        let rss = rss_mibs(&m.connector);
        println!(
            "  {:>10} {:>7} {:>5} {:>10.1} {:>12.2} {:>10.2} {:>10}",
            thousands(m.leads as u64),
            thousands(m.pages as u64),
            m.connector.len(),
            median(&walls(&m.connector)),
            median(&ratios(&m.connector, &m.raw)),
            median(&rss),
            format!("{:.2}..{:.2}", min(&rss), max(&rss)),
        );
    }
    let rss_at = |m: &SizeResult| median(&rss_mibs(&m.connector));
    if let (Some(small), Some(big)) = (sizes.first(), sizes.last()) {
        if sizes.len() > 1 {
            let growth = rss_at(big) - rss_at(small);
            println!(
                "growth {} -> {} leads: {:+.2} MiB (target <= {TARGET_RSS_GROWTH_MIB} MiB: {}); \
                 at {}: {:.2} MiB (target <= {TARGET_RSS_MIB} MiB: {})",
                thousands(small.leads as u64),
                thousands(big.leads as u64),
                growth,
                verdict(growth <= TARGET_RSS_GROWTH_MIB),
                thousands(big.leads as u64),
                rss_at(big),
                verdict(rss_at(big) <= TARGET_RSS_MIB),
            );
        }
    }
}

// ------------------------------------------------------------ the mock, in its own process

/// The mock server as a child process. It holds every page in memory (about
/// 1.5 GB at a million leads); in the bench's own process that memory would
/// be counted in each forked child's peak RSS.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The rest of what the server says: its 429 count, at exit.
    stdout: BufReader<ChildStdout>,
    base_url: String,
    pages: usize,
    /// The same server over HTTPS (`--tls`).
    https_url: Option<String>,
}

impl Server {
    fn start(leads: usize) -> Res<Server> {
        Server::start_with(leads, &[])
    }

    /// A server with more `--serve` flags (`--delay-ms`, `--rate`).
    fn start_with(leads: usize, flags: &[&str]) -> Res<Server> {
        let mut child = Command::new(std::env::current_exe().expect("current exe"))
            .args(["--serve", &leads.to_string()])
            .args(flags)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start the mock server: {e}"))?;
        let mut first = String::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        stdout
            .read_line(&mut first)
            .map_err(|e| format!("read from the mock server: {e}"))?;
        let mut parts = first.split_whitespace();
        let (Some(base_url), Some(Ok(pages))) = (parts.next(), parts.next().map(str::parse)) else {
            return Err(format!("the mock server said {first:?}"));
        };
        Ok(Server {
            stdin: child.stdin.take(),
            stdout,
            child,
            base_url: base_url.to_string(),
            pages,
            https_url: parts.next().map(str::to_string),
        })
    }
}

impl Server {
    /// Stops the server; returns how many 429s it sent.
    fn stop(mut self) -> Res<u64> {
        drop(self.stdin.take());
        let mut out = String::new();
        let _ = self.stdout.read_to_string(&mut out);
        out.trim()
            .strip_prefix("limited ")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("the mock server said {out:?} at exit"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// `--serve N`: serves until the bench closes our stdin (or dies).
fn serve(leads: usize, mut args: pico_args::Arguments) -> Res {
    let delay = Duration::from_millis(opt(&mut args, "--delay-ms").unwrap_or(0));
    let rate_limit = match opt::<String>(&mut args, "--rate") {
        None => None,
        Some(text) => {
            let (limit, window) = text.split_once('/').ok_or("--rate takes LIMIT/SECONDS")?;
            Some(mock::RateLimit {
                limit: limit.parse().map_err(|e| format!("--rate: {e}"))?,
                window_secs: window.parse().map_err(|e| format!("--rate: {e}"))?,
            })
        }
    };
    let tls_ca_file = opt::<String>(&mut args, "--tls");
    let server = mock::MockServer::start(mock::Options {
        leads,
        delay,
        rate_limit,
        ..mock::Options::default()
    });
    let front = tls_ca_file
        .map(|path| {
            let ca = tls::TestCa::new("bench CA");
            std::fs::write(&path, &ca.pem).map_err(|e| format!("write {path}: {e}"))?;
            let front = tls::TlsFront::start(server.addr, &ca.server_cert(&tls::MOCK_NAMES, false));
            Ok::<_, String>(front)
        })
        .transpose()?;
    let https_url = front
        .as_ref()
        .map(|f| f.base_url("localhost"))
        .unwrap_or_default();
    println!(
        "{} {} {https_url}",
        server.base_url(),
        server.page_count("leads")
    );
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    println!("limited {}", server.rate_limited());
    let _ = std::io::stdout().flush();
    // Exit without dropping the server: its stop handshake is not needed here.
    std::process::exit(0)
}

// ------------------------------------------------------------ latency-shaped scenario

/// The mock's round trip and rate window in the latency-shaped scenario.
const LATENCY_DELAY: Duration = Duration::from_millis(20);
const LATENCY_LIMIT: u32 = 100;
const LATENCY_WINDOW_SECS: u64 = 10;

/// A sync against a server with a real API's shape: a fixed round trip per
/// page and an enforced rate window. One run: it takes tens of seconds.
fn measure_latency(s: &Settings, dir: &Path) -> Res {
    let leads = s.latency_leads;
    eprintln!("bench: latency-shaped scenario, {leads} leads");
    let rate = format!("{LATENCY_LIMIT}/{LATENCY_WINDOW_SECS}");
    let delay = LATENCY_DELAY.as_millis().to_string();
    let server = Server::start_with(leads, &["--delay-ms", &delay, "--rate", &rate])?;
    let config = dir.join("config-latency.json");
    let config_json = format!(
        r#"{{"api_key":"{}","base_url":"{}"}}"#,
        mock::API_KEY,
        server.base_url
    );
    std::fs::write(&config, config_json).map_err(|e| format!("write the config: {e}"))?;
    let pages = server.pages;
    let started = std::time::SystemTime::now();
    let mut c = Command::new(&s.connector);
    c.args(["read", "--config"])
        .arg(&config)
        .args(["--streams", "leads"]);
    let run = spawn_measured(&mut c, Capture::CountRecords)?;
    let limited = server.stop()?;
    if run.records != leads as u64 {
        return Err(format!(
            "the latency run wrote {} leads, expected {leads}",
            run.records
        ));
    }
    let start_secs = started
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs_f64();
    let floor = latency_floor(pages, start_secs);
    let wall = run.wall.as_secs_f64();
    println!();
    println!(
        "latency-shaped: {pages} pages, {} ms a round trip, {LATENCY_LIMIT} requests per \
         {LATENCY_WINDOW_SECS} s window",
        LATENCY_DELAY.as_millis()
    );
    println!(
        "wall {wall:.2} s, floor {floor:.2} s, wall / floor {:.3}   (target <= 1.05: {}); 429s: \
         {limited}   (target 0: {})",
        wall / floor,
        verdict(wall / floor <= 1.05),
        verdict(limited == 0)
    );
    Ok(())
}

/// The time the fastest possible client needs for `pages` sequential
/// requests from `start` (epoch seconds): one round trip each, and no more
/// than the limit in each window, the windows starting at whole multiples
/// of the window length as the mock's do.
fn latency_floor(pages: usize, start: f64) -> f64 {
    let window = LATENCY_WINDOW_SECS as f64;
    let delay = LATENCY_DELAY.as_secs_f64();
    let (mut t, mut current, mut used) = (start, (start / window).floor(), 0u32);
    for _ in 0..pages {
        let w = (t / window).floor();
        if w != current {
            (current, used) = (w, 0);
        }
        if used == LATENCY_LIMIT {
            t = (current + 1.0) * window;
            (current, used) = (current + 1.0, 0);
        }
        used += 1;
        t += delay;
    }
    t - start
}

// ------------------------------------------------------------ the references

/// `--fetch-* URL PAGES`: fetches leads pages 1..=PAGES; prints the body bytes.
fn fetch(base_url: &str, pages: usize, f: fn(&str, usize) -> Res<u64>) -> Res {
    let bytes = f(base_url, pages)?;
    println!("{bytes}");
    Ok(())
}

/// The floor: one keep-alive connection, a minimal request, the body read
/// into a reused buffer and dropped. Nothing is parsed but the head.
fn fetch_raw(base_url: &str, pages: usize) -> Res<u64> {
    let host = base_url
        .strip_prefix("http://")
        .and_then(|r| r.split('/').next())
        .ok_or_else(|| format!("not an http:// URL: {base_url}"))?;
    let mut conn = TcpStream::connect(host).map_err(|e| format!("connect {host}: {e}"))?;
    conn.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 256 << 10];
    let (mut start, mut end) = (0, 0);
    let mut total = 0u64;
    for page in 1..=pages {
        let request = format!(
            "GET /v1/leads?page={page} HTTP/1.1\r\nHost: {host}\r\nx-api-key: {}\r\n\r\n",
            mock::API_KEY
        );
        conn.write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let head_end = loop {
            if let Some(i) = find(&buf[start..end], b"\r\n\r\n") {
                break start + i + 4;
            }
            if start > 0 {
                buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
            }
            if end == buf.len() {
                return Err("response head too long".into());
            }
            let n = conn.read(&mut buf[end..]).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!("page {page}: the server closed the connection"));
            }
            end += n;
        };
        let head = std::str::from_utf8(&buf[start..head_end]).map_err(|e| e.to_string())?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(format!(
                "page {page}: {}",
                head.lines().next().unwrap_or("")
            ));
        }
        let mut remaining: u64 = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .ok_or("no Content-Length")?;
        total += remaining;
        start = head_end;
        let buffered = ((end - start) as u64).min(remaining);
        start += buffered as usize;
        remaining -= buffered;
        if start == end {
            (start, end) = (0, 0);
        }
        while remaining > 0 {
            let n = conn.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!("page {page}: the body broke off"));
            }
            // A pipelined byte past this body cannot come: we send one request at a time.
            remaining = remaining.saturating_sub(n as u64);
        }
    }
    Ok(total)
}

/// The same pages through a ureq agent configured like the connector's, the
/// bytes read and dropped: the cost of the HTTP stack alone.
fn fetch_ureq(base_url: &str, pages: usize) -> Res<u64> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .accept("application/json")
        .build()
        .new_agent();
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    for page in 1..=pages {
        let mut response = agent
            .get(format!("{base_url}leads?page={page}"))
            .header("x-api-key", mock::API_KEY)
            .call()
            .map_err(|e| format!("page {page}: {e}"))?;
        if response.status() != 200 {
            return Err(format!("page {page}: HTTP {}", response.status()));
        }
        let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
        loop {
            let n = reader.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    Ok(total)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ------------------------------------------------------------ measuring a child

/// What to do with a child's stdout.
#[derive(Clone, Copy, PartialEq)]
enum Capture {
    /// /dev/null, as in the timed runs.
    Null,
    /// Count the lines that are leads RECORDs.
    CountRecords,
    /// Parse it as one number (the references' body bytes).
    Stdout,
}

struct Measured {
    wall: Duration,
    cpu: Duration,
    /// Peak RSS in bytes; NaN where the platform does not say.
    rss: f64,
    records: u64,
    reported: u64,
}

impl Measured {
    fn rss_mib(&self) -> f64 {
        self.rss / MIB
    }
}

/// ru_maxrss is in KiB on Linux.
#[cfg(target_os = "linux")]
const MAXRSS_UNIT: f64 = 1024.0;

/// Runs a child to its exit and measures it: wall time from spawn to reap,
/// CPU time and peak RSS from `wait4`, which reports them for that one child
/// (getrusage(RUSAGE_CHILDREN) would give the largest of all children ever
/// reaped, cargo included).
///
/// Two kernel details make ru_maxrss honest only with care. Rust spawns with
/// posix_spawn, a vfork: the child runs on the parent's memory until exec,
/// and exec folds that memory's high-water mark into the child's ru_maxrss,
/// so a child of a process that once held the mock's pages "peaks" at their
/// size. A real fork (forced by a `pre_exec` hook) instead starts the child
/// with the parent's current anonymous pages, which is why the mock lives in
/// another process and the bench stays small: then the figure is the
/// connector's own, above a floor printed with the results.
#[cfg(target_os = "linux")]
fn spawn_measured(cmd: &mut Command, capture: Capture) -> Res<Measured> {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook runs between fork and exec and does nothing at all,
    // so it cannot break the rules of that window (no allocation, no locks).
    unsafe {
        cmd.pre_exec(|| Ok(()));
    }
    cmd.stdin(Stdio::null()).stdout(match capture {
        Capture::Null => Stdio::null(),
        _ => Stdio::piped(),
    });
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("run {:?}: {e}", cmd.get_program()))?;
    let (records, reported) = read_stdout(&mut child, capture)?;
    let mut status = 0;
    // SAFETY: struct rusage is plain integers, for which all-zero bytes are
    // valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pid is our unreaped child (std never waits on it behind our
    // back), and both pointers are to live locals of the types libc declares.
    let pid = unsafe { libc::wait4(child.id() as _, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    if pid < 0 {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    // WIFEXITED with status 0, spelled out: a signal or a non-zero code fails.
    if status != 0 {
        return Err(format!(
            "{:?} {:?} failed (wait status {status:#x})",
            cmd.get_program(),
            cmd.get_args().collect::<Vec<_>>()
        ));
    }
    let tv = |t: &libc::timeval| Duration::from_micros((t.tv_sec * 1_000_000 + t.tv_usec) as u64);
    Ok(Measured {
        wall,
        cpu: tv(&usage.ru_utime) + tv(&usage.ru_stime),
        rss: usage.ru_maxrss as f64 * MAXRSS_UNIT,
        records,
        reported,
    })
}

/// Elsewhere only the clock: struct rusage differs, so no CPU time or peak RSS.
#[cfg(not(target_os = "linux"))]
fn spawn_measured(cmd: &mut Command, capture: Capture) -> Res<Measured> {
    cmd.stdin(Stdio::null()).stdout(match capture {
        Capture::Null => Stdio::null(),
        _ => Stdio::piped(),
    });
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("run: {e}"))?;
    let (records, reported) = read_stdout(&mut child, capture)?;
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("{:?} failed: {status}", cmd.get_program()));
    }
    Ok(Measured {
        wall: started.elapsed(),
        cpu: Duration::ZERO,
        rss: f64::NAN,
        records,
        reported,
    })
}

fn read_stdout(child: &mut Child, capture: Capture) -> Res<(u64, u64)> {
    let Some(stdout) = child.stdout.take() else {
        return Ok((0, 0));
    };
    let mut reader = BufReader::with_capacity(1 << 20, stdout);
    match capture {
        Capture::Null => Ok((0, 0)),
        Capture::CountRecords => {
            let prefix = br#"{"type":"RECORD","record":{"stream":"leads","#;
            let (mut records, mut line) = (0, Vec::new());
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) => return Ok((records, 0)),
                    Ok(_) => records += u64::from(line.starts_with(prefix)),
                    Err(e) => return Err(format!("read the connector's stdout: {e}")),
                }
            }
        }
        Capture::Stdout => {
            let mut text = String::new();
            reader
                .read_to_string(&mut text)
                .map_err(|e| e.to_string())?;
            let n = text
                .trim()
                .parse()
                .map_err(|_| format!("a reference printed {text:?}"))?;
            Ok((0, n))
        }
    }
}

/// Anonymous resident memory of this process, which a forked child starts with.
fn anon_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024.0 / MIB)
}

/// The connector next to this example, built first.
fn connector_binary() -> PathBuf {
    if !shared::is_release() {
        eprintln!(
            "bench: warning: not a release build; run with `cargo run --release --features bench \
             --example bench`"
        );
    }
    shared::connector_binary().unwrap_or_else(|e| usage(&e))
}

// ------------------------------------------------------------ statistics

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn walls(runs: &[Measured]) -> Vec<f64> {
    runs.iter().map(|r| ms(r.wall)).collect()
}

fn rss_mibs(runs: &[Measured]) -> Vec<f64> {
    runs.iter().map(Measured::rss_mib).collect()
}

/// Per-run wall-time ratios: run i of one client against run i of the
/// other, which ran next to it and so met the same machine noise.
fn ratios(a: &[Measured], b: &[Measured]) -> Vec<f64> {
    ratios_of(a, b, |m| m.wall)
}

/// The same for CPU time.
fn cpu_ratios(a: &[Measured], b: &[Measured]) -> Vec<f64> {
    ratios_of(a, b, |m| m.cpu)
}

fn ratios_of(a: &[Measured], b: &[Measured], of: fn(&Measured) -> Duration) -> Vec<f64> {
    a.iter()
        .zip(b)
        .map(|(a, b)| of(a).as_secs_f64() / of(b).as_secs_f64())
        .collect()
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn min(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// "median (min..max)".
fn spread(xs: &[f64], decimals: usize) -> String {
    format!(
        "{:.d$} ({:.d$}..{:.d$})",
        median(xs),
        min(xs),
        max(xs),
        d = decimals
    )
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT MET"
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
