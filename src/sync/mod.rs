//! `read`: one generic loop that walks a stream's pages and writes each
//! page's records as RECORD lines as soon as the page has been checked.
//!
//! Every stream is a row of `streams::STREAMS`; what differs between them
//! (paging, a parent stream, an incremental cursor) is data this module reads.
//! Its parts, a file each: this loop; `plan`, where a stream stands and what
//! it reads this time; `parents`, the snapshot of a parent stream and the
//! lists read per parent; `pager`, the walk of one list's pages;
//! `checkpoint`, the state's format.

mod checkpoint;
mod pager;
mod parents;
mod plan;

use crate::catalog::{Selected, State};
use crate::error::Result;
use crate::http::client::Client;
use crate::output::{log, Level, Out, RecordEnd, Status, StreamId};
use crate::page::Page;
use crate::secret::mask;
use crate::streams::{self, StreamDef};
use crate::text::count;
use crate::time::Stamp;
use checkpoint::{At, Saved, Write};
use pager::{Pager, Source};
use plan::Plan;
use serde_json::Value;
use std::borrow::Cow;
use std::time::Instant;

/// A progress LOG line every this many pages.
const PROGRESS_EVERY_PAGES: u64 = 10;
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
/// Whether `page`, the first a full read going on from `checkpoint` read,
/// is still where the interrupted run stopped: it still holds the last
/// record written; if not, why it may not be (past the end of the list,
/// the record moved, or no record to look for).
fn recheck(page: &Page, next: Option<u64>, checkpoint: &At) -> Result<(), String> {
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
    let found = page
        .records
        .iter()
        .any(|r| r.id_text().as_deref() == Some(last));
    found
        .then_some(())
        .ok_or_else(|| format!("page {at} no longer holds record {}", mask(last)))
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
    /// The current list is read a second time up to this page, which an
    /// interrupted attempt had written: (that page, records so far). Kept
    /// here, not in one walk, so that a walk again after a 404 counts on.
    again: Option<(u64, u64)>,
    /// Records of parents that an earlier release, which kept no `done`,
    /// may have read: written perhaps a second time.
    unrecorded_twice: u64,
    /// The fields of its records the schema does not declare or type.
    drift: crate::drift::Watch,
}

/// A list that failed, and where it stood.
struct ListFailure {
    error: crate::error::Error,
    /// The page it was asking for.
    page: u64,
    /// Its resume check was not made yet: a read of it again must make it.
    unchecked: bool,
}

impl From<ListFailure> for crate::error::Error {
    fn from(failure: ListFailure) -> Self {
        failure.error
    }
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
            again: None,
            unrecorded_twice: 0,
            drift: crate::drift::Watch::new(def),
        }
    }

    /// Syncs the stream from its first page to its last.
    fn sync(&mut self, client: &mut impl Source, out: &mut Out) -> Result<()> {
        let started = Instant::now();
        out.progress_start(&self.id.name);
        out.status(self.id, Status::Started);
        out.flush()?;
        match self.def.parent {
            None => {
                let checkpoint = self.plan.begun_in(None).cloned();
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
        client: &mut impl Source,
        path: String,
        parent: Option<&str>,
        first_page: u64,
        checkpoint: Option<At>,
        out: &mut Out,
    ) -> std::result::Result<(), ListFailure> {
        let mut stood = (first_page, false);
        self.walk_list(
            client, path, parent, first_page, checkpoint, &mut stood, out,
        )
        .map_err(|error| ListFailure {
            error,
            page: stood.0,
            unchecked: stood.1,
        })
    }

    /// `read_list`'s walk; `stood` keeps the page it asks for and whether
    /// its resume check is still to be made, for a failure to tell.
    #[allow(clippy::too_many_arguments)]
    fn walk_list(
        &mut self,
        client: &mut impl Source,
        path: String,
        parent: Option<&str>,
        first_page: u64,
        checkpoint: Option<At>,
        stood: &mut (u64, bool),
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
        // A checkpoint taken in a second read of pages an attempt before
        // it had written: the pages after it, to that one, come again.
        let mut then_again = check.as_ref().and_then(|c| c.again.filter(|u| *u > c.page));
        if let (Some(until), Some(c)) = (then_again, &check) {
            out.warn_loudly(&format!(
                "{label}: the interrupted sync was reading the list a second time; pages {} to \
                 {until} come a second time (their count follows once page {until} is read)",
                c.page + 1
            ));
        }
        loop {
            let this_page = pager.page;
            *stood = (this_page, check.is_some());
            let Some(page) = pager.next(client, self.id, out)? else {
                break;
            };
            if let Some(c) = check.take() {
                // The pages an attempt before wrote, to read again if the
                // check fails: this one, or the range it was reading again.
                let until = c.page.max(c.again.unwrap_or(0));
                match recheck(&page, pager.next_page(), &c) {
                    Ok(()) => out.warn_loudly(&format!(
                        "{label}: up to {} came a second time: the resumed full refresh read \
                         page {} again, whose records up to {} the interrupted sync had written, \
                         with any that moved behind it (it resumes at the last page written, \
                         so that no record that moved back onto it is lost; the destination \
                         dedups them by id)",
                        count(page.records.len() as u64, "record"),
                        c.page,
                        mask(c.last.as_deref().unwrap_or_default())
                    )),
                    // Page 1 is read whatever moved: its records count.
                    Err(_) if c.page == 1 => self.again = Some((until, 0)),
                    Err(why) => {
                        // Records added or deleted since the interrupted
                        // run may have moved ones it had not read onto
                        // pages it had: read them all again rather than
                        // lose them.
                        out.warn_loudly(&format!(
                            "{label}: {why}, so records may have moved since the interrupted \
                             sync; reading the list again from page 1, and the records of pages \
                             1 to {until}, which it had written, come a second time (their count \
                             follows once page {until} is read)"
                        ));
                        self.again = Some((until, 0));
                        then_again = None;
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
            if let Some((until, records)) = &mut self.again {
                // Said with the page, in the write that carries its records,
                // so that no stop can part the two.
                log!(
                    out,
                    Warn,
                    "{label}: page {this_page}: up to {} came a second time (an interrupted sync \
                     had written the list's pages to {until})",
                    count(written, "record")
                );
                *records += written;
                if this_page >= *until || at.is_none() {
                    out.warn_loudly(&format!(
                        "{label}: the list was read again, and an interrupted sync had written \
                         its pages to {until}: up to {} in all came a second time (the \
                         destination dedups them by id)",
                        count(*records, "record"),
                    ));
                    self.again = None;
                }
            }
            // A parent an earlier release may have read: said with the
            // page, in the write that carries its records.
            let unrecorded = self.plan.done_unknown
                && parent.is_some_and(|p| self.plan.begun_in(Some(p)).is_none());
            if unrecorded && written > 0 {
                log!(
                    out,
                    Warn,
                    "{label}: page {this_page}: up to {} came a second time (an interrupted sync \
                     of an earlier release may have read this list)",
                    count(written, "record")
                );
                self.unrecorded_twice += written;
            }
            // Resumed in a second read: the pages after this one count.
            if let Some(until) = then_again.take() {
                self.again = Some((until, 0));
            }
            if self.plan.resumable {
                self.plan.took_empty(pager.took_empty);
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
                    let again = self.again.map(|(until, _)| until);
                    let at = page.map(|page| At {
                        again: again.filter(|until| page < *until),
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
}

impl StreamRun<'_> {
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
