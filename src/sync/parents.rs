//! A stream read per parent: a consistent snapshot of the parent stream's
//! ids first, then each parent's list, a deleted parent told from a wrong
//! endpoint by listing the parents again.

use super::checkpoint::At;
use super::pager::{Pager, Source};
use super::StreamRun;
use crate::error::{Error, Result};
use crate::output::{log, Out};
use crate::page::Page;
use crate::secret::mask;
use crate::streams::StreamDef;
use crate::text::count;
use crate::url::encode;
use std::borrow::Cow;
use std::collections::HashSet;

/// Listings of a parent stream before its snapshot must hold: two in a row
/// that agree make the snapshot; a list that keeps changing fails.
pub(super) const MAX_LISTINGS: u32 = 5;

/// Times a child list that answers 404 while its parent is still listed is
/// read again before the stream fails.
pub(super) const MAX_NOT_FOUND_RETRIES: u32 = 2;
/// One listing of a parent stream's ids.
pub(super) struct Listing {
    pub(super) ids: Vec<String>,
    /// An empty page that said `has_more` was taken as it is.
    pub(super) took_empty: bool,
    /// An id listed twice: the list moved while it was being read.
    pub(super) repeated: Option<String>,
}
impl StreamRun<'_> {
    /// Takes a snapshot of the parent stream's ids, then reads the child
    /// list of every parent in it that this sync has not read yet.
    pub(super) fn read_per_parent(
        &mut self,
        client: &mut impl Source,
        parent_def: &StreamDef,
        out: &mut Out,
    ) -> Result<()> {
        let parent = parent_def.name;
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
        // A state of a release that kept no `done`: which parents it read
        // is not known (it read them in the API's order then, and the list
        // may have moved since), so every parent not begun may have been
        // read: each comes again, counted as a second time.
        let unrecorded = self.plan.done_unknown;
        if unrecorded {
            out.warn_loudly(&format!(
                "stream {}: the state does not record which {parent} an interrupted sync of \
                 an earlier release had finished, so every {parent} is read, and the records of \
                 those it had read come a second time (their count follows at the end of the \
                 stream)",
                self.id.name
            ));
        }
        // A wrong endpoint needs no check of its own here: its 404s come
        // for parents still listed, and `read_child` fails on those.
        for parent_id in &listed {
            if self.plan.done.contains(parent_id) {
                continue;
            }
            let checkpoint = self.plan.begun_in(Some(parent_id)).cloned();
            self.read_child(client, parent_def, parent_id, checkpoint, out)?;
        }
        if unrecorded {
            out.warn_loudly(&format!(
                "stream {}: up to {} in all came a second time, of the {parent} that an \
                 interrupted sync of an earlier release may have read (the destination dedups \
                 them by id)",
                self.id.name,
                count(self.unrecorded_twice, "record"),
            ));
        }
        Ok(())
    }

    /// Reads one parent's child list, or skips it once it turns out to be
    /// deleted. A 404 means deleted only once a fresh, whole listing of the
    /// parents no longer has it; otherwise the list is read again from the
    /// page that failed, and then the stream fails.
    pub(super) fn read_child(
        &mut self,
        client: &mut impl Source,
        parent_def: &StreamDef,
        parent_id: &str,
        checkpoint: Option<At>,
        out: &mut Out,
    ) -> Result<()> {
        let path = self.def.path.replace("{parent_id}", &encode(parent_id));
        self.again = None;
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
                Err(failure) if failure.error.http_status == Some(404) => failure,
                Err(failure) => return Err(failure.into()),
            };
            page = err.page;
            // A 404 on the page a resume starts at leaves its check to
            // the read again; once past it, the read goes on from its own
            // page.
            if !err.unchecked {
                from = None;
            }
            let err = err.error;
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
    pub(super) fn snapshot(
        &mut self,
        client: &mut impl Source,
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
                    self.plan.took_empty(prev.took_empty || listing.took_empty);
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
    pub(super) fn list_parents(
        &mut self,
        client: &mut impl Source,
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
    pub(super) fn parent_ids(&self, page: &Page, parent: &str, out: &mut Out) -> Vec<String> {
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
}

#[cfg(test)]
mod tests {
    use super::super::pager::script::Script;
    use super::super::plan::Plan;
    use super::*;
    use crate::catalog::SyncMode;
    use crate::output::StreamId;
    use crate::streams;

    /// Campaign records with these ids.
    fn campaigns(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| format!(r#"{{"id":"{id}"}}"#)).collect()
    }

    /// Serves one listing of the campaigns: `pages`, each a page of ids.
    fn listing(script: &mut Script, pages: &[&[&str]]) {
        for (i, ids) in pages.iter().enumerate() {
            let records = campaigns(ids);
            let records: Vec<&str> = records.iter().map(String::as_str).collect();
            let more = i + 1 < pages.len();
            script.serve(
                &format!("campaigns?page={}", i + 1),
                "campaigns",
                &records,
                more,
            );
        }
    }

    /// The snapshot `replies` takes of what `script` serves, and what it
    /// logged.
    fn snapshot(script: &mut Script, mode: SyncMode) -> (Result<Vec<String>>, String, bool) {
        let replies = streams::find("replies").unwrap();
        let mut out = Out::new();
        let id = StreamId::new("replies", None);
        let plan = Plan::new(replies, mode, None, None, &mut out).unwrap();
        let mut run = StreamRun::new(replies, &id, plan);
        let parent = replies.parent.unwrap();
        let ids = run.snapshot(script, parent, &mut out);
        let held = run.plan.cursor.as_ref().is_some_and(|c| c.held);
        (ids, out.take_text(), held)
    }

    #[test]
    fn two_listings_that_agree_make_the_snapshot() {
        let mut script = Script::default();
        listing(&mut script, &[&["c1", "c2"], &["c3"]]);
        let (ids, _, _) = snapshot(&mut script, SyncMode::FullRefresh);
        assert_eq!(ids.unwrap(), ["c1", "c2", "c3"]);
        assert_eq!(script.asked.len(), 4, "the list read twice");
    }

    #[test]
    fn a_listing_with_an_id_twice_or_one_that_changed_is_not_trusted() {
        let mut script = Script::default();
        // c0 inserted ahead while page 2 was asked for: c2 is seen twice.
        listing(&mut script, &[&["c1", "c2"], &["c2", "c3"]]);
        // c2 deleted from a page already listed: c3 moved past the listing.
        listing(&mut script, &[&["c0", "c1"], &["c2"]]);
        listing(&mut script, &[&["c0", "c1"], &["c3"]]);
        listing(&mut script, &[&["c0", "c1"], &["c3"]]);
        let (ids, log, _) = snapshot(&mut script, SyncMode::FullRefresh);
        assert_eq!(ids.unwrap(), ["c0", "c1", "c3"]);
        assert!(log.contains("c2 was listed twice"), "{log}");
        assert!(log.contains("changed between two listings"), "{log}");
    }

    #[test]
    fn a_list_that_changes_in_every_listing_fails_before_any_record() {
        let mut script = Script::default();
        for n in 0..MAX_LISTINGS {
            let id = format!("c{n}");
            listing(&mut script, &[&[id.as_str()]]);
        }
        let (ids, _, _) = snapshot(&mut script, SyncMode::FullRefresh);
        let error = ids.unwrap_err();
        assert_eq!(error.failure.as_str(), "transient_error");
        assert!(error.message.contains("changed during each of 5 listings"));
        assert_eq!(script.asked.len(), MAX_LISTINGS as usize);
    }

    #[test]
    fn an_empty_page_taken_in_a_listing_holds_the_cursor() {
        let mut script = Script::default();
        listing(&mut script, &[&["c1"], &[], &["c2"]]);
        let (ids, _, held) = snapshot(&mut script, SyncMode::Incremental);
        assert_eq!(ids.unwrap(), ["c1", "c2"]);
        assert!(held);
    }
}
