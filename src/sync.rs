//! `read`: one generic loop that walks a stream's pages and writes each
//! page's records as RECORD lines as soon as the page has been checked.
//!
//! Every stream is a row of `streams::STREAMS`; what differs between them
//! (paging, a parent stream, an incremental cursor) is data this module reads.

mod checkpoint;

use crate::catalog::{Selected, State, SyncMode};
use crate::client::{Client, Fingerprints, Request};
use crate::error::{Error, Result};
use crate::output::{log, Level, Out, RecordEnd, Status, StreamId};
use crate::page::Page;
use crate::secret::mask;
use crate::streams::{self, Cursor, Incremental, Paging, StreamDef};
use crate::text::count;
use crate::time::{self, Stamp};
use crate::url::encode;
use checkpoint::{At, Position, Saved, Write, MAX_PAGE};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::time::Instant;

/// Empty pages in a row while the server still says `has_more`: then it
/// is looping, not paging.
const MAX_IDLE_PAGES: u32 = 3;

/// A progress LOG line every this many pages.
const PROGRESS_EVERY_PAGES: u64 = 10;

/// A sync-start cursor is set back by this much: the API's clock and ours
/// differ, and an update may become visible to the filter a little late.
const SYNC_START_MARGIN_SECS: i64 = 300;

/// Listings of a parent stream before its snapshot must hold: two in a row
/// that agree make the snapshot; a list that keeps changing fails.
const MAX_LISTINGS: u32 = 5;

/// Times a child list that answers 404 while its parent is still listed is
/// read again before the stream fails.
const MAX_NOT_FOUND_RETRIES: u32 = 2;

