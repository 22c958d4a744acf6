//! A loopback mock of the PersistIq v1 API, for the tests, the demo and the
//! benchmark (examples include this file by path).
//!
//! It serves deterministic data with every awkward JSON feature a real
//! account has (unicode, escapes, emoji, nulls, custom lead fields), pages of
//! 100 as the API does, checks `x-api-key`, and injects faults on request.
//! Pages are rendered once at start-up so that the server is never the
//! bottleneck of a benchmark.
#![allow(dead_code)] // the tests, the demo and the bench each use a part of it

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// The key the mock accepts unless told otherwise.
pub const API_KEY: &str = "piq-test-key-4f8a2c91e7";

/// What the mock account holds and how it is served.
#[derive(Clone, Debug)]
pub struct Options {
    pub api_key: String,
    pub users: usize,
    pub leads: usize,
    pub campaigns: usize,
    pub events: usize,
    pub dnc_domains: usize,
    pub tags: usize,
    /// Pretty-print pages with CRLF line ends and tabs, as a proxy might.
    pub pretty: bool,
    /// Every answer waits this long, as the real API's round trip does.
    pub delay: Duration,
    /// A rate limit enforced as PersistIq does: 429 past it, and
    /// `X-RateLimit-*` headers on every answer.
    pub rate_limit: Option<RateLimit>,
}

/// `limit` requests per fixed `window` of whole seconds (windows start at
/// epoch multiples of it, so `X-RateLimit-Reset` is exact).
#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    pub limit: u32,
    pub window_secs: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            api_key: API_KEY.to_string(),
            users: 3,
            leads: 1234,
            campaigns: 150,
            events: 1234,
            dnc_domains: 230,
            tags: 12,
            pretty: false,
            delay: Duration::ZERO,
            rate_limit: None,
        }
    }
}

/// Records per page, as PersistIq serves them (events: 500).
pub const PAGE_SIZE: usize = 100;
pub const EVENTS_PAGE_SIZE: usize = 500;

/// The campaign with many leads (two pages of them); others have 0 to 2.
pub const BIG_CAMPAIGN: usize = 0;

/// The campaign with many replies (three pages of them); campaign c has
/// c % 4 otherwise.
pub const BIG_REPLIES_CAMPAIGN: usize = 5;
const BIG_REPLIES: usize = 230;

/// A deliberate misbehaviour, applied to matching requests.
#[derive(Clone, Debug)]
pub enum Action {
    /// Answer with this status, extra headers and body.
    Status(u16, Vec<(String, String)>, String),
    /// Close the connection after sending half of the response.
    ResetMidBody,
    /// Promise more bytes in Content-Length than are sent, then close.
    ShortBody,
    /// Wait this long before answering.
    Stall(Duration),
    /// A 200 whose body is this text.
    Body(String),
    /// Serve the page, with `has_more: true` and this `next_page`.
    NextPage(String),
    /// Serve an empty page that still says `has_more: true`.
    EmptyHasMore,
    /// Serve page 1's content instead, saying `has_more: true`.
    RepeatFirstPage,
    /// Serve page 1's records instead, saying `has_more: true`, in another
    /// order on each page and with a field that changes each time: a
    /// server that ignores `page`.
    IgnorePage,
    /// Serve the normal page but add these headers.
    Headers(Vec<(String, String)>),
    /// Refuse every request, of any path, for this long from now with this
    /// status and `Retry-After` (whole seconds left, or an HTTP date when
    /// the flag is set), as a proxy or CDN does.
    CloseFor(Duration, u16, bool),
    /// A 200 whose body is this many bytes of JSON-ish filler.
    Huge(usize),
    /// Change the account, then serve the request as usual: the account
    /// changes between this request and the one before.
    Change(Change),
    /// Serve this earlier page's body instead (a cache answering page 1
    /// for page 3).
    RepeatPage(u64),
    /// Serve a page of 100 fresh records that says `has_more`, whatever
    /// page is asked for: a server that never stops paging.
    Endless,
}

/// A change to the account's campaigns, as a user makes one during a sync.
#[derive(Clone, Debug)]
pub enum Change {
    /// Campaign c is deleted: gone from the list, its lists answer 404.
    DeleteCampaign(usize),
    /// A new campaign c (an index past the account's) is created at
    /// position `at` of the list, with c % 3 leads and c % 4 replies.
    InsertCampaign { c: usize, at: usize },
    /// Campaign c moves to position `to` of the list.
    MoveCampaign { c: usize, to: usize },
    /// The records at these positions of the list at `path` are deleted.
    DeleteRecords { path: String, at: Vec<usize> },
}

/// A fault: for requests whose path equals `path` (and page equals `page`
/// when given), do `action`, `times` times (`usize::MAX`: always).
#[derive(Clone, Debug)]
pub struct Fault {
    pub path: String,
    pub page: Option<u64>,
    pub times: usize,
    pub action: Action,
}

impl Fault {
    pub fn new(path: &str, page: Option<u64>, times: usize, action: Action) -> Fault {
        Fault {
            path: path.to_string(),
            page,
            times,
            action,
        }
    }

    /// Page `page` of `path` answers only after `wait`, once.
    pub fn stall(path: &str, page: u64, wait: Duration) -> Fault {
        Fault::new(path, Some(page), 1, Action::Stall(wait))
    }
}

/// One request as the mock saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub query: String,
    pub api_key: Option<String>,
    /// The whole request head, for scans for the key.
    pub head: String,
    /// When it arrived.
    pub at: std::time::SystemTime,
}

impl Seen {
    /// A query parameter's value, percent-decoded, as the mock reads it.
    pub fn param(&self, name: &str) -> Option<String> {
        param(&self.query, name)
    }

    /// Whether this was a request for page `page` of the list at `path`.
    pub fn is(&self, path: &str, page: u64) -> bool {
        self.path == path && self.param("page") == Some(page.to_string())
    }
}

struct Shared {
    options: Options,
    data: Mutex<Data>,
    faults: Mutex<Vec<Fault>>,
    seen: Mutex<Vec<Seen>>,
    stop: AtomicBool,
    /// Set by `Action::CloseFor`: every request until then is refused.
    closed: Mutex<Option<Closed>>,
    /// The current rate window's start (epoch secs) and requests in it.
    window: Mutex<(u64, u32)>,
    /// 429s served because the rate limit was exceeded.
    limited: AtomicUsize,
}

