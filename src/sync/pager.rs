//! The walk of one list endpoint's pages, each checked by the client.

use super::checkpoint::MAX_PAGE;
use crate::client::{Client, Fingerprints, Request};
use crate::error::{Error, Result};
use crate::output::{log, Out, StreamId};
use crate::page::Page;
use crate::streams::{Paging, StreamDef};

/// Empty pages in a row while the server still says `has_more`: then it
/// is looping, not paging.
pub(super) const MAX_IDLE_PAGES: u32 = 3;
/// Walks the pages of one list endpoint.
///
/// Page N+1 is always built from base_url here, never taken from the
/// envelope's `next_page`: that URL could name another host, and the key
/// must not travel there.
pub(super) struct Pager {
    pub(super) path: String,
    /// Extra query parameters, each as `&name=value`.
    pub(super) filter: String,
    pub(super) collection: &'static str,
    /// The record member to find in each record while the page is checked.
    pub(super) field: Option<&'static str>,
    pub(super) paged: bool,
    pub(super) label: String,
    /// The page the next call asks for.
    pub(super) page: u64,
    pub(super) done: bool,
    pub(super) idle_pages: u32,
    /// An empty page that said `has_more` was taken as it is: it may have
    /// been a glitch hiding records.
    pub(super) took_empty: bool,
    /// Every page's record array so far, to tell a stale copy of any.
    pub(super) seen: Fingerprints,
}

impl Pager {
    pub(super) fn new(
        path: String,
        filter: String,
        def: &StreamDef,
        label: String,
        first_page: u64,
    ) -> Pager {
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
    pub(super) fn next_page(&self) -> Option<u64> {
        (!self.done).then_some(self.page)
    }

    /// The request path of page `page`.
    pub(super) fn path_query(&self, page: u64) -> String {
        if self.paged {
            format!("{}?page={}{}", self.path, page, self.filter)
        } else {
            let filter = self.filter.strip_prefix('&').map(|f| format!("?{f}"));
            format!("{}{}", self.path, filter.unwrap_or_default())
        }
    }

    /// Fetches the next page, checked; `None` once the list has ended.
    pub(super) fn next<'c>(
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
