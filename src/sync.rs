//! `read`: one generic loop that walks a stream's pages and writes each
//! record as a RECORD line the moment its page has arrived.

use crate::catalog::{Selected, State, SyncMode};
use crate::error::{Error, Result};
use crate::http::Client;
use crate::output::{now_ms, Out, Status, StreamId};
use crate::page;
use crate::streams::{self, Paging, StreamDef};
use serde_json::json;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Instant;

/// Pages in a row that bring nothing new (empty, or a repeat of the page
/// before) while the server still says `has_more`: then it is looping.
const MAX_IDLE_PAGES: u32 = 3;

/// A progress LOG line every this many pages.
const PROGRESS_EVERY_PAGES: u64 = 10;

/// Totals of one stream's sync.
#[derive(Default)]
struct Tally {
    pages: u64,
    records: u64,
}

/// Reads the selected streams in catalog order. Returns whether every
/// stream completed; a failed stream has had its TRACE ERROR and INCOMPLETE
/// status written, and the next streams are still attempted.
pub fn read(
    client: &mut Client,
    selected: &[Selected],
    _state: &State,
    out: &mut Out,
) -> Result<bool> {
    let started = Instant::now();
    let mut failed = Vec::new();
    let mut total = 0;
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
            out.flush()?;
            continue;
        };
        if sel.sync_mode == SyncMode::Incremental {
            // PyAirbyte asks for incremental on every stream; a full read is the honest answer.
            out.log(
                "INFO",
                &format!(
                    "stream {} supports only full_refresh; reading it in full",
                    sel.name
                ),
            );
        }
        match sync_stream(client, def, &id, out) {
            Ok(n) => total += n,
            Err(e) if e.output_closed => return Err(e),
            Err(e) => {
                out.trace_error(&e, Some(&id));
                out.status(&id, Status::Incomplete);
                out.flush()?;
                failed.push(sel.name.as_str());
            }
        }
    }
    let summary = format!(
        "sync finished in {:.1} s: {total} records from {} of {} streams",
        started.elapsed().as_secs_f64(),
        selected.len() - failed.len(),
        selected.len()
    );
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

/// Syncs one stream from its first page to its last; returns its record count.
fn sync_stream(client: &mut Client, def: &StreamDef, id: &StreamId, out: &mut Out) -> Result<u64> {
    let started = Instant::now();
    out.status(id, Status::Started);
    out.flush()?;
    let mut tally = Tally::default();
    match def.paging {
        Paging::Pages => walk_pages(client, def, id, def.path, &mut tally, out)?,
    }
    out.state(
        id,
        &json!({"__ab_no_cursor_state_message": true}),
        tally.records,
    );
    out.status(id, Status::Complete);
    out.log(
        "INFO",
        &format!(
            "stream {}: {} records in {} pages, {:.1} s",
            id.name,
            tally.records,
            tally.pages,
            started.elapsed().as_secs_f64()
        ),
    );
    out.flush()?;
    Ok(tally.records)
}

/// Walks `path` from page 1 while the server says `has_more`.
///
/// Page N+1 is always built from base_url here, never taken from the
/// envelope's `next_page`: that URL could name another host, and the key
/// must not travel there.
fn walk_pages(
    client: &mut Client,
    def: &StreamDef,
    id: &StreamId,
    path: &str,
    tally: &mut Tally,
    out: &mut Out,
) -> Result<()> {
    let mut idle_pages = 0;
    let mut previous_page = None;
    let mut number = 0u64;
    loop {
        number += 1;
        let what = format!("stream {}, page {number}", id.name);
        let (has_more, new_records) = client
            .get(&format!("{path}?page={number}"), &what, out, |body, out| {
                let page = page::parse(body, def.collection)?;
                if number == 1 {
                    // RUNNING: the stream has answered, even if with no records.
                    out.status(id, Status::Running);
                }
                let fingerprint = fingerprint(&page.records);
                if page.records.is_empty() || previous_page == Some(fingerprint) {
                    return Ok((page.has_more, 0));
                }
                previous_page = Some(fingerprint);
                let emitted_at = now_ms();
                for record in &page.records {
                    out.record(id, record.get().as_bytes(), emitted_at);
                }
                Ok((page.has_more, page.records.len() as u64))
            })
            .map_err(|e| e.in_stream(&id.name))?;
        tally.pages += 1;
        tally.records += new_records;
        if tally.pages % PROGRESS_EVERY_PAGES == 0 {
            out.log(
                "INFO",
                &format!(
                    "stream {}: {} pages, {} records so far",
                    id.name, tally.pages, tally.records
                ),
            );
        }
        out.flush()?;
        if !has_more {
            return Ok(());
        }
        idle_pages = if new_records == 0 { idle_pages + 1 } else { 0 };
        if idle_pages >= MAX_IDLE_PAGES {
            return Err(Error::system(format!(
                "{what}: the API says more pages follow, but the last {idle_pages} pages were empty or repeated the page before; stopping instead of looping forever"
            ))
            .in_stream(&id.name));
        }
    }
}

/// Identifies a page's records, to notice a server that serves one page over and over.
fn fingerprint(records: &[&serde_json::value::RawValue]) -> u64 {
    let mut hasher = DefaultHasher::new();
    for r in records {
        r.get().hash(&mut hasher);
    }
    hasher.finish()
}