/// A refusal in force (`Action::CloseFor`).
#[derive(Clone, Copy)]
struct Closed {
    until: std::time::SystemTime,
    status: u16,
    http_date: bool,
}

/// The account's lists and their pre-rendered pages, kept in step.
struct Data {
    lists: HashMap<String, List>,
    /// path -> rendered pages (index 0 is page 1) of the unfiltered list.
    pages: HashMap<String, Vec<Vec<u8>>>,
}

impl Data {
    fn render(&mut self, path: &str, pretty: bool) {
        if let Some(list) = self.lists.get(path) {
            let all: Vec<&str> = list.records.iter().map(|r| r.json.as_str()).collect();
            self.pages
                .insert(path.to_string(), list.render(&all, pretty));
        }
    }
}

/// A running mock server; stops when dropped.
pub struct MockServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<thread::JoinHandle<()>>,
}

impl MockServer {
    /// Starts a server on 127.0.0.1 with an OS-chosen port.
    pub fn start(options: Options) -> MockServer {
        MockServer::start_on("127.0.0.1:0", options)
    }

    /// Starts a server on `bind`; panics if it cannot (tests want that).
    pub fn start_on(bind: &str, options: Options) -> MockServer {
        MockServer::try_start_on(bind, options).expect("bind the mock server")
    }

