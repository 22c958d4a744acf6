//! `read`: one generic loop that walks a stream's pages and writes each
//! record as a RECORD line once its page has been checked (on a fast link,
//! right after the next page's answer arrives; see `Pager`).
//!
//! Every stream is a row of `streams::STREAMS`; what differs between them
//! (paging, a parent stream, an incremental cursor) is data this module reads.

use crate::catalog::{Selected, State, SyncMode};
use crate::error::{Error, Result};
use crate::http::{encode, Client, Sent};
use crate::output::{Out, RecordEnd, Status, StreamId};
use crate::page::{self, Record};
use crate::progress::count;
use crate::streams::{self, Cursor, Incremental, Paging, StreamDef};
use crate::time;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::time::Instant;

/// Pages in a row that bring nothing new (empty, or a repeat of the page
/// before) while the server still says `has_more`: then it is looping.
const MAX_IDLE_PAGES: u32 = 3;

/// A progress LOG line every this many pages.
const PROGRESS_EVERY_PAGES: u64 = 10;

/// A sync-start cursor is set back by this much: the API's clock and ours
/// differ, and an update may become visible to the filter a little late.
const SYNC_START_MARGIN_SECS: i64 = 300;

/// Reads the selected streams in catalog order. Returns whether every
/// stream completed; a failed stream has had its TRACE ERROR and INCOMPLETE
/// status written, and the next streams are still attempted.
pub fn read(
    client: &mut Client,
    selected: &[Selected],
    state: &State,
    start_date: Option<&time::Stamp>,
    out: &mut Out,
) -> Result<bool> {
    let started = Instant::now();
    let mut failed = Vec::new();
    let mut unknown = Vec::new();
    for sel in selected {
        let id = StreamId::new(&sel.name, sel.namespace.as_deref());
        let Some(def) = streams::find(&sel.name) else {
            out.log(
                "WARN",
                &format!(
                    "stream {} is not a stream of this source and was skipped; the streams are: {}",
                    sel.name,
                    streams::names()
                ),
            );
            out.status(&id, Status::Incomplete);
            out.progress_failed(&sel.name, "not a stream of this source");
            out.flush()?;
            unknown.push(sel.name.as_str());
            continue;
        };
        let result = Plan::new(def, sel.sync_mode, state.get(&sel.name), start_date, out)
            .and_then(|plan| StreamRun::new(def, &id, plan).sync(client, out));
        match result {
            Ok(_) => {}
            Err(e) if e.output_closed => return Err(e),
            Err(e) => {
                out.progress_failed(&sel.name, &e.message);
                out.trace_error(&e, Some(&id));
                out.status(&id, Status::Incomplete);
                out.flush()?;
                failed.push(sel.name.as_str());
            }
        }
    }
    let mut summary = format!(
        "sync finished in {:.1} s: {}, {} of {} streams complete",
        started.elapsed().as_secs_f64(),
        count(out.records_written(), "record"),
        selected.len() - failed.len() - unknown.len(),
        selected.len()
    );
    if !unknown.is_empty() {
        summary.push_str(&format!(
            "; not streams of this source: {}",
            unknown.join(", ")
        ));
    }
    if failed.is_empty() {
        out.log("INFO", &summary);
    } else {
        out.log(
            "ERROR",
            &format!("{summary}; failed: {}", failed.join(", ")),
        );
    }
    out.flush()?;
    Ok(failed.is_empty())
}

/// How one stream is read this time: in full, or from a cursor.
enum Plan {
    Full,
    Incremental(Checkpoint),
}

/// An incremental stream's position.
///
/// While the stream is in progress its state holds the cursor it started
/// from plus the next page; the cursor moves only when the stream completes,
/// so a resumed run can never skip a record the interrupted one had not yet
/// written, whatever order the API returns records in.
struct Checkpoint {
    spec: Incremental,
    /// The cursor of the last completed sync (or `start_date`): this run's filter.
    since: Option<time::Stamp>,
    /// What the cursor becomes once this sync completes.
    next: Option<time::Stamp>,
    first_page: u64,
}

