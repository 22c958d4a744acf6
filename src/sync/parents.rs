//! A stream read per parent: a consistent snapshot of the parent stream's
//! ids first, then each parent's list, a deleted parent told from a wrong
//! endpoint by listing the parents again.

use super::checkpoint::At;
use super::pager::Pager;
use super::StreamRun;
use crate::client::Client;
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
        client: &mut Client,
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
            let checkpoint = self.plan.begun_in(Some(parent_id)).cloned();
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
    pub(super) fn read_child(
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
    pub(super) fn list_parents(
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