    /// Starts a server on `bind`, or says why it cannot (the port is in
    /// use, say): for the demo, which must report that rather than panic.
    pub fn try_start_on(bind: &str, options: Options) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind(bind)?;
        let addr = listener.local_addr()?;
        let mut data = Data {
            lists: account(&options),
            pages: HashMap::new(),
        };
        let paths: Vec<String> = data.lists.keys().cloned().collect();
        for path in paths {
            data.render(&path, options.pretty);
        }
        let shared = Arc::new(Shared {
            options,
            data: Mutex::new(data),
            faults: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            closed: Mutex::new(None),
            window: Mutex::new((0, 0)),
            limited: AtomicUsize::new(0),
        });
        let accept_shared = shared.clone();
        let accept = thread::spawn(move || {
            for conn in listener.incoming() {
                if accept_shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let shared = accept_shared.clone();
                thread::spawn(move || serve_connection(conn, &shared));
            }
        });
        Ok(MockServer {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// `http://127.0.0.1:PORT/v1/`, the base_url to configure.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1/", self.addr)
    }

    pub fn add_fault(&self, fault: Fault) {
        self.shared.faults.lock().unwrap().push(fault);
    }

    /// How many 429s the rate limit (`Options::rate_limit`) made.
    pub fn rate_limited(&self) -> usize {
        self.shared.limited.load(Ordering::SeqCst)
    }

    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The records of a list path (e.g. `leads`, `campaigns/c_000000/leads`)
    /// exactly as served, one compact JSON text each, in order.
    pub fn records(&self, path: &str) -> Vec<String> {
        let data = self.shared.data.lock().unwrap();
        data.lists
            .get(path)
            .map(|l| l.records.iter().map(|r| r.json.clone()).collect())
            .unwrap_or_default()
    }

    /// The ids of the campaigns, in the order the list serves them now.
    pub fn campaign_ids(&self) -> Vec<String> {
        self.records("campaigns")
            .iter()
            .map(|r| {
                let v: serde_json::Value = serde_json::from_str(r).expect("a campaign is JSON");
                v["id"].as_str().expect("a campaign id").to_string()
            })
            .collect()
    }

    /// Every campaign lead of every campaign, in campaign order.
    pub fn campaign_leads(&self) -> Vec<String> {
        self.campaign_ids()
            .iter()
            .flat_map(|c| self.records(&format!("campaigns/{c}/leads")))
            .collect()
    }

    /// Every reply of every campaign, in campaign order, each list in its
    /// page order, exactly as served.
    pub fn replies(&self) -> Vec<String> {
        self.campaign_ids()
            .iter()
            .flat_map(|c| self.records(&format!("campaigns/{c}/replies")))
            .collect()
    }

    /// Changes the account's campaigns now.
    pub fn change(&self, change: &Change) {
        apply(&self.shared, change);
    }

    /// Appends `n` replies to campaign `c`'s list, each sent after every
    /// reply the account holds.
    pub fn add_replies(&self, c: usize, n: usize) {
        let mut data = self.shared.data.lock().unwrap();
        let latest = data
            .lists
            .iter()
            .filter(|(_, l)| l.collection == "replies")
            .flat_map(|(_, l)| l.records.iter().map(|r| r.time))
            .max()
            .unwrap_or(REPLIES_START_AT);
        let (leads, users) = (self.shared.options.leads.max(1), self.shared.options.users);
        let path = replies_path(c);
        if let Some(list) = data.lists.get_mut(&path) {
            let first = list.records.len();
            list.records.extend(
                (first..first + n)
                    .map(|k| reply(c, k, latest + 60 * (k - first + 1) as i64, leads, users)),
            );
        }
        data.render(&path, self.shared.options.pretty);
    }

    /// Deletes campaign `c`'s replies, as if the campaign had been deleted
    /// after it was listed: its replies list answers 404 from now on.
    /// Returns the replies it held.
    pub fn delete_replies(&self, c: usize) -> Vec<String> {
        let path = replies_path(c);
        let mut data = self.shared.data.lock().unwrap();
        data.pages.remove(&path);
        data.lists
            .remove(&path)
            .map(|l| l.records.into_iter().map(|r| r.json).collect())
            .unwrap_or_default()
    }

    /// Number of pages served for a list path.
    pub fn page_count(&self, path: &str) -> usize {
        let data = self.shared.data.lock().unwrap();
        data.pages.get(path).map_or(0, Vec::len)
    }

    /// Total bytes of the pages of a list path, as served.
    pub fn page_bytes(&self, path: &str) -> usize {
        let data = self.shared.data.lock().unwrap();
        data.pages
            .get(path)
            .map_or(0, |p| p.iter().map(Vec::len).sum())
    }

    /// Updates these leads now (their `sent_count` goes up), as a user would.
    pub fn touch_leads(&self, indices: &[usize]) {
        let mut data = self.shared.data.lock().unwrap();
        let users = self.shared.options.users;
        let now = time::now_secs();
        if let Some(list) = data.lists.get_mut("leads") {
            for &i in indices {
                if let Some(rec) = list.records.get_mut(i) {
                    rec.json = lead(i, users, 1);
                    rec.time = now;
                }
            }
        }
        data.render("leads", self.shared.options.pretty);
    }

    /// Appends `n` events, created after every existing one.
    pub fn add_events(&self, n: usize) {
        let mut data = self.shared.data.lock().unwrap();
        if let Some(list) = data.lists.get_mut("events") {
            let first = list.records.len();
            list.records.extend((first..first + n).map(event));
        }
        data.render("events", self.shared.options.pretty);
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// Applies a change to the account's campaigns, pages re-rendered.
fn apply(shared: &Shared, change: &Change) {
    let o = &shared.options;
    let mut data = shared.data.lock().unwrap();
    let campaign_id = |c: usize| id("c", c);
    let position = |data: &Data, c: usize| {
        data.lists["campaigns"]
            .records
            .iter()
            .position(|r| r.json.contains(&format!("\"id\":{}", q(&campaign_id(c)))))
    };
    match change {
        Change::DeleteRecords { path, at } => {
            if let Some(list) = data.lists.get_mut(path) {
                let mut at = at.clone();
                at.sort_unstable();
                for i in at.into_iter().rev() {
                    if i < list.records.len() {
                        list.records.remove(i);
                    }
                }
            }
            data.render(path, o.pretty);
            return;
        }
        &Change::DeleteCampaign(c) => {
            if let Some(i) = position(&data, c) {
                data.lists.get_mut("campaigns").unwrap().records.remove(i);
            }
            for path in [
                format!("campaigns/{}/leads", campaign_id(c)),
                replies_path(c),
            ] {
                data.lists.remove(&path);
                data.pages.remove(&path);
            }
        }
        &Change::InsertCampaign { c, at } => {
            let list = data.lists.get_mut("campaigns").unwrap();
            let at = at.min(list.records.len());
            list.records.insert(
                at,
                Rec {
                    json: campaign(c, o.users),
                    time: 0,
                },
            );
            let (leads, users) = (o.leads.max(1), o.users);
            let members = (0..c % 3)
                .map(|k| campaign_lead(c, k, leads, users))
                .collect();
            let path = format!("campaigns/{}/leads", campaign_id(c));
            data.lists
                .insert(path.clone(), List::new("campaign_leads", true, members));
            data.render(&path, o.pretty);
            let replies = (0..c % 4)
                .map(|k| reply(c, k, reply_sent_at(c, k), leads, users))
                .collect();
            data.lists.insert(
                replies_path(c),
                List {
                    records: replies,
                    ..List::new("replies", true, Vec::new())
                },
            );
            data.render(&replies_path(c), o.pretty);
        }
        &Change::MoveCampaign { c, to } => {
            if let Some(i) = position(&data, c) {
                let list = data.lists.get_mut("campaigns").unwrap();
                let rec = list.records.remove(i);
                let to = to.min(list.records.len());
                list.records.insert(to, rec);
            }
        }
    }
    data.render("campaigns", o.pretty);
}

// ---------------------------------------------------------------- data

// Not the connector's own time code: see time.rs. By path, as the examples
// include this file by path.
#[path = "time.rs"]
pub mod time;

/// One record as served, with the time the API filters it by (a lead's
/// last update, an event's creation), in epoch seconds.
struct Rec {
    json: String,
    time: i64,
}

/// One list endpoint of the account.
struct List {
    collection: &'static str,
    page_size: usize,
    /// Unpaged lists come as one envelope without `has_more`/`next_page`.
    paged: bool,
    records: Vec<Rec>,
}

impl List {
    fn new(collection: &'static str, paged: bool, records: Vec<String>) -> List {
        List {
            collection,
            page_size: PAGE_SIZE,
            paged,
            records: records
                .into_iter()
                .map(|json| Rec { json, time: 0 })
                .collect(),
        }
    }

    fn render(&self, records: &[&str], pretty: bool) -> Vec<Vec<u8>> {
        render_pages(self.collection, records, self.page_size, self.paged, pretty)
    }
}

/// When the account's leads were last updated and its events began.
const LEADS_UPDATED_AT: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const EVENTS_START_AT: i64 = 1_772_323_200; // 2026-03-01T00:00:00Z

/// The whole mock account, by list path.
fn account(o: &Options) -> HashMap<String, List> {
    let mut lists = HashMap::new();
    let mut add = |path: &str, list: List| lists.insert(path.to_string(), list);
    add(
        "users",
        List::new("users", false, (0..o.users).map(user).collect()),
    );
    let mut leads = List::new(
        "leads",
        true,
        (0..o.leads).map(|i| lead(i, o.users, 0)).collect(),
    );
    for (i, rec) in leads.records.iter_mut().enumerate() {
        rec.time = LEADS_UPDATED_AT + i as i64;
    }
    add("leads", leads);
    let campaigns = (0..o.campaigns).map(|i| campaign(i, o.users)).collect();
    add("campaigns", List::new("campaigns", true, campaigns));
    for c in 0..o.campaigns {
        let count = if c == BIG_CAMPAIGN { 150 } else { c % 3 };
        let members = (0..count)
            .map(|k| campaign_lead(c, k, o.leads.max(1), o.users))
            .collect();
        let path = format!("campaigns/{}/leads", id("c", c));
        add(&path, List::new("campaign_leads", true, members));
    }
    for c in 0..o.campaigns {
        let count = if c == BIG_REPLIES_CAMPAIGN {
            BIG_REPLIES
        } else {
            c % 4
        };
        let replies = (0..count)
            .map(|k| reply(c, k, reply_sent_at(c, k), o.leads.max(1), o.users))
            .collect();
        add(
            &replies_path(c),
            List {
                records: replies,
                ..List::new("replies", true, Vec::new())
            },
        );
    }
    add(
        "events",
        List {
            page_size: EVENTS_PAGE_SIZE,
            records: (0..o.events).map(event).collect(),
            ..List::new("events", true, Vec::new())
        },
    );
    let statuses = ["active", "replied", "bounced", "opted_out", "engaged"]
        .iter()
        .enumerate()
        .map(|(i, name)| format!(r#"{{"id":{},"name":{}}}"#, q(&id("lss", i)), q(name)))
        .collect();
    add("lead_statuses", List::new("lead_statuses", false, statuses));
    let fields = [
        ("email", "email"),
        ("first_name", "First name"),
        ("company_name", "Company"),
        ("linkedin", "LinkedIn"),
        ("country", "Country \u{1f30d}"),
        ("tags", "Tags, \"quoted\""),
    ]
    .iter()
    .enumerate()
    .map(|(i, (name, label))| {
        format!(
            r#"{{"id":{},"name":{},"label":{}}}"#,
            q(&id("lcf", i)),
            q(name),
            q(label)
        )
    })
    .collect();
    add("lead_fields", List::new("lead_fields", false, fields));
    let domains = (0..o.dnc_domains)
        .map(|i| {
            let name = format!("blocked-{i}.example.com");
            format!(r#"{{"id":{},"name":{}}}"#, q(&id("dom", i)), q(&name))
        })
        .collect();
    add("dnc_domains", List::new("dnc_domains", true, domains));
    let tags = (0..o.tags)
        .map(|i| {
            let name = AWKWARD[i % AWKWARD.len()];
            format!(r#"{{"id":{},"name":{}}}"#, q(&format!("t_{i}")), q(name))
        })
        .collect();
    add("tags", List::new("tags", true, tags));
    lists
}

/// The i-th event: one a minute from EVENTS_START_AT, in the official shape.
fn event(i: usize) -> Rec {
    const KINDS: &[&str] = &[
        "lead_created",
        "message_sent",
        "message_opened",
        "message_received",
    ];
    let at = EVENTS_START_AT + 60 * i as i64;
    let json = format!(
        r#"{{"id":{},"event_type":{},"data":{{"lead_id":{},"note":{}}},"created_at":{}}}"#,
        q(&id("evt", i)),
        q(KINDS[i % KINDS.len()]),
        q(&id("l", i)),
        opt((i % 5 == 0).then(|| AWKWARD[i % AWKWARD.len()].to_string())),
        q(&time::format_utc(at).replace('Z', ".000Z")),
    );
    Rec { json, time: at }
}

/// The k-th member of campaign c, embedding one of the account's leads.
fn campaign_lead(c: usize, k: usize, leads: usize, users: usize) -> String {
    format!(
        r#"{{"id":{},"campaign_id":{},"mailbox_id":{},"lead":{}}}"#,
        q(&id("cl", c * 1000 + k)),
        q(&id("c", c)),
        opt((k % 4 != 3).then(|| id("mbox", c))),
        lead((c * 7 + k) % leads, users, 0)
    )
}

/// The list path of campaign c's replies.
pub fn replies_path(c: usize) -> String {
    format!("campaigns/{}/replies", id("c", c))
}

/// When the account's replies begin.
const REPLIES_START_AT: i64 = 1_772_409_600; // 2026-03-02T00:00:00Z

/// When the k-th reply of campaign c was sent: reply k of every campaign
/// in hour k, so that campaigns interleave in time and the latest reply is
/// the big campaign's last.
fn reply_sent_at(c: usize, k: usize) -> i64 {
    REPLIES_START_AT + 3600 * k as i64 + 11 * c as i64
}

/// The k-th reply in campaign c, sent at `at` (epoch seconds), in the
/// official field order: what a lead's mail client sent back (HTML with a
/// quoted thread, plain text, auto-replies), with nulls where a reply can
/// lack a field. `sent_at` is written as PersistIq writes times (local
/// time, `-07:00`) or in UTC, so that a later text is not always a later
/// time; the latest reply is in UTC, as no other text sorts after it
/// (PyAirbyte's DuckDB cache drops offsets: its TIMESTAMP columns hold the
/// wall-clock text, and tests/python compares those). U+2028 comes escaped (`\u2028`), as Rails always writes it; odd
/// campaigns' lists are HTML-escaped too (`\u003c`), as Rails does by
/// default.
fn reply(c: usize, k: usize, at: i64, leads: usize, users: usize) -> Rec {
    let lead = (c * 7 + k) % leads;
    let first = format!("First{lead}");
    let awkward = AWKWARD[(c + k) % AWKWARD.len()];
    let kind = match (c + k) % 6 {
        4 => "auto_reply",
        5 => "out_of_office",
        _ => "reply",
    };
    let sentiment = match (kind, k % 4) {
        ("reply", 0) => Some("positive"),
        ("reply", 1) => Some("negative"),
        ("reply", 2) => Some("neutral"),
        _ => None,
    };
    let (subject, body, preview) = match (kind, sentiment) {
        ("reply", Some("positive")) => (
            Some(format!("Re: Quick question, {first} \u{1f44b}")),
            Some(format!(
                "<div dir=\"ltr\">Hi,<br><br>Sounds good \u{2014} Tuesday at 10:00 works. Looking \
                 forward to it! \u{1f64c}<br><br>Best,<br>{first} ({awkward})</div><br>\r\n<div \
                 class=\"gmail_quote\"><div dir=\"ltr\" class=\"gmail_attr\">On Mon, Mar 2, 2026 \
                 at 9:14 AM User 0 &lt;user0@punctual.cc&gt; wrote:<br></div><blockquote \
                 class=\"gmail_quote\" style=\"margin:0px 0px 0px 0.8ex;border-left:1px solid \
                 rgb(204,204,204);padding-left:1ex\">Hi {first},<br>would you have 15 minutes \
                 this week?</blockquote></div>\r\n"
            )),
            Some("Hi, Sounds good \u{2014} Tuesday at 10:00 works. Looking forward to it! \u{1f64c} Best,".to_string()),
        ),
        ("reply", Some("negative")) => (
            Some("RE: Quick question".to_string()),
            Some("<p>Please remove me from your list.</p>\n<p>\"Unsubscribe\" means <b>unsubscribe</b> &amp; don't write again.</p>".to_string()),
            Some("Please remove me from your list. \"Unsubscribe\" means unsubscribe & don't write again.".to_string()),
        ),
        ("reply", Some(_)) => (
            Some(format!("Re: {awkward}")),
            Some(format!(
                "Not right now, maybe next quarter.\u{2028}Thanks!\n\n> On 2 Mar 2026, at 09:14, \
                 User 0 <user0@punctual.cc> wrote:\n>\n> Hi {first},\n> would you have 15 minutes \
                 for a \"quick call\"?\n> \\o/ C:\\Users\\{first}"
            )),
            Some("Not right now, maybe next quarter.\u{2028}Thanks!".to_string()),
        ),
        ("reply", None) => (
            None,
            Some("<html><head><meta charset=\"utf-8\"></head><body><p>Merci, je reviens vers vous la semaine prochaine. \u{2014} Zo\u{eb}</p><p>\u{65e5}\u{672c}\u{8a9e}\u{306e}\u{8fd4}\u{4fe1}\u{3067}\u{3059}\u{3002}</p><p>\u{1f680}\u{1f525}</p></body></html>".to_string()),
            None,
        ),
        ("auto_reply", _) => (
            Some(format!("Automatic reply: Quick question, {first}")),
            Some("Thank you for your e-mail.\r\nI'm away until Monday 9 March with limited access to e-mail.\r\n\tUrgent matters: +1 555 0100".to_string()),
            Some("Thank you for your e-mail. I'm away until Monday 9 March with limited access to e-mail.".to_string()),
        ),
        _ => (Some("Out of Office".to_string()), None, None),
    };
    let to_emails = match (users, k % 4) {
        (0, _) => String::new(),
        (_, 1) => format!(
            "{},{}",
            q(&format!("user{}@punctual.cc", c % users)),
            q(&format!("sales+{c}@punctual.cc"))
        ),
        _ => q(&format!("user{}@punctual.cc", c % users)),
    };
    let cc_emails = match k % 5 {
        0 => "null".to_string(),
        2 => format!("[{}]", q("Zo\u{eb}.\u{c5}ngstr\u{f6}m@ex\u{e4}mple.com")),
        3 => format!("[{},{}]", q("boss@example.com"), q("assistant@example.com")),
        _ => "[]".to_string(),
    };
    let sent_at = if (c + k) % 3 == 0 {
        time::format_utc(at).replace('Z', ".000Z")
    } else {
        time::format_utc(at - 7 * 3600).replace('Z', ".000-07:00")
    };
    let json = format!(
        r#"{{"id":{},"from_email":{},"to_emails":[{}],"cc_emails":{},"subject":{},"body":{},"preview":{},"sent_at":{},"sentiment":{},"kind":{},"lead_id":{},"campaign_id":{},"step_message_id":{}}}"#,
        q(&id("rep", c * 1000 + k)),
        q(&format!("lead{lead}@example.com")),
        to_emails,
        cc_emails,
        opt(subject),
        opt(body),
        opt(preview),
        q(&sent_at),
        opt(sentiment.map(str::to_string)),
        q(kind),
        opt((k % 9 != 8).then(|| id("l", lead))),
        q(&id("c", c)),
        opt((kind != "out_of_office").then(|| id("sm", c * 10 + k % 3))),
    );
    let json = json.replace('\u{2028}', "\\u2028");
    let json = if c % 2 == 1 {
        json.replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
    } else {
        json
    };
    Rec { json, time: at }
}

/// Strings that have broken connectors before.
const AWKWARD: &[&str] = &[
    "Zoë Ångström",
    "O'Brien \"The Closer\"",
    "back\\slash \\n not a newline",
    "line one\nline two\r\n\ttabbed",
    "emoji 🚀🔥 and 日本語",
    "</script><!-- -->",
    "\u{0001} control \u{001f}",
    "",
];

fn q(s: &str) -> String {
    serde_json::to_string(s).expect("string to JSON")
}

fn id(prefix: &str, n: usize) -> String {
    // 6 alphanumerics after the prefix, as in every example the API shows.
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut x = n;
    let mut tail = [b'0'; 6];
    for slot in tail.iter_mut().rev() {
        *slot = ALPHABET[x % 62];
        x /= 62;
    }
    format!("{prefix}_{}", std::str::from_utf8(&tail).unwrap())
}

fn opt(value: Option<String>) -> String {
    value.map_or_else(|| "null".to_string(), |v| q(&v))
}

fn user(i: usize) -> String {
    let name = if i % 2 == 1 {
        AWKWARD[i % AWKWARD.len()].to_string()
    } else {
        format!("User {i}")
    };
    let mailboxes = if i % 3 == 2 {
        String::new()
    } else {
        format!(
            r#","mailboxes":[{{"id":{},"email":{},"campaign_ids":[{}]}}]"#,
            q(&id("mbox", i)),
            q(&format!("user{i}@punctual.cc")),
            q(&id("c", i))
        )
    };
    format!(
        r#"{{"id":{},"name":{},"email":{},"activated":{},"default_mailbox_id":{},"salesforce_id":{}{}}}"#,
        q(&id("u", i)),
        q(&name),
        q(&format!("user{i}@punctual.cc")),
        i % 4 != 3,
        opt((i % 3 != 2).then(|| id("mbox", i))),
        opt((i % 2 == 0).then(|| format!("sf-{i}"))),
        mailboxes
    )
}

/// The i-th lead; `version` goes up each time the lead is updated.
fn lead(i: usize, users: usize, version: usize) -> String {
    const STATUSES: &[&str] = &["active", "replied", "bounced", "opted_out", "engaged"];
    let owner = (users > 0 && i % 7 != 0).then(|| id("u", i % users));
    let awkward = AWKWARD[i % AWKWARD.len()];
    let mut data = format!(
        r#""email":{},"first_name":{},"last_name":{},"company_name":{},"address":null,"city":{},"state":null,"phone":{},"title":null,"industry":{},"snippet":{},"snippet2":null,"snippet3":null,"snippet4":null"#,
        q(&format!("lead{i}@example.com")),
        q(&format!("First{i}")),
        opt((i % 5 != 0).then(|| awkward.to_string())),
        q(&format!(
            "Company {} {}",
            i % 97,
            AWKWARD[(i / 3) % AWKWARD.len()]
        )),
        opt((i % 2 == 0).then(|| "Seattle".to_string())),
        opt((i % 9 == 0).then(|| format!("+1 555 {:04}", i % 10_000))),
        opt((i % 4 == 1).then(|| "Food & Beverage".to_string())),
        opt((i % 6 == 0).then(|| format!("Hi {{first_name}}, {awkward}"))),
    );
    // Custom fields, present on some leads only, as in a real account.
    if i % 3 == 0 {
        data.push_str(&format!(
            r#","linkedin":{},"country":"USA""#,
            q(&format!("https://www.linkedin.com/in/lead{i}"))
        ));
    }
    if i % 10 == 4 {
        data.push_str(r#","tags":"vip, 2024","employee_at_company":"yes""#);
    }
    format!(
        r#"{{"id":{},"status":{},"bounced":{},"optedout":{},"creator_id":{},"owner_id":{},"sent_count":{},"replied_count":{},"last_sent_at":{},"data":{{{}}}}}"#,
        q(&id("l", i)),
        opt((i % 11 != 0).then(|| STATUSES[i % STATUSES.len()].to_string())),
        i % 13 == 0,
        i % 17 == 0,
        opt(owner.clone()),
        opt(owner),
        i % 5 + version,
        i % 2,
        opt((i % 4 != 0).then(|| format!("2026-0{}-1{}T13:20:05.000-07:00", 1 + i % 9, i % 10))),
        data
    )
}

fn campaign(i: usize, users: usize) -> String {
    let creator = if users == 0 || i % 10 == 9 {
        "null".to_string()
    } else {
        let u = i % users;
        format!(
            r#"{{"id":{},"name":{},"email":{}}}"#,
            q(&id("u", u)),
            q(&format!("User {u}")),
            q(&format!("user{u}@punctual.cc"))
        )
    };
    let total = i * 3 % 50;
    format!(
        r#"{{"id":{},"name":{},"creator":{},"stats":{{"prospects_contacted":{},"prospects_reached":{},"prospects_opened":{},"prospects_replied":{},"prospects_bounced":{},"prospects_optedout":{},"total_prospects":{}}}}}"#,
        q(&id("c", i)),
        q(&format!("Campaign {i}: {}", AWKWARD[i % AWKWARD.len()])),
        creator,
        total / 2,
        total / 3,
        total / 4,
        total / 5,
        total / 10,
        total / 20,
        total
    )
}

// ------------------------------------------------------------- serving

/// Renders every page of a list. Unpaged lists mimic the users example in
/// PersistIq's docs: one page, no `has_more`/`next_page` keys.
fn render_pages(
    collection: &str,
    records: &[&str],
    page_size: usize,
    paged: bool,
    pretty: bool,
) -> Vec<Vec<u8>> {
    if !paged {
        return vec![envelope(collection, records, None, pretty)];
    }
    let chunks: Vec<&[&str]> = records.chunks(page_size).collect();
    let count = chunks.len().max(1);
    (0..count)
        .map(|i| {
            let recs = chunks.get(i).copied().unwrap_or(&[]);
            let next = (i + 1 < count).then(|| i as u64 + 2);
            envelope(collection, recs, Some(next), pretty)
        })
        .collect()
}

/// `next`: None for an unpaged list; Some(None) on the last page.
fn envelope(
    collection: &str,
    records: &[&str],
    next: Option<Option<u64>>,
    pretty: bool,
) -> Vec<u8> {
    let mut s = String::from(r#"{"status":"success","errors":[]"#);
    if let Some(next) = next {
        match next {
            Some(n) => s.push_str(&format!(
                r#","has_more":true,"next_page":"https://api.persistiq.com/v1/{collection}?page={n}""#
            )),
            None => s.push_str(r#","has_more":false,"next_page":null"#),
        }
    }
    s.push_str(&format!(r#","{collection}":["#));
    s.push_str(&records.join(","));
    s.push_str("]}");
    if pretty {
        prettify(&s).into_bytes()
    } else {
        s.into_bytes()
    }
}

/// Re-lays a compact JSON text with CRLF, tabs and spaces around tokens.
pub fn prettify(compact: &str) -> String {
    let mut out = String::with_capacity(compact.len() * 2);
    let mut in_str = false;
    let mut escaped = false;
    let mut depth = 0usize;
    for c in compact.chars() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                depth += 1;
                out.push(c);
                out.push_str("\r\n");
                out.push_str(&"\t".repeat(depth));
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                out.push_str("\r\n");
                out.push_str(&"\t".repeat(depth));
                out.push(c);
            }
            ',' => {
                out.push_str(" ,\n");
                out.push_str(&"\t".repeat(depth));
            }
            ':' => out.push_str(" : "),
            _ => out.push(c),
        }
    }
    out
}

fn serve_connection(conn: TcpStream, shared: &Shared) {
    let _ = conn.set_nodelay(true);
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut writer = conn;
    loop {
        let Some(head) = read_head(&mut reader) else {
            return;
        };
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let keep_open = respond(&head, &mut writer, shared);
        if !keep_open {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// The request head up to the blank line, or None when the peer closed.
pub(crate) fn read_head(reader: &mut BufReader<TcpStream>) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).ok()?;
        if n == 0 {
            return None;
        }
        if line == "\r\n" || line == "\n" {
            return Some(head);
        }
        head.push_str(&line);
        if head.len() > 64 * 1024 {
            return None;
        }
    }
}

/// The value of header `name` in a request head.
pub(crate) fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// What a request asked for: the list, its query and page, and the key.
struct Asked {
    path: String,
    query: String,
    page: u64,
    key: Option<String>,
}

impl Asked {
    fn of(head: &str) -> Asked {
        let target = head.split_whitespace().nth(1).unwrap_or("/");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let page = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("page="))
            .and_then(|p| p.parse().ok())
            .unwrap_or(1);
        Asked {
            path: path.strip_prefix("/v1/").unwrap_or(path).to_string(),
            query: query.to_string(),
            page,
            key: header(head, "x-api-key").map(str::to_string),
        }
    }
}

/// Answers one request; `false` when the connection must close after it.
/// In order: note it, take a fault due for it, answer while closed, count
/// it in the rate window, act on the fault, then serve the page.
fn respond(head: &str, w: &mut TcpStream, shared: &Shared) -> bool {
    let asked = Asked::of(head);
    shared.seen.lock().unwrap().push(Seen {
        path: asked.path.clone(),
        query: asked.query.clone(),
        api_key: asked.key.clone(),
        head: head.to_string(),
        at: std::time::SystemTime::now(),
    });
    let fault = take_fault(shared, &asked);
    if !shared.options.delay.is_zero() {
        thread::sleep(shared.options.delay);
    }
    if let Some(Action::CloseFor(d, status, http_date)) = &fault {
        *shared.closed.lock().unwrap() = Some(Closed {
            until: std::time::SystemTime::now() + *d,
            status: *status,
            http_date: *http_date,
        });
    }
    if let Some(keep_open) = answer_if_closed(shared, w) {
        return keep_open;
    }
    let mut headers = match count_in_window(shared) {
        Window::Open(headers) => headers,
        Window::Refused { headers, body } => return send(w, 429, &headers, body.as_bytes()),
    };
    if let Some(fault) = fault {
        match act(fault, shared, &asked, w) {
            Acted::Answered(keep_open) => return keep_open,
            Acted::AddHeaders(more) => headers.extend(more),
            Acted::GoOn => {}
        }
    }
    serve(shared, &asked, w, &headers)
}

/// The first fault due for this list and page, counted as used.
fn take_fault(shared: &Shared, asked: &Asked) -> Option<Action> {
    let mut faults = shared.faults.lock().unwrap();
    let hit = faults
        .iter_mut()
        .find(|f| f.times > 0 && f.path == asked.path && f.page.is_none_or(|p| p == asked.page));
    hit.map(|f| {
        if f.times != usize::MAX {
            f.times -= 1;
        }
        f.action.clone()
    })
}

/// While the API is closed (`Action::CloseFor`), every request gets the
/// closed status with a Retry-After until it opens again.
fn answer_if_closed(shared: &Shared, w: &mut TcpStream) -> Option<bool> {
    let closed = *shared.closed.lock().unwrap();
    let c = closed.filter(|c| c.until > std::time::SystemTime::now())?;
    let left = c
        .until
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    let value = if c.http_date {
        http_date(c.until)
    } else {
        left.as_secs_f64().ceil().to_string()
    };
    let body = r#"{"status":"error","error":{"reason":"unavailable","message":"come back later"}}"#;
    Some(send(
        w,
        c.status,
        &[("Retry-After".into(), value)],
        body.as_bytes(),
    ))
}

/// What the rate window says of one more request.
enum Window {
    /// Within the limit: the `X-RateLimit-*` headers to send (none when
    /// the mock has no limit).
    Open(Vec<(String, String)>),
    /// Over it: the 429 to send.
    Refused {
        headers: Vec<(String, String)>,
        body: String,
    },
}

/// Counts the request in the current fixed window, as the API does.
fn count_in_window(shared: &Shared) -> Window {
    let Some(limit) = shared.options.rate_limit else {
        return Window::Open(Vec::new());
    };
    let now = time::now_secs() as u64;
    let start = now - now % limit.window_secs;
    let mut window = shared.window.lock().unwrap();
    if window.0 != start {
        *window = (start, 0);
    }
    window.1 += 1;
    let used = window.1;
    let reset = start + limit.window_secs;
    let headers: Vec<(String, String)> = vec![
        ("X-RateLimit-Limit".into(), limit.limit.to_string()),
        (
            "X-RateLimit-Remaining".into(),
            limit.limit.saturating_sub(used).to_string(),
        ),
        ("X-RateLimit-Reset".into(), reset.to_string()),
    ];
    if used <= limit.limit {
        return Window::Open(headers);
    }
    shared.limited.fetch_add(1, Ordering::SeqCst);
    let body = format!(
        r#"{{"error":{{"reason":"too_many_requests","message":"You performed more than {} requests per minute. Limit will be reseted at {reset}."}}}}"#,
        limit.limit
    );
    Window::Refused { headers, body }
}

/// What a fault did.
enum Acted {
    /// It answered the request; `true` keeps the connection open.
    Answered(bool),
    /// The page is served, with these headers added.
    AddHeaders(Vec<(String, String)>),
    /// The page is served as usual (after a stall, or a change to the data).
    GoOn,
}

/// Carries out a fault.
fn act(fault: Action, shared: &Shared, asked: &Asked, w: &mut TcpStream) -> Acted {
    let Asked {
        path, query, page, ..
    } = asked;
    let (path, query, page) = (path.as_str(), query.as_str(), *page);
    let answered = match fault {
        Action::Status(code, headers, body) => send(w, code, &headers, body.as_bytes()),
        Action::ResetMidBody => {
            let body = page_body(shared, path, query, page).unwrap_or_default();
            let _ = w.write_all(ok_head(body.len()).as_bytes());
            let _ = w.write_all(&body[..body.len() / 2]);
            let _ = w.flush();
            false
        }
        Action::ShortBody => {
            let body = page_body(shared, path, query, page).unwrap_or_default();
            let _ = w.write_all(ok_head(body.len() + 100).as_bytes());
            let _ = w.write_all(&body);
            let _ = w.flush();
            false
        }
        Action::Stall(d) => {
            thread::sleep(d);
            return Acted::GoOn;
        }
        Action::Body(text) => send(w, 200, &[], text.as_bytes()),
        Action::NextPage(url) => {
            let body = page_body(shared, path, query, page).unwrap_or_default();
            let body = String::from_utf8(body).unwrap().replacen(
                r#""has_more":false,"next_page":null"#,
                &format!(r#""has_more":true,"next_page":{}"#, q(&url)),
                1,
            );
            send(w, 200, &[], body.as_bytes())
        }
        Action::EmptyHasMore => {
            let coll = collection_of(shared, path);
            let body = format!(
                r#"{{"status":"success","errors":[],"has_more":true,"next_page":null,"{coll}":[]}}"#
            );
            send(w, 200, &[], body.as_bytes())
        }
        Action::RepeatFirstPage => {
            let body = page_body(shared, path, query, 1).unwrap_or_default();
            let body = String::from_utf8(body).unwrap().replacen(
                r#""has_more":false"#,
                r#""has_more":true"#,
                1,
            );
            send(w, 200, &[], body.as_bytes())
        }
        Action::IgnorePage => {
            let body = page_body(shared, path, query, 1).unwrap_or_default();
            let mut body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let records = body[collection_of(shared, path)].as_array_mut().unwrap();
            let turn = page as usize % records.len().max(1);
            records.rotate_left(turn);
            for r in records.iter_mut() {
                r["views"] = serde_json::json!(page);
            }
            body["has_more"] = serde_json::json!(true);
            send(w, 200, &[], body.to_string().as_bytes())
        }
        Action::Headers(h) => return Acted::AddHeaders(h),
        // Already in force: `respond` answered as closed.
        Action::CloseFor(..) => unreachable!("answered as closed before the fault acts"),
        Action::Change(change) => {
            apply(shared, &change);
            return Acted::GoOn;
        }
        Action::RepeatPage(earlier) => {
            let body = page_body(shared, path, query, earlier).unwrap_or_default();
            send(w, 200, &[], &body)
        }
        Action::Endless => {
            let coll = collection_of(shared, path);
            let records: Vec<String> = (0..PAGE_SIZE)
                .map(|k| format!(r#"{{"id":"x_{page}_{k}","name":"fresh"}}"#))
                .collect();
            let body = format!(
                r#"{{"status":"success","errors":[],"has_more":true,"next_page":null,"{coll}":[{}]}}"#,
                records.join(",")
            );
            send(w, 200, &[], body.as_bytes())
        }
        Action::Huge(n) => {
            let mut body = b"{\"users\":[\"".to_vec();
            body.resize(n, b'x');
            send(w, 200, &[], &body)
        }
    };
    Acted::Answered(answered)
}

/// A 200 head that announces `len` body bytes.
fn ok_head(len: usize) -> String {
    format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n")
}

/// The request as the API answers it: the key checked, then the page.
fn serve(shared: &Shared, asked: &Asked, w: &mut TcpStream, headers: &[(String, String)]) -> bool {
    if asked.key.as_deref() != Some(shared.options.api_key.as_str()) {
        // PersistIq's own words, which echo the key that was sent.
        let body = format!(
            r#"{{"status":"error","error":{{"reason":"unauthorized","message":"Failed to find api key: {}.  Did you set header 'x-api-key'?"}}}}"#,
            asked
                .key
                .as_deref()
                .unwrap_or_default()
                .replace(['"', '\\'], "")
        );
        return send(w, 401, &[], body.as_bytes());
    }
    match page_body(shared, &asked.path, &asked.query, asked.page) {
        Ok(body) => send(w, 200, headers, &body),
        Err((status, reason, message)) => {
            let body = format!(
                r#"{{"status":"error","error":{{"reason":{},"message":{}}}}}"#,
                q(reason),
                q(&message)
            );
            send(w, status, &[], body.as_bytes())
        }
    }
}

/// The body for a page of a list, filtered as the query asks; past the
/// last page, an empty last page. `Err` is (status, reason, message).
fn page_body(
    shared: &Shared,
    path: &str,
    query: &str,
    page: u64,
) -> Result<Vec<u8>, (u16, &'static str, String)> {
    let not_found = || (404, "not_found", "Not found".to_string());
    let data = shared.data.lock().unwrap();
    let list = data.lists.get(path).ok_or_else(not_found)?;
    if page == 0 {
        return Err(not_found());
    }
    // The API's time filters: leads updated after a time, events at or after it.
    let filter = match path {
        "leads" => param(query, "updated_after").map(|t| (t, false)),
        "events" => param(query, "start_at").map(|t| (t, true)),
        _ => None,
    };
    let filtered;
    let pages = match filter {
        None if list.collection == "replies" => match reply_filter(list, query)? {
            None => data.pages.get(path).ok_or_else(not_found)?,
            Some(kept) => {
                filtered = list.render(&kept, shared.options.pretty);
                &filtered
            }
        },
        None => data.pages.get(path).ok_or_else(not_found)?,
        Some((value, inclusive)) => {
            let Some(time::Moment { secs: since, .. }) = time::parse(&value) else {
                return Err((400, "bad_params", format!("invalid time: {value}")));
            };
            let kept: Vec<&str> = list
                .records
                .iter()
                .filter(|r| r.time > since || (inclusive && r.time == since))
                .map(|r| r.json.as_str())
                .collect();
            filtered = list.render(&kept, shared.options.pretty);
            &filtered
        }
    };
    Ok(match pages.get(page as usize - 1) {
        Some(p) => p.clone(),
        None => format!(
            r#"{{"status":"success","errors":[],"has_more":false,"next_page":null,"{}":[]}}"#,
            list.collection
        )
        .into_bytes(),
    })
}

/// The replies a query keeps, when it filters them: sent on or after
/// `start_at` and on or before `end_at` (both inclusive, "on or after/on or
/// before" in the API's words), of lead `lead_id`.
fn reply_filter<'a>(
    list: &'a List,
    query: &str,
) -> Result<Option<Vec<&'a str>>, (u16, &'static str, String)> {
    let bound = |name: &str| match param(query, name) {
        None => Ok(None),
        Some(value) => time::parse(&value)
            .map(|m| Some(m.secs))
            .ok_or_else(|| (400, "bad_params", format!("invalid time: {value}"))),
    };
    let (start, end, lead) = (
        bound("start_at")?,
        bound("end_at")?,
        param(query, "lead_id"),
    );
    if start.is_none() && end.is_none() && lead.is_none() {
        return Ok(None);
    }
    let of_lead = |json: &str| {
        let record: serde_json::Value = serde_json::from_str(json).expect("a mock reply is JSON");
        lead.as_deref().is_none_or(|l| record["lead_id"] == l)
    };
    Ok(Some(
        list.records
            .iter()
            .filter(|r| start.is_none_or(|s| r.time >= s) && end.is_none_or(|e| r.time <= e))
            .filter(|r| of_lead(&r.json))
            .map(|r| r.json.as_str())
            .collect(),
    ))
}

/// A query parameter's value, percent-decoded.
fn param(query: &str, name: &str) -> Option<String> {
    let raw = query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))?;
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The collection key of a list path.
fn collection_of(shared: &Shared, path: &str) -> &'static str {
    let data = shared.data.lock().unwrap();
    data.lists.get(path).map_or("items", |l| l.collection)
}

fn send(w: &mut TcpStream, status: u16, headers: &[(String, String)], body: &[u8]) -> bool {
    let reason = match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        500 => "Internal Server Error",
        _ => "Status",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        head.push_str("Content-Type: application/json; charset=utf-8\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut msg = head.into_bytes();
    msg.extend_from_slice(body);
    w.write_all(&msg).and_then(|_| w.flush()).is_ok()
}

/// `t` as an HTTP date (IMF-fixdate), rounded up to the next second.
pub fn http_date(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs_f64().ceil() as i64);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let iso = time::format_utc(secs); // YYYY-MM-DDTHH:MM:SSZ
    let month: usize = iso[5..7].parse().unwrap_or(1);
    format!(
        "{}, {} {} {} {} GMT",
        DAYS[secs.div_euclid(86_400).rem_euclid(7) as usize],
        &iso[8..10],
        MONTHS[month - 1],
        &iso[0..4],
        &iso[11..19]
    )
}

/// Drains and ignores a reader; used by the trap server below.
fn drain(mut r: impl Read) {
    let mut buf = [0u8; 4096];
    while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
}

/// A listener that only counts connections: a host the connector must never
/// contact (the target of a malicious `next_page` or redirect).
pub struct Trap {
    pub addr: SocketAddr,
    pub hits: Arc<Mutex<Vec<String>>>,
}

impl Trap {
    pub fn start(bind: &str) -> Trap {
        let listener = TcpListener::bind(bind).expect("bind trap");
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let h = hits.clone();
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
                let mut reader = BufReader::new(conn);
                let head = read_head(&mut reader).unwrap_or_default();
                h.lock().unwrap().push(head);
                drain(reader);
            }
        });
        Trap { addr, hits }
    }
}