impl Plan {
    /// The record member that holds the cursor, if the cursor is one.
    fn cursor_field(&self) -> Option<&'static str> {
        match self {
            Plan::Incremental(c) => c.spec.cursor.record_field(),
            Plan::Full => None,
        }
    }

    fn new(
        def: &StreamDef,
        mode: SyncMode,
        saved: Option<&Value>,
        start_date: Option<&time::Stamp>,
        out: &mut Out,
    ) -> Result<Plan> {
        let Some(spec) = def.incremental else {
            if mode == SyncMode::Incremental {
                // PyAirbyte asks for incremental on every stream; a full read is the honest answer.
                out.log(
                    "INFO",
                    &format!(
                        "stream {} supports only full_refresh; reading it in full",
                        def.name
                    ),
                );
            }
            return Ok(Plan::Full);
        };
        if mode == SyncMode::FullRefresh {
            return Ok(Plan::Full);
        }
        let key = spec.cursor.state_key();
        let bad = |what: &str| {
            Error::config(format!(
                "the state of stream {} is malformed: {what}; remove it from the state file to sync the stream from the start",
                def.name
            ))
        };
        let saved = match saved {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(map),
            Some(_) => return Err(bad("it must be a JSON object")),
        };
        let time_at = |value: Option<&Value>, what: &str| -> Result<Option<time::Stamp>> {
            match value {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => time::parse(s)
                    .map(|t| Some((t, s.clone())))
                    .ok_or_else(|| bad(&format!("`{what}` is not an ISO-8601 time: {s:?}"))),
                Some(other) => Err(bad(&format!(
                    "`{what}` must be a time string, found {other}"
                ))),
            }
        };
        let since = match time_at(saved.and_then(|m| m.get(key)), key)? {
            Some(cursor) => Some(cursor),
            None => start_date.cloned(),
        };
        let mut first_page = 1;
        let mut next = None;
        match saved.and_then(|m| m.get("resume")) {
            None | Some(Value::Null) => {}
            Some(Value::Object(resume)) => {
                first_page = resume
                    .get("page")
                    .and_then(Value::as_u64)
                    .filter(|p| *p >= 1)
                    .ok_or_else(|| bad("`resume.page` must be a page number from 1"))?;
                next = time_at(resume.get("cursor"), "resume.cursor")?;
            }
            Some(_) => return Err(bad("`resume` must be an object")),
        }
        if let (Cursor::SyncStart(_), None) = (spec.cursor, &next) {
            let secs = time::now_secs() - SYNC_START_MARGIN_SECS;
            next = Some(((secs, 0), time::format_utc(secs)));
        }
        if first_page > 1 {
            out.log(
                "INFO",
                &format!(
                    "stream {}: resuming an interrupted sync at page {first_page}",
                    def.name
                ),
            );
        }
        Ok(Plan::Incremental(Checkpoint {
            spec,
            since,
            next,
            first_page,
        }))
    }
}

impl Checkpoint {
    /// `&param=cursor` for the list request, when there is a cursor.
    fn filter(&self) -> String {
        self.since
            .as_ref()
            .map(|(_, s)| format!("&{}={}", self.spec.param, encode(s)))
            .unwrap_or_default()
    }

    /// The state to resume from before `next_page`.
    fn in_progress(&self, next_page: u64) -> Value {
        json!({
            self.spec.cursor.state_key(): self.since.as_ref().map(|(_, s)| s),
            "resume": {"page": next_page, "cursor": self.next.as_ref().map(|(_, s)| s)},
        })
    }

    /// The state once every page has been read.
    fn complete(&self) -> Value {
        let cursor = self.next.as_ref().or(self.since.as_ref()).map(|(_, s)| s);
        json!({ self.spec.cursor.state_key(): cursor })
    }

    /// Whether a record with this cursor value belongs in the sync, noting
    /// it as the new high-water mark when it is one.
    fn admit(&mut self, value: Option<Cow<str>>) -> bool {
        let Some((at, text)) = value.and_then(|v| time::parse(&v).map(|t| (t, v))) else {
            return true; // no usable time: never drop a record over it
        };
        if self.since.as_ref().is_some_and(|(since, _)| at < *since) {
            return false;
        }
        if self.next.as_ref().is_none_or(|(max, _)| at > *max) {
            self.next = Some((at, text.into_owned()));
        }
        true
    }
}

/// One stream's sync in progress.
struct StreamRun<'a> {
    def: &'a StreamDef,
    id: &'a StreamId,
    plan: Plan,
    running: bool,
    pages: u64,
    records: u64,
    /// Records since this stream's previous STATE, for its `recordCount`.
    unstated: u64,
}

