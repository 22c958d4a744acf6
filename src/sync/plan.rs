//! Where a stream stands and what it reads this time: the sync mode, the
//! lists an interrupted run began, the parents done, and an incremental
//! read's cursor. Read from the saved state once, written into every
//! checkpoint.

use super::checkpoint::{self, At, Position, Saved, Write};
use crate::catalog::SyncMode;
use crate::error::{Error, Result};
use crate::output::{log, Out};
use crate::secret::mask;
use crate::streams::{Cursor, Incremental, StreamDef};
use crate::text::count;
use crate::time::{self, Stamp};
use crate::url::encode;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeSet;

/// A sync-start cursor is set back by this much: the API's clock and ours
/// differ, and an update may become visible to the filter a little late.
pub(super) const SYNC_START_MARGIN_SECS: i64 = 300;
/// How one stream is read this time, and where it stands. Both sync modes
/// keep their place alike (`begun`, `done`); an incremental read adds its
/// cursor.
pub(super) struct Plan {
    /// The cursor of an incremental read; `None` reads the stream in full.
    pub(super) cursor: Option<Box<CursorPlan>>,
    /// Whether the read writes checkpoints and can go on from one: every
    /// incremental read, and a full read of a paged stream.
    pub(super) resumable: bool,
    /// The lists an interrupted run began and did not finish, where each
    /// goes on: at most one for a stream without parent; for one read per
    /// parent, each parent's until this sync reads it, so that every later
    /// checkpoint still names it.
    pub(super) begun: Vec<At>,
    /// For a stream read per parent: the parents whose lists this sync
    /// has read to their end. A resume reads every other listed parent,
    /// whatever order the API lists them in now.
    pub(super) done: BTreeSet<String>,
    /// The state came from a release that kept no `done` (or from an
    /// attempt that resumed one): the parents it read are not known, and
    /// those read again come a second time (counted, and said).
    pub(super) done_unknown: bool,
}

/// An incremental read's cursor.
///
/// While the stream is in progress its state holds the cursor it started
/// from plus where to go on; the cursor moves only when the stream
/// completes, so a resumed run can never skip a record the interrupted one
/// had not yet written, whatever order the API returns records in.
pub(super) struct CursorPlan {
    pub(super) spec: Incremental,
    /// The cursor of the last completed sync (or `start_date`): this run's filter.
    pub(super) since: Option<Stamp>,
    /// The greatest cursor value seen (for a sync-start cursor: the
    /// start), what the cursor becomes once this sync completes.
    pub(super) next: Option<Stamp>,
    /// When the first attempt of this sync started, less the margin: the
    /// cursor never moves past it. A record stamped later (one that arrived
    /// during the sync, became visible late, or carries a clock from the
    /// future) may stand next to unseen ones in a list already read, or in
    /// a parent's list a resumed run skipped.
    pub(super) ceiling: Stamp,
    /// A page came back empty though more followed and was taken as it is,
    /// in this attempt or an earlier one of the same sync: the cursor must
    /// not move past what that page may have hidden.
    pub(super) held: bool,
}
impl Plan {
    /// The record member that holds the cursor, if the cursor is one.
    pub(super) fn cursor_field(&self) -> Option<&'static str> {
        self.cursor
            .as_ref()
            .and_then(|c| c.spec.cursor.record_field())
    }

    /// A list read took an empty page that said more followed as it is
    /// (`Pager::took_empty`): it may have hidden records, so an incremental
    /// cursor must not move past them. The one place that fact reaches.
    pub(super) fn took_empty(&mut self, took_empty: bool) {
        if let Some(c) = &mut self.cursor {
            c.held |= took_empty;
        }
    }

    /// The plan for `def` in `mode`, going on from `saved` where it holds
    /// a checkpoint of the same mode. A full read ignores a complete state,
    /// an empty one and an incremental one: it starts at page 1.
    pub(super) fn new(
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
            plan.done_unknown = per_parent
                && (position.unrecorded || position.done.is_none() && !plan.begun.is_empty());
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
    pub(super) fn begun_in(&self, parent: Option<&str>) -> Option<&At> {
        self.begun.iter().find(|a| a.parent.as_deref() == parent)
    }

    /// The state to resume from at `at` (for a stream read per parent,
    /// `None` between two parents).
    pub(super) fn in_progress(&self, at: Option<At>, per_parent: bool) -> Value {
        let mut position = Position {
            done: per_parent.then(|| self.done.clone()),
            unrecorded: self.done_unknown,
            ..Position::default()
        };
        // A parent an earlier attempt stopped in keeps its place until
        // this run reads it, whatever parents it reads first.
        let current = at.as_ref().and_then(|a| a.parent.clone());
        position.at.extend(at);
        for begun in &self.begun {
            let Some(parent) = &begun.parent else {
                continue;
            };
            if !self.done.contains(parent) && current.as_ref() != Some(parent) {
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
    pub(super) fn new(
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
pub(super) fn sync_start() -> Stamp {
    Stamp::utc(time::now_secs() - SYNC_START_MARGIN_SECS)
}
impl CursorPlan {
    /// `&param=cursor` for the list request, when there is a cursor.
    pub(super) fn filter(&self) -> String {
        self.since
            .as_ref()
            .map(|s| format!("&{}={}", self.spec.param, encode(&s.text)))
            .unwrap_or_default()
    }

    /// The state once every page has been read: the new high-water mark,
    /// but no later than `ceiling` and no earlier than the old cursor (a
    /// cursor never moves back, even past a state from the future).
    pub(super) fn complete(&self) -> Value {
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
    pub(super) fn unmoved(&self) -> Value {
        Write::Cursor(self.spec.cursor.state_key(), self.since.as_ref()).to_value()
    }

    /// Whether a record with this cursor value belongs in the sync, noting
    /// it as the new high-water mark when it is one.
    pub(super) fn admit(&mut self, value: Option<Cow<str>>) -> bool {
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