/// Reads the selected streams in catalog order. Returns whether every
/// stream completed; a failed stream has had its TRACE ERROR and INCOMPLETE
/// status written, and the next streams are still attempted, unless the
/// error is one no stream can avoid (the API rejected the key, its
/// certificate is not trusted, no connection to it could be opened): then
/// each gets its INCOMPLETE status after the one error.
pub fn read(
    client: &mut Client,
    selected: &[Selected],
    state: &State,
    start_date: Option<&Stamp>,
    out: &mut Out,
) -> Result<bool> {
    let started = Instant::now();
    let mut failed = Vec::new();
    let mut unknown = Vec::new();
    let mut total = 0;
    let mut stopped: Option<&str> = None;
    for sel in selected {
        let id = StreamId::new(&sel.name, sel.namespace.as_deref());
        if let Some(why) = stopped {
            out.stream_not_read(&id, why);
            continue;
        }
        let Some(def) = streams::find(&sel.name) else {
            log!(
                out,
                Warn,
                "stream {} is not a stream of this source and was skipped; the streams \
                 are: {}",
                sel.name,
                streams::names()
            );
            out.status(&id, Status::Incomplete);
            out.progress_failed(&sel.name, 0, "not a stream of this source");
            out.flush()?;
            unknown.push(sel.name.as_str());
            continue;
        };
        // Records written count also when the stream then fails.
        let mut written = 0;
        let result =
            Plan::new(def, sel.sync_mode, state.get(&sel.name), start_date, out).and_then(|plan| {
                let mut run = StreamRun::new(def, &id, plan);
                let synced = run.sync(client, out);
                written = run.records;
                synced
            });
        total += written;
        match result {
            Ok(()) => {}
            Err(e) if e.output_closed => return Err(e),
            Err(e) => {
                stopped = e.stops_sync;
                out.progress_failed(&sel.name, written, &e.message);
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
        count(total, "record"),
        selected.len() - failed.len() - out.not_read().len() - unknown.len(),
        selected.len()
    );
    if !unknown.is_empty() {
        summary.push_str(&format!(
            "; not streams of this source: {}",
            unknown.join(", ")
        ));
    }
    if failed.is_empty() {
        out.log(Level::Info, &summary);
    } else {
        summary.push_str(&format!("; failed: {}", failed.join(", ")));
        if let (Some(why), false) = (stopped, out.not_read().is_empty()) {
            let names = out.not_read().join(", ");
            summary.push_str(&format!("; not read, as {why}: {names}"));
        }
        out.log(Level::Error, &summary);
    }
    out.flush()?;
    Ok(failed.is_empty() && out.not_read().is_empty())
}

/// Whether `state`, of stream `name`, holds a full read that was stopped,
/// to go on with. A state that does not parse fails the stream later.
pub fn full_read_stopped(name: &str, state: &Value) -> bool {
    streams::find(name)
        .and_then(|def| Saved::parse(def, state).ok())
        .is_some_and(|s| s.full.is_some())
}

/// How one stream is read this time, and where it stands. Both sync modes
/// keep their place alike (`begun`, `done`); an incremental read adds its
/// cursor.
struct Plan {
    /// The cursor of an incremental read; `None` reads the stream in full.
    cursor: Option<Box<CursorPlan>>,
    /// Whether the read writes checkpoints and can go on from one: every
    /// incremental read, and a full read of a paged stream.
    resumable: bool,
    /// The lists an interrupted run began and did not finish, where each
    /// goes on: at most one for a stream without parent; for one read per
    /// parent, each parent's until this sync reads it, so that every later
    /// checkpoint still names it.
    begun: Vec<At>,
    /// For a stream read per parent: the parents whose lists this sync
    /// has read to their end. A resume reads every other listed parent,
    /// whatever order the API lists them in now.
    done: BTreeSet<String>,
    /// The state came from a release that kept no `done`: the parents
    /// listed before the one it stopped in were probably read, and are
    /// read again (counted, and said).
    done_unknown: bool,
}

/// An incremental read's cursor.
///
/// While the stream is in progress its state holds the cursor it started
/// from plus where to go on; the cursor moves only when the stream
/// completes, so a resumed run can never skip a record the interrupted one
/// had not yet written, whatever order the API returns records in.
struct CursorPlan {
    spec: Incremental,
    /// The cursor of the last completed sync (or `start_date`): this run's filter.
    since: Option<Stamp>,
    /// The greatest cursor value seen (for a sync-start cursor: the
    /// start), what the cursor becomes once this sync completes.
    next: Option<Stamp>,
    /// When the first attempt of this sync started, less the margin: the
    /// cursor never moves past it. A record stamped later (one that arrived
    /// during the sync, became visible late, or carries a clock from the
    /// future) may stand next to unseen ones in a list already read, or in
    /// a parent's list a resumed run skipped.
    ceiling: Stamp,
    /// A page came back empty though more followed and was taken as it is,
    /// in this attempt or an earlier one of the same sync: the cursor must
    /// not move past what that page may have hidden.
    held: bool,
}

/// One listing of a parent stream's ids.
struct Listing {
    ids: Vec<String>,
    /// An empty page that said `has_more` was taken as it is.
    took_empty: bool,
    /// An id listed twice: the list moved while it was being read.
    repeated: Option<String>,
}

impl Plan {
    /// The record member that holds the cursor, if the cursor is one.
    fn cursor_field(&self) -> Option<&'static str> {
        self.cursor
            .as_ref()
            .and_then(|c| c.spec.cursor.record_field())
    }

    /// The plan for `def` in `mode`, going on from `saved` where it holds
    /// a checkpoint of the same mode. A full read ignores a complete state,
    /// an empty one and an incremental one: it starts at page 1.
    fn new(
        def: &StreamDef,
        mode: SyncMode,
        saved: Option<&Value>,
        start_date: Option<&Stamp>,
        out: &mut Out,
    ) -> Result<Plan> {
        if def.incremental.is_none() && mode == SyncMode::Incremental {
            // PyAirbyte asks for incremental on every stream; a full read is the honest answer.
            log!(
                out,
                Info,
                "stream {} supports only full_refresh; reading it in full",
                def.name
            );
        }
        let incremental = def.incremental.filter(|_| mode == SyncMode::Incremental);
        let per_parent = def.parent.is_some();
        let mut plan = Plan {
            cursor: None,
            resumable: incremental.is_some() || def.resumable_in_full(),
            begun: Vec::new(),
            done: BTreeSet::new(),
            done_unknown: false,
        };
        if !plan.resumable {
            return Ok(plan);
        }
        let saved = match saved {
            Some(value) => Saved::parse(def, value).map_err(|why| {
                Error::config(format!(
                    "the state of stream {} is malformed: {why}; remove the stream's whole \
                     entry from the state file to sync the stream from the start",
                    def.name
                ))
            })?,
            None => Saved::default(),
        };
        let position = if incremental.is_some() {
            saved.incremental.clone()
        } else {
            saved.full.clone()
        };
        if let Some(position) = &position {
            plan.begun = position.at.clone();
            plan.done_unknown = per_parent && position.done.is_none() && !plan.begun.is_empty();
            plan.done = position.done.clone().unwrap_or_default();
        }
        if let Some(spec) = incremental {
            let cursor = CursorPlan::new(spec, &saved, position.as_ref(), start_date, def, out);
            plan.cursor = Some(Box::new(cursor));
        }
        if !plan.begun.is_empty() || !plan.done.is_empty() {
            let at = match plan.begun.first() {
                Some(At {
                    parent: Some(p),
                    page,
                    ..
                }) => format!(" at page {page} of {}", mask(p)),
                Some(At { page, .. }) => format!(" at page {page}"),
                None => String::new(),
            };
            let finished = if per_parent {
                format!(", {} already read", count(plan.done.len() as u64, "parent"))
            } else {
                String::new()
            };
            let what = if incremental.is_some() {
                "sync"
            } else {
                "full refresh"
            };
            log!(
                out,
                Info,
                "stream {}: resuming an interrupted {what}{at}{finished}",
                def.name
            );
        }
        Ok(plan)
    }

    /// Where the interrupted run stopped in the list of `parent` (`None`:
    /// the stream's one list), if it began it.
    fn begun(&self, parent: Option<&str>) -> Option<&At> {
        self.begun.iter().find(|a| a.parent.as_deref() == parent)
    }

    /// The state to resume from at `at` (for a stream read per parent,
    /// `None` between two parents).
    fn in_progress(&self, at: Option<At>, per_parent: bool) -> Value {
        let mut position = Position {
            done: per_parent.then(|| self.done.clone()),
            ..Position::default()
        };
        position.at.extend(at);
        // A parent an earlier attempt stopped in keeps its place until
        // this run reads it, whatever parents it reads first.
        for begun in &self.begun {
            let Some(parent) = &begun.parent else {
                continue;
            };
            let current = position.at.first().and_then(|a| a.parent.as_ref());
            if !self.done.contains(parent) && current != Some(parent) {
                position.at.push(begun.clone());
            }
        }
        let Some(c) = &self.cursor else {
            return Write::Full(&position).to_value();
        };
        position.cursor = c.next.clone();
        position.empty = c.held;
        if checkpoint::keeps_started(c.spec.cursor) {
            position.started = Some(c.ceiling.clone());
        }
        Write::Incremental(c.spec.cursor.state_key(), c.since.as_ref(), &position).to_value()
    }
}

impl CursorPlan {
    /// The cursor from a saved state (its cursor, and the checkpoint of
    /// an interrupted sync), or from `start_date` on a first sync.
    fn new(
        spec: Incremental,
        saved: &Saved,
        position: Option<&Position>,
        start_date: Option<&Stamp>,
        def: &StreamDef,
        out: &mut Out,
    ) -> CursorPlan {
        let held = position.is_some_and(|p| p.empty);
        let mut next = position.and_then(|p| p.cursor.clone());
        let ceiling = match (spec.cursor, &next) {
            (Cursor::SyncStart(_), Some(start)) => start.clone(),
            (Cursor::Field(_), _) => position
                .and_then(|p| p.started.clone())
                .unwrap_or_else(sync_start),
            _ => sync_start(),
        };
        let now = time::now_secs();
        let since = match saved.cursor.clone() {
            // No record can be that new: a clock or a server from the
            // future wrote it (builds before the ceiling kept such a
            // cursor), and kept it would filter out every record for
            // good. What came between the last real sync and now cannot
            // be told from it: the stream reads from this sync's ceiling
            // on (as Airbyte's tests of an abnormal state expect, no
            // record of the past), and says so.
            Some(future) if future.at.secs > now => {
                out.warn_loudly(&format!(
                    "stream {}: the saved cursor {} {} is later than this sync's start ({}), \
                     so no sync can have seen that far; reading from {} on instead, and the \
                     cursor moves back to it. Records of the stream from before then that the \
                     last real sync did not read are not read: to read them, remove the \
                     stream's entry from the state (a full read of its history)",
                    def.name,
                    spec.cursor.state_key(),
                    mask(&future.text),
                    time::format_utc(now),
                    ceiling.text
                ));
                Some(ceiling.clone())
            }
            cursor => cursor.or_else(|| start_date.cloned()),
        };
        if let (Cursor::SyncStart(_), None) = (spec.cursor, &next) {
            next = Some(ceiling.clone());
        }
        CursorPlan {
            spec,
            since,
            next,
            ceiling,
            held,
        }
    }
}

/// Now, less the margin for clocks and late visibility.
fn sync_start() -> Stamp {
    Stamp::utc(time::now_secs() - SYNC_START_MARGIN_SECS)
}

/// How `page`, the first a full read going on from `checkpoint` read,
/// stands against it: where it still holds the last record written, how
/// many of its records the interrupted run had written; otherwise why it
/// may no longer be where that run stopped (past the end of the list, the
/// record moved, or no record to look for).
fn recheck(page: &Page, next: Option<u64>, checkpoint: &At) -> Result<u64, String> {
    let at = checkpoint.page;
    if page.records.is_empty() && next.is_none() {
        return Err(format!("page {at} is now past the end of the list"));
    }
    let Some(last) = checkpoint.last.as_deref() else {
        return Err(format!(
            "the checkpoint names no record to find on page {at} (written by an earlier \
             release, or the page's last record had no id)"
        ));
    };
    page.records
        .iter()
        .position(|r| r.id_text().as_deref() == Some(last))
        .map(|i| i as u64 + 1)
        .ok_or_else(|| format!("page {at} no longer holds record {}", mask(last)))
}

impl CursorPlan {
    /// `&param=cursor` for the list request, when there is a cursor.
    fn filter(&self) -> String {
        self.since
            .as_ref()
            .map(|s| format!("&{}={}", self.spec.param, encode(&s.text)))
            .unwrap_or_default()
    }

    /// The state once every page has been read: the new high-water mark,
    /// but no later than `ceiling` and no earlier than the old cursor (a
    /// cursor never moves back, even past a state from the future).
    fn complete(&self) -> Value {
        let reached = self.next.as_ref().map(|next| {
            if next.at > self.ceiling.at {
                &self.ceiling
            } else {
                next
            }
        });
        let cursor = match (reached, &self.since) {
            (Some(reached), Some(since)) if since.at > reached.at => Some(since),
            (reached, since) => reached.or(since.as_ref()),
        };
        Write::Cursor(self.spec.cursor.state_key(), cursor).to_value()
    }

    /// The state once every page has been read, when the pages may have
    /// hidden records: the cursor this sync started from.
    fn unmoved(&self) -> Value {
        Write::Cursor(self.spec.cursor.state_key(), self.since.as_ref()).to_value()
    }

    /// Whether a record with this cursor value belongs in the sync, noting
    /// it as the new high-water mark when it is one.
    fn admit(&mut self, value: Option<Cow<str>>) -> bool {
        let Some(stamp) = value.and_then(|v| Stamp::parse(&v)) else {
            return true; // no usable time: never drop a record over it
        };
        if self.since.as_ref().is_some_and(|since| stamp.at < since.at) {
            return false;
        }
        if self.next.as_ref().is_none_or(|max| stamp.at > max.at) {
            self.next = Some(stamp);
        }
        true
    }
}

/// The first sight of a drifted field in a stream, said once (LOG WARN
/// and stderr): the record still carries it, but the destination may not.
#[cold]
fn warn_drift(stream: &str, drift: &crate::drift::Drift, out: &mut Out) {
    out.warn_loudly(&format!(
        "stream {stream}: field {}; {}. Run `source-persistiq doctor` \
         for every drifted field and report them to the connector's maintainers (said once per \
         stream and field)",
        drift.describe(),
        drift.consequence()
    ));
}

/// One stream's sync in progress.
struct StreamRun<'a> {
    def: &'a StreamDef,
    id: &'a StreamId,
    plan: Plan,
    running: bool,
    pages: u64,
    /// Records written, also when the stream then fails.
    records: u64,
    /// Records since this stream's previous STATE, for its `recordCount`.
    unstated: u64,
    /// The page the current list was asking for when it failed.
    failed_page: u64,
    /// The current list failed before its resume check was made: a read
    /// of it again must still make it.
    unchecked: bool,
    /// The fields of its records the schema does not declare or type.
    drift: crate::drift::Watch,
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
            failed_page: 1,
            unchecked: false,
            drift: crate::drift::Watch::new(def),
        }
    }

    /// Syncs the stream from its first page to its last.
    fn sync(&mut self, client: &mut Client, out: &mut Out) -> Result<()> {
        let started = Instant::now();
        out.progress_start(&self.id.name);
        out.status(self.id, Status::Started);
        out.flush()?;
        match self.def.parent {
            None => {
                let checkpoint = self.plan.begun(None).cloned();
                let path = self.def.path.to_string();
                self.read_list(client, path, None, 1, checkpoint, out)?;
            }
            Some(parent) => self.read_per_parent(client, parent, out)?,
        }
        let final_state = match &self.plan.cursor {
            // Given back, either starts the next full read at page 1.
            None if self.plan.resumable => Write::FullComplete.to_value(),
            None => Write::NoCursor.to_value(),
            Some(c) if c.held => {
                log!(
                    out,
                    Warn,
                    "stream {}: a page came back empty though more followed; the cursor stays \
                     where it was, so that the next sync reads that range again",
                    self.id.name
                );
                c.unmoved()
            }
            Some(c) => c.complete(),
        };
        out.state(self.id, &final_state, self.unstated);
        out.status(self.id, Status::Complete);
        out.progress_done(&self.id.name, self.pages, self.records);
        log!(
            out,
            Info,
            "stream {}: {} in {}, {:.1} s",
            self.id.name,
            count(self.records, "record"),
            count(self.pages, "page"),
            started.elapsed().as_secs_f64()
        );
        out.flush()
    }

    /// Walks one list endpoint from `first_page` to its end, writing its
    /// records; a resumable read checkpoints after every page that wrote
    /// records. `parent` is the parent record's id of a child list;
    /// `checkpoint`, the saved place this read goes on from, if it does
    /// (then it starts at the checkpoint's page).
    ///
    /// Records and the STATE that covers them reach stdout in one write, so
    /// that no signal can leave one without the other; the last page of a
    /// stream without a parent is left for `sync` to write with the final
    /// STATE.
    fn read_list(
        &mut self,
        client: &mut Client,
        path: String,
        parent: Option<&str>,
        first_page: u64,
        checkpoint: Option<At>,
        out: &mut Out,
    ) -> Result<()> {
        let full = self.plan.cursor.is_none();
        // A full read also finds each record's id, for its checkpoint's
        // `last`; an incremental one, its cursor field.
        let field = self.plan.cursor_field();
        let filter = self
            .plan
            .cursor
            .as_ref()
            .map(|c| c.filter())
            .unwrap_or_default();
        let label = match parent {
            Some(p) => format!("stream {} ({})", self.id.name, mask(p)),
            None => format!("stream {}", self.id.name),
        };
        let first_page = checkpoint.as_ref().map_or(first_page, |c| c.page);
        let mut pager = Pager::new(
            path.clone(),
            filter.clone(),
            self.def,
            label.clone(),
            first_page,
        );
        pager.field = field;
        // Only a full read's first page, going on from its checkpoint, is
        // checked: an incremental read goes on from a page it never read.
        let mut check = checkpoint.filter(|_| full);
        // After a failed check, the pages up to the checkpoint's, which
        // the interrupted run had written: (that page, records so far).
        let mut again: Option<(u64, u64)> = None;
        loop {
            let this_page = pager.page;
            self.failed_page = this_page;
            self.unchecked = check.is_some();
            let Some(page) = pager.next(client, self.id, out)? else {
                break;
            };
            if let Some(c) = check.take() {
                match recheck(&page, pager.next_page(), &c) {
                    Ok(twice) => out.warn_loudly(&format!(
                        "{label}: {} came a second time: the resumed full refresh read page {} \
                         again, whose records up to {} the interrupted sync had written (it \
                         resumes at the last page written, so that no record that moved back \
                         onto it is lost; the destination dedups them by id)",
                        count(twice, "record"),
                        c.page,
                        mask(c.last.as_deref().unwrap_or_default())
                    )),
                    // Page 1 is read whatever moved: its records count.
                    Err(_) if c.page == 1 => again = Some((1, 0)),
                    Err(why) => {
                        // Records added or deleted since the interrupted
                        // run may have moved ones it had not read onto
                        // pages it had: read them all again rather than
                        // lose them.
                        out.warn_loudly(&format!(
                            "{label}: {why}, so records may have moved since the interrupted \
                             sync; reading the list again from page 1"
                        ));
                        again = Some((c.page, 0));
                        pager =
                            Pager::new(path.clone(), filter.clone(), self.def, label.clone(), 1);
                        pager.field = field;
                        continue;
                    }
                }
            }
            // For a full read's checkpoint: the last record on the page
            // with an id, which proves as much as the last record would.
            let last = if full {
                page.records
                    .iter()
                    .rev()
                    .find_map(|r| r.id_text().map(Cow::into_owned))
            } else {
                None
            };
            let written = self.write(&page, out);
            let at = pager.next_page();
            if let Some((until, records)) = &mut again {
                *records += written;
                if this_page >= *until || at.is_none() {
                    out.warn_loudly(&format!(
                        "{label}: up to {} came a second time: the list was read again from \
                         page 1, and the interrupted sync had written its pages 1 to {until} \
                         (the destination dedups them by id)",
                        count(*records, "record"),
                    ));
                    again = None;
                }
            }
            if self.plan.resumable {
                if let Some(c) = &mut self.plan.cursor {
                    c.held |= pager.took_empty;
                }
                if let (None, Some(p)) = (at, parent) {
                    self.plan.done.insert(p.to_string());
                }
                // The last page of a list without a parent is covered by
                // the final STATE.
                if self.unstated > 0 && (at.is_some() || parent.is_some()) {
                    // A full read goes on from the page it wrote last, not
                    // the next: up to a page of records deleted before it
                    // in the meantime moves unread records back onto it,
                    // not past it, and `last` tells the resumed read when
                    // more moved. The destination's primary key absorbs
                    // what is written twice. An incremental read goes on
                    // from the next page, so that its resumes stay exact.
                    let page = if full { at.map(|_| this_page) } else { at };
                    let at = page.map(|page| At {
                        parent: parent.map(str::to_string),
                        page,
                        last,
                    });
                    let state = self.plan.in_progress(at, self.def.parent.is_some());
                    out.state(self.id, &state, self.unstated);
                    self.unstated = 0;
                }
            }
            self.page_done(out, at.is_some() || parent.is_some())?;
        }
        Ok(())
    }

    /// Takes a snapshot of the parent stream's ids, then reads the child
    /// list of every parent in it that this sync has not read yet.
    fn read_per_parent(&mut self, client: &mut Client, parent: &str, out: &mut Out) -> Result<()> {
        let parent_def = streams::find(parent).ok_or_else(|| {
            Error::system(format!(
                "stream {}: unknown parent stream {parent}",
                self.def.name
            ))
        })?;
        let listed = self.snapshot(client, parent_def, out)?;
        for lost in self.plan.begun.iter().filter_map(|a| a.parent.as_ref()) {
            if !listed.contains(lost) {
                log!(
                    out,
                    Warn,
                    "stream {}: the {parent} record {} that an interrupted sync stopped in is no \
                     longer listed; every {parent} this sync has not finished is read (again, for \
                     those it had begun)",
                    self.id.name,
                    mask(lost)
                );
            }
        }
        // A state of a release that kept no `done`: that release read the
        // parents in the API's order, so those listed before the one it
        // stopped in were probably read. Read again, and counted.
        let before: HashSet<&str> = match self.plan.begun.first() {
            Some(At {
                parent: Some(stopped),
                ..
            }) if self.plan.done_unknown => listed
                .iter()
                .take_while(|id| *id != stopped)
                .map(String::as_str)
                .collect(),
            _ => HashSet::new(),
        };
        let mut again = 0;
        // A wrong endpoint needs no check of its own here: its 404s come
        // for parents still listed, and `read_child` fails on those.
        for parent_id in &listed {
            if self.plan.done.contains(parent_id) {
                continue;
            }
            let checkpoint = self.plan.begun(Some(parent_id)).cloned();
            let records = self.records;
            self.read_child(client, parent_def, parent_id, checkpoint, out)?;
            if before.contains(parent_id.as_str()) {
                again += self.records - records;
            }
        }
        if !before.is_empty() {
            out.warn_loudly(&format!(
                "stream {}: up to {} came a second time: the state came from an earlier \
                 release, which did not record the {parent} it had finished, so the {} {parent} \
                 listed before the one it stopped in were read again (the destination dedups \
                 them by id)",
                self.id.name,
                count(again, "record"),
                before.len()
            ));
        }
        Ok(())
    }

    /// Reads one parent's child list, or skips it once it turns out to be
    /// deleted. A 404 means deleted only once a fresh, whole listing of the
    /// parents no longer has it; otherwise the list is read again from the
    /// page that failed, and then the stream fails.
    fn read_child(
        &mut self,
        client: &mut Client,
        parent_def: &StreamDef,
        parent_id: &str,
        checkpoint: Option<At>,
        out: &mut Out,
    ) -> Result<()> {
        let path = self.def.path.replace("{parent_id}", &encode(parent_id));
        let mut page = 1;
        let mut from = checkpoint;
        let mut retries = 0;
        loop {
            let read = self.read_list(
                client,
                path.clone(),
                Some(parent_id),
                page,
                from.clone(),
                out,
            );
            let err = match read {
                Ok(()) => return Ok(()),
                Err(e) if e.http_status == Some(404) => e,
                Err(e) => return Err(e),
            };
            page = self.failed_page;
            // A 404 on the page a resume starts at leaves its check to
            // the read again; once past it, the read goes on from its own
            // page.
            if !self.unchecked {
                from = None;
            }
            let listing = self.list_parents(client, parent_def, out)?;
            // A listing that moved, or took an empty page as it is, may
            // have missed the parent: it proves nothing.
            let whole = listing.repeated.is_none() && !listing.took_empty;
            if whole && !listing.ids.iter().any(|id| id == parent_id) {
                log!(
                    out,
                    Warn,
                    "stream {}: {} {} was not found and is no longer listed (deleted during the \
                     sync); skipped",
                    self.id.name,
                    parent_def.name,
                    mask(parent_id)
                );
                out.flush()?;
                return Ok(());
            }
            if retries == MAX_NOT_FOUND_RETRIES {
                return Err(Error::system(format!(
                    "{}; {} {} is still listed, so it was not deleted: the endpoint {} may be \
                     wrong",
                    err.message,
                    parent_def.name,
                    mask(parent_id),
                    self.def.path
                ))
                .with_status(404));
            }
            retries += 1;
            log!(
                out,
                Warn,
                "stream {}: the list of {} {} answered HTTP 404, yet it is still listed; reading \
                 it again from page {page} (retry {retries} of {MAX_NOT_FOUND_RETRIES})",
                self.id.name,
                parent_def.name,
                mask(parent_id)
            );
            out.flush()?;
        }
    }

    /// The ids of every parent record, as one consistent snapshot: the
    /// list is read until two listings in a row agree and neither had an
    /// id twice, since a parent added or deleted while the list is paged
    /// shifts the others across page bounds (one seen twice, one never).
    fn snapshot(
        &mut self,
        client: &mut Client,
        parent_def: &StreamDef,
        out: &mut Out,
    ) -> Result<Vec<String>> {
        let parent = parent_def.name;
        let mut previous: Option<Listing> = None;
        for _ in 0..MAX_LISTINGS {
            let listing = self.list_parents(client, parent_def, out)?;
            if let Some(id) = &listing.repeated {
                log!(
                    out,
                    Warn,
                    "stream {}: {parent} {} was listed twice (the list changed while it was \
                     read); listing the {parent} again",
                    self.id.name,
                    mask(id)
                );
                previous = None;
                continue;
            }
            match previous.take() {
                Some(prev) if prev.ids == listing.ids => {
                    if let Some(c) = &mut self.plan.cursor {
                        c.held |= prev.took_empty || listing.took_empty;
                    }
                    return Ok(listing.ids);
                }
                Some(prev) => log!(
                    out,
                    Warn,
                    "stream {}: the {parent} changed between two listings ({} then \
                                   {}); listing them again",
                    self.id.name,
                    prev.ids.len(),
                    listing.ids.len()
                ),
                None => {}
            }
            previous = Some(listing);
        }
        Err(Error::transient(format!(
            "stream {}: the {parent} list changed during each of {MAX_LISTINGS} listings, so no \
             consistent snapshot of it could be taken; nothing of the stream was read. Try again \
             once the account is quieter",
            self.id.name
        )))
    }

    /// One listing of the parent stream's ids, in the API's order.
    fn list_parents(
        &mut self,
        client: &mut Client,
        parent_def: &StreamDef,
        out: &mut Out,
    ) -> Result<Listing> {
        let label = format!("stream {} (listing {})", self.id.name, parent_def.name);
        let mut pager = Pager::new(
            parent_def.path.to_string(),
            String::new(),
            parent_def,
            label,
            1,
        );
        pager.field = Some("id");
        let mut ids = Vec::new();
        let mut seen = HashSet::new();
        let mut repeated = None;
        while let Some(page) = pager.next(client, self.id, out)? {
            self.mark_running(out);
            for id in self.parent_ids(&page, parent_def.name, out) {
                if seen.insert(id.clone()) {
                    ids.push(id);
                } else {
                    repeated.get_or_insert(id);
                }
            }
        }
        Ok(Listing {
            ids,
            took_empty: pager.took_empty,
            repeated,
        })
    }

    /// The ids of a page of parent records.
    fn parent_ids(&self, page: &Page, parent: &str, out: &mut Out) -> Vec<String> {
        let ids: Vec<String> = page
            .records
            .iter()
            .filter_map(|r| r.field_str().map(Cow::into_owned))
            .filter(|id| !id.is_empty())
            .collect();
        if ids.len() < page.records.len() {
            log!(
                out,
                Warn,
                "stream {}: {} {parent} records have no `id` (a non-empty string); their \
                 children cannot be listed",
                self.id.name,
                page.records.len() - ids.len()
            );
        }
        ids
    }

    fn mark_running(&mut self, out: &mut Out) {
        if !self.running {
            // RUNNING: the stream has answered, even if with no records.
            out.status(self.id, Status::Running);
            self.running = true;
        }
    }

    /// Writes a page's records; returns how many it wrote.
    fn write(&mut self, page: &Page, out: &mut Out) -> u64 {
        self.mark_running(out);
        let end = RecordEnd::now();
        let mut written = 0;
        for record in &page.records {
            // The page was scanned for the cursor field, if the cursor is one.
            if let Some(c) = &mut self.plan.cursor {
                if !c.admit(record.field_str()) {
                    continue;
                }
            }
            for drift in self.drift.see(record.shape, record.json) {
                warn_drift(&self.id.name, &drift, out);
            }
            out.record(self.id, record, &end);
            written += 1;
        }
        self.records += written;
        self.unstated += written;
        written
    }

    /// Counts a page; with `flush`, hands its lines to stdout.
    fn page_done(&mut self, out: &mut Out, flush: bool) -> Result<()> {
        self.pages += 1;
        out.progress_page(&self.id.name, self.pages, self.records);
        if self.pages % PROGRESS_EVERY_PAGES == 0 {
            log!(
                out,
                Info,
                "stream {}: {} pages, {} so far",
                self.id.name,
                self.pages,
                count(self.records, "record")
            );
        }
        if flush {
            out.flush()?;
        }
        Ok(())
    }
}

