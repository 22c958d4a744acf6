//! The walk of one list endpoint's pages, each checked by the client: when
//! the list ends, when a server that never stops paging or keeps answering
//! empty pages is stopped, and what it has seen of the list.

use super::checkpoint::MAX_PAGE;
use crate::error::{Error, Result};
use crate::http::client::{Client, Fingerprints, Request};
use crate::output::{log, Out, StreamId, Told};
use crate::page::Page;
use crate::streams::{Paging, StreamDef};

/// Empty pages in a row while the server still says `has_more`: then it
/// is looping, not paging.
const MAX_IDLE_PAGES: u32 = 3;

/// Where pages come from: the API client, or a test's pages.
pub(super) trait Source {
    /// The page `req` asks for, checked and retried as `Client::get_page`.
    fn page<'c>(&'c mut self, req: &mut Request, told: &mut Told) -> Result<Page<'c>>;
}

impl Source for Client {
    fn page<'c>(&'c mut self, req: &mut Request, told: &mut Told) -> Result<Page<'c>> {
        self.get_page(req, told)
    }
}

/// Walks the pages of one list endpoint.
///
/// Page N+1 is always built from base_url here, never taken from the
/// envelope's `next_page`: that URL could name another host, and the key
/// must not travel there.
pub(super) struct Pager {
    path: String,
    /// Extra query parameters, each as `&name=value`.
    filter: String,
    collection: &'static str,
    /// The record member to find in each record while the page is checked.
    pub(super) field: Option<&'static str>,
    paged: bool,
    label: String,
    /// The page the next call asks for.
    pub(super) page: u64,
    done: bool,
    idle_pages: u32,
    /// An empty page that said `has_more` was taken as it is: it may have
    /// been a glitch hiding records.
    pub(super) took_empty: bool,
    /// Every page's set of records so far, to tell a stale copy of any.
    seen: Fingerprints,
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
    fn path_query(&self, page: u64) -> String {
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
        client: &'c mut impl Source,
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
        let mut request = Request {
            path_query: &path_query,
            what: &what,
            collection: self.collection,
            field: self.field,
            paged: self.paged,
            seen: Some(&mut self.seen),
        };
        let told = &mut Told {
            out: &mut *out,
            stream: Some(stream),
        };
        let page = client.page(&mut request, told)?;
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

/// A `Source` of pages written out by a test, by request path: the API
/// without a server, for the sync's policies.
#[cfg(test)]
pub(super) mod script {
    use super::*;
    use std::collections::{HashMap, VecDeque};

    /// Bodies by request path, served in turn (the last one again); a path
    /// with none answers as an HTTP 404.
    #[derive(Default)]
    pub struct Script {
        bodies: HashMap<String, VecDeque<String>>,
        body: Vec<u8>,
        /// Every request path asked for, in order.
        pub asked: Vec<String>,
    }

    impl Script {
        /// Serves `records` (JSON objects) under `collection` at `path`,
        /// saying `has_more`, after what is already there for it.
        pub fn serve(&mut self, path: &str, collection: &str, records: &[&str], has_more: bool) {
            let body = format!(
                r#"{{"status":"success","has_more":{has_more},"{collection}":[{}]}}"#,
                records.join(",")
            );
            self.bodies
                .entry(path.to_string())
                .or_default()
                .push_back(body);
        }
    }

    impl Source for Script {
        fn page<'c>(&'c mut self, req: &mut Request, _told: &mut Told) -> Result<Page<'c>> {
            self.asked.push(req.path_query.to_string());
            let Some(bodies) = self.bodies.get_mut(req.path_query) else {
                return Err(Error::system(format!("{}: HTTP 404", req.what)).with_status(404));
            };
            let body = match bodies.len() {
                1 => bodies.front().cloned(),
                _ => bodies.pop_front(),
            };
            self.body = body.unwrap_or_default().into_bytes();
            let layout =
                crate::page::scan(&self.body, req.collection, req.field).map_err(Error::system)?;
            Ok(layout.page(&self.body))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::script::Script;
    use super::*;
    use crate::streams;

    /// Walks `def`'s list from `first` to its end or an error; the number
    /// of records of each page read, and the error's message.
    fn walk(
        script: &mut Script,
        def: &StreamDef,
        first: u64,
    ) -> (Vec<usize>, Option<String>, Pager) {
        let mut out = Out::new();
        let id = StreamId::new(def.name, None);
        let mut pager = Pager::new(
            def.path.into(),
            "&start_at=x".into(),
            def,
            "t".into(),
            first,
        );
        let mut counts = Vec::new();
        loop {
            match pager.next(script, &id, &mut out) {
                Ok(Some(page)) => counts.push(page.records.len()),
                Ok(None) => return (counts, None, pager),
                Err(e) => return (counts, Some(e.message), pager),
            }
        }
    }

    const RECORD: &str = r#"{"id":"x"}"#;

    #[test]
    fn a_paged_list_is_walked_until_has_more_is_false() {
        let users = streams::find("users").unwrap();
        let mut script = Script::default();
        script.serve("users?page=1&start_at=x", "users", &[RECORD, RECORD], true);
        script.serve("users?page=2&start_at=x", "users", &[], true);
        script.serve("users?page=3&start_at=x", "users", &[RECORD], false);
        let (counts, error, pager) = walk(&mut script, users, 1);
        assert_eq!((counts, error), (vec![2, 0, 1], None));
        assert!(
            pager.took_empty,
            "the empty page that said more is remembered"
        );
        assert_eq!(pager.next_page(), None);
        // Resumed at page 3: pages before it are not asked for.
        let mut script2 = Script::default();
        script2.serve("users?page=3&start_at=x", "users", &[RECORD], false);
        let (counts, _, pager) = walk(&mut script2, users, 3);
        assert_eq!((counts, pager.took_empty), (vec![1], false));
        assert_eq!(script2.asked, ["users?page=3&start_at=x"]);
    }

    #[test]
    fn an_unpaged_list_is_one_request_whatever_it_says() {
        let statuses = streams::find("lead_statuses").unwrap();
        let mut script = Script::default();
        script.serve("lead_statuses?start_at=x", "lead_statuses", &[RECORD], true);
        let (counts, error, _) = walk(&mut script, statuses, 1);
        assert_eq!((counts, error), (vec![1], None));
        assert_eq!(script.asked.len(), 1);
    }

    #[test]
    fn empty_pages_that_say_more_stop_the_list_at_the_third() {
        let users = streams::find("users").unwrap();
        let mut script = Script::default();
        for page in 1..=4 {
            script.serve(&format!("users?page={page}&start_at=x"), "users", &[], true);
        }
        let (counts, error, _) = walk(&mut script, users, 1);
        assert_eq!(counts, [0, 0], "the third fails instead");
        assert!(error.unwrap().contains("last 3 pages were empty"));
        assert_eq!(script.asked.len(), 3);
    }

    #[test]
    fn a_list_that_still_pages_at_the_last_page_fails_there() {
        let users = streams::find("users").unwrap();
        let mut script = Script::default();
        script.serve(
            &format!("users?page={MAX_PAGE}&start_at=x"),
            "users",
            &[RECORD],
            true,
        );
        let (counts, error, _) = walk(&mut script, users, MAX_PAGE);
        assert!(counts.is_empty(), "its records are not handed up");
        assert!(error.unwrap().contains("never stopped paging"));
    }
}