impl<'a> StreamRun<'a> {
    fn new(def: &'a StreamDef, id: &'a StreamId, plan: Plan) -> StreamRun<'a> {
        StreamRun {
            def,
            id,
            plan,
            running: false,
            pages: 0,
            records: 0,
            unstated: 0,
        }
    }

    /// Syncs the stream from its first page to its last; returns its record count.
    fn sync(mut self, client: &mut Client, out: &mut Out) -> Result<u64> {
        let started = Instant::now();
        out.progress_start(&self.id.name);
        out.status(self.id, Status::Started);
        out.flush()?;
        match self.def.parent {
            None => self.read_list(client, self.def.path.to_string(), out)?,
            Some(parent) => self.read_per_parent(client, parent, out)?,
        }
        let final_state = match &self.plan {
            Plan::Full => json!({"__ab_no_cursor_state_message": true}),
            Plan::Incremental(c) => c.complete(),
        };
        out.state(self.id, &final_state, self.unstated);
        out.status(self.id, Status::Complete);
        out.progress_done(&self.id.name, self.pages, self.records);
        out.log(
            "INFO",
            &format!(
                "stream {}: {} in {}, {:.1} s",
                self.id.name,
                count(self.records, "record"),
                count(self.pages, "page"),
                started.elapsed().as_secs_f64()
            ),
        );
        out.flush()?;
        Ok(self.records)
    }

    /// Walks one list endpoint to its end, writing its records; an
    /// incremental stream checkpoints after every page.
    fn read_list(&mut self, client: &mut Client, path: String, out: &mut Out) -> Result<()> {
        let (first_page, filter) = match &self.plan {
            Plan::Incremental(c) => (c.first_page, c.filter()),
            Plan::Full => (1, String::new()),
        };
        let label = format!("stream {}", self.id.name);
        let mut pager = Pager::new(path, filter, self.def, label, first_page);
        pager.field = self.plan.cursor_field();
        while pager
            .next(client, out, |records, out| self.take(records, out))?
            .is_some()
        {
            if let (Plan::Incremental(c), Some(next_page)) = (&self.plan, pager.next_page()) {
                out.state(self.id, &c.in_progress(next_page), self.unstated);
                self.unstated = 0;
            }
            self.page_done(out)?;
        }
        Ok(())
    }

    /// Walks the parent stream's pages, and for each parent record the
    /// child list under its id. A parent that vanished in between (404) is
    /// skipped with a warning.
    fn read_per_parent(&mut self, client: &mut Client, parent: &str, out: &mut Out) -> Result<()> {
        let parent_def = streams::find(parent).ok_or_else(|| {
            Error::system(format!(
                "stream {}: unknown parent stream {parent}",
                self.def.name
            ))
        })?;
        let label = format!("stream {} (listing {parent})", self.id.name);
        let mut parents = Pager::new(
            parent_def.path.to_string(),
            String::new(),
            parent_def,
            label,
            1,
        );
        parents.overlap = false;
        parents.field = Some("id");
        let (mut found, mut missing) = (0u64, 0u64);
        while let Some(ids) = parents.next(client, out, |records, out| {
            self.mark_running(out);
            let ids: Vec<String> = records
                .iter()
                .filter_map(|r| r.field_str().map(Cow::into_owned))
                .collect();
            if ids.len() < records.len() {
                out.log(
                    "WARN",
                    &format!(
                        "stream {}: {} {parent} records have no string `id`; their children cannot be listed",
                        self.id.name,
                        records.len() - ids.len()
                    ),
                );
            }
            ids
        })? {
            for parent_id in ids {
                let path = self.def.path.replace("{parent_id}", &encode(&parent_id));
                match self.read_list(client, path, out) {
                    Ok(()) => found += 1,
                    Err(e) if e.http_status == Some(404) => {
                        missing += 1;
                        out.log(
                            "WARN",
                            &format!(
                                "stream {}: {parent} {parent_id} was not found (deleted during the sync?); skipped",
                                self.id.name
                            ),
                        );
                        out.flush()?;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        // One parent deleted mid-sync is news; all of them is a wrong endpoint.
        if found == 0 && missing > 0 {
            return Err(Error::system(format!(
                "stream {}: the list answered HTTP 404 for every one of the {missing} {parent}; the endpoint {} seems wrong",
                self.id.name, self.def.path
            )));
        }
        Ok(())
    }

    fn mark_running(&mut self, out: &mut Out) {
        if !self.running {
            // RUNNING: the stream has answered, even if with no records.
            out.status(self.id, Status::Running);
            self.running = true;
        }
    }

    /// Writes a page's records.
    fn take(&mut self, records: &[Record], out: &mut Out) {
        self.mark_running(out);
        let end = RecordEnd::now();
        let mut written = 0;
        for record in records {
            // The page was scanned for the cursor field, if the cursor is one.
            if let Plan::Incremental(c) = &mut self.plan {
                if !c.admit(record.field_str()) {
                    continue;
                }
            }
            out.record(self.id, record, &end);
            written += 1;
        }
        self.records += written as u64;
        self.unstated += written as u64;
    }

    fn page_done(&mut self, out: &mut Out) -> Result<()> {
        self.pages += 1;
        out.progress_page(&self.id.name, self.pages, self.records);
        if self.pages % PROGRESS_EVERY_PAGES == 0 {
            out.log(
                "INFO",
                &format!(
                    "stream {}: {} pages, {} so far",
                    self.id.name,
                    self.pages,
                    count(self.records, "record")
                ),
            );
        }
        out.flush()
    }
}

/// Walks the pages of one list endpoint.
///
/// Page N+1 is always built from base_url here, never taken from the
/// envelope's `next_page`: that URL could name another host, and the key
/// must not travel there.
///
/// On a fast link (`Conn::may_send_early`), when the envelope says early on
/// that more pages follow, the request for page N+1 goes out before page N
/// has been checked, and the check runs while the server prepares that
/// answer (`Conn::send_overlapped`). Page N's records follow once that
/// answer is in. One request is in flight at a time, as before.
struct Pager {
    path: String,
    /// Extra query parameters, each as `&name=value`.
    filter: String,
    collection: &'static str,
    /// The record member to find in each record while the page is checked.
    field: Option<&'static str>,
    paged: bool,
    /// Whether page N+1 may be requested while page N is being checked: not
    /// for a parent list, whose caller sends its own requests between pages.
    overlap: bool,
    label: String,
    page: u64,
    done: bool,
    idle_pages: u32,
    /// The previous page's record array, to notice the same page again.
    previous: Vec<u8>,
    /// The request for `page`, if it went out while the page before it was checked.
    ahead: Option<Sent>,
}

impl Pager {
    fn new(path: String, filter: String, def: &StreamDef, label: String, first_page: u64) -> Pager {
        Pager {
            path,
            filter,
            collection: def.collection,
            field: None,
            paged: def.paging == Paging::Pages,
            overlap: true,
            label,
            page: first_page,
            done: false,
            idle_pages: 0,
            previous: Vec::new(),
            ahead: None,
        }
    }

    /// The page the next call reads, if there is one.
    fn next_page(&self) -> Option<u64> {
        (!self.done).then_some(self.page)
    }

    /// The request path of page `page`.
    fn path_query(&self, page: u64) -> String {
        if self.paged {
            format!("{}?page={}{}", self.path, page, self.filter)
        } else {
            let filter = self.filter.strip_prefix('&').map(|f| format!("?{f}"));
            format!("{}{}", self.path, filter.unwrap_or_default())
        }
    }

    /// Fetches the next page and hands its new records (none for an empty
    /// or repeated page) to `take`, returning what `take` made of them;
    /// `None` once the list has ended.
    fn next<T>(
        &mut self,
        client: &mut Client,
        out: &mut Out,
        mut take: impl FnMut(&[Record], &mut Out) -> T,
    ) -> Result<Option<T>> {
        if self.done {
            return Ok(None);
        }
        let path_query = self.path_query(self.page);
        let what = if self.paged {
            format!("{}, page {}", self.label, self.page)
        } else {
            self.label.clone()
        };
        let next_query = (self.paged && self.overlap).then(|| self.path_query(self.page + 1));
        let previous = &mut self.previous;
        let (collection, field) = (self.collection, self.field);
        let ahead = self.ahead.take();
        let (has_more, fresh, taken, ahead) =
            client.get_overlapped(ahead, &path_query, &what, out, |conn, body, out| {
                let (layout, ahead) = match &next_query {
                    Some(next)
                        if conn.may_send_early()
                            && page::says_more_before_records(body, collection) =>
                    {
                        let (sent, lent, layout) =
                            conn.send_overlapped(next, std::mem::take(body), move |b: &Vec<u8>| {
                                page::scan(b, collection, field)
                            });
                        *body = lent;
                        match layout {
                            Ok(layout) => (layout, Some(sent)),
                            Err(why) => {
                                conn.discard(sent);
                                return Err(why);
                            }
                        }
                    }
                    _ => (page::scan(body, collection, field)?, None),
                };
                let page = layout.page(body);
                let fresh = !page.records.is_empty() && page.items != previous.as_slice();
                let taken = take(if fresh { &page.records } else { &[] }, out);
                previous.clear();
                previous.extend_from_slice(page.items);
                Ok((page.has_more, fresh, taken, ahead))
            })?;
        self.page += 1;
        match ahead {
            Some(sent) if has_more => self.ahead = Some(sent),
            // Sent on a guess the page then overturned.
            Some(sent) => client.discard(sent),
            None => {}
        }
        if !self.paged && has_more {
            out.log(
                "WARN",
                &format!("{what}: the API says more follows, but this list takes no page parameter; read its one answer"),
            );
        }
        if !self.paged || !has_more {
            self.done = true;
            return Ok(Some(taken));
        }
        self.idle_pages = if fresh { 0 } else { self.idle_pages + 1 };
        if self.idle_pages >= MAX_IDLE_PAGES {
            if let Some(sent) = self.ahead.take() {
                client.discard(sent);
            }
            return Err(Error::system(format!(
                "{what}: the API says more pages follow, but the last {} pages were empty or repeated the page before; stopping instead of looping forever",
                self.idle_pages
            )));
        }
        Ok(Some(taken))
    }
}