/// Walks the pages of one list endpoint.
///
/// Page N+1 is always built from base_url here, never taken from the
/// envelope's `next_page`: that URL could name another host, and the key
/// must not travel there.
struct Pager {
    path: String,
    /// Extra query parameters, each as `&name=value`.
    filter: String,
    collection: &'static str,
    /// The record member to find in each record while the page is checked.
    field: Option<&'static str>,
    paged: bool,
    label: String,
    /// The page the next call asks for.
    page: u64,
    done: bool,
    idle_pages: u32,
    /// An empty page that said `has_more` was taken as it is: it may have
    /// been a glitch hiding records.
    took_empty: bool,
    /// Every page's record array so far, to tell a stale copy of any.
    seen: Fingerprints,
}

impl Pager {
    fn new(path: String, filter: String, def: &StreamDef, label: String, first_page: u64) -> Pager {
        Pager {
            path,
            filter,
            collection: def.collection,
            field: None,
            paged: def.paging == Paging::Pages,
            label,
            page: first_page,
            done: false,
            idle_pages: 0,
            took_empty: false,
            seen: Fingerprints::default(),
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

    /// Fetches the next page, checked; `None` once the list has ended.
    fn next<'c>(
        &mut self,
        client: &'c mut Client,
        stream: &StreamId,
        out: &mut Out,
    ) -> Result<Option<Page<'c>>> {
        if self.done {
            return Ok(None);
        }
        let path_query = self.path_query(self.page);
        let what = if self.paged {
            format!("{}, page {}", self.label, self.page)
        } else {
            self.label.clone()
        };
        let request = Request {
            path_query: &path_query,
            what: &what,
            stream: Some(stream),
            collection: self.collection,
            field: self.field,
            paged: self.paged,
            seen: &self.seen,
        };
        let page = client.get_page(&request, out)?;
        if !self.paged && page.has_more {
            log!(
                out,
                Warn,
                "{what}: the API says more follows, but this list takes no page \
                 parameter; read its one answer"
            );
        }
        if !self.paged || !page.has_more {
            self.done = true;
            self.page = self.page.saturating_add(1);
            return Ok(Some(page));
        }
        if self.page >= MAX_PAGE {
            // Its records are not written: the last checkpoint, at most
            // this page, stays one a later run accepts.
            return Err(Error::system(format!(
                "{what}: the server never stopped paging: page {MAX_PAGE}, the last page this \
                 source reads of a list, still says more pages follow; stopping rather than \
                 reading forever"
            )));
        }
        self.page += 1;
        self.took_empty |= page.records.is_empty();
        self.idle_pages = if page.records.is_empty() {
            self.idle_pages + 1
        } else {
            0
        };
        if self.idle_pages >= MAX_IDLE_PAGES {
            return Err(Error::system(format!(
                "{what}: the API says more pages follow, but the last {} pages were empty; \
                 stopping instead of looping forever",
                self.idle_pages
            )));
        }
        Ok(Some(page))
    }
}
