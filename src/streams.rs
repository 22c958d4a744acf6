//! The stream table: every stream is a row of data; `sync` has one loop for all.

/// How a stream's endpoint hands out its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paging {
    /// 1-based `?page=N`, walked while the envelope says `has_more`.
    Pages,
    /// One request, no `page` parameter (the list is small and whole).
    Unpaged,
}

/// Where an incremental stream's cursor comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// The greatest value of this record field (an ISO-8601 time) seen.
    Field(&'static str),
    /// The records carry no time: the cursor is the sync's own start time,
    /// less a safety margin, kept in state under this key.
    SyncStart(&'static str),
}

impl Cursor {
    /// The key of the cursor in the stream's state.
    pub fn state_key(self) -> &'static str {
        match self {
            Cursor::Field(name) | Cursor::SyncStart(name) => name,
        }
    }

    /// The record member that holds the cursor, if the cursor is one.
    pub fn record_field(self) -> Option<&'static str> {
        match self {
            Cursor::Field(name) => Some(name),
            Cursor::SyncStart(_) => None,
        }
    }
}

/// How a stream reads only what changed since the last sync.
#[derive(Clone, Copy, Debug)]
pub struct Incremental {
    /// The query parameter that takes the cursor.
    pub param: &'static str,
    pub cursor: Cursor,
}

/// One stream of the connector.
#[derive(Debug)]
pub struct StreamDef {
    /// The Airbyte stream name.
    pub name: &'static str,
    /// Path under `base_url`; `{parent_id}` stands for each parent record's id.
    pub path: &'static str,
    /// The envelope key that holds the records.
    pub collection: &'static str,
    /// JSON schema (draft-07), compiled in from `schemas/`.
    pub schema: &'static str,
    pub paging: Paging,
    /// The stream whose records' `id`s fill `{parent_id}` in `path`.
    pub parent: Option<&'static StreamDef>,
    pub incremental: Option<Incremental>,
}

impl StreamDef {
    /// Whether a full read can go on from where an interrupted one
    /// stopped: a paged list, or a list per parent. An unpaged list is one
    /// request, with nothing in between to keep.
    pub fn resumable_in_full(&self) -> bool {
        self.paging == Paging::Pages || self.parent.is_some()
    }

    /// Whether a sync of the stream can go on from a checkpoint, in some
    /// mode: what `discover` declares as `is_resumable`.
    pub fn is_resumable(&self) -> bool {
        self.incremental.is_some() || self.resumable_in_full()
    }
}

const fn stream(name: &'static str, schema: &'static str, paging: Paging) -> StreamDef {
    StreamDef {
        name,
        path: name,
        collection: name,
        schema,
        paging,
        parent: None,
        incremental: None,
    }
}

/// The parent of the streams read per campaign.
const CAMPAIGNS: StreamDef = stream(
    "campaigns",
    include_str!("../schemas/campaigns.json"),
    Paging::Pages,
);

/// Every stream, in the order `discover` lists them.
pub const STREAMS: &[StreamDef] = &[
    stream(
        "users",
        include_str!("../schemas/users.json"),
        Paging::Pages,
    ),
    StreamDef {
        incremental: Some(Incremental {
            param: "updated_after",
            cursor: Cursor::SyncStart("updated_after"),
        }),
        ..stream(
            "leads",
            include_str!("../schemas/leads.json"),
            Paging::Pages,
        )
    },
    CAMPAIGNS,
    stream(
        "lead_statuses",
        include_str!("../schemas/lead_statuses.json"),
        Paging::Unpaged,
    ),
    stream(
        "lead_fields",
        include_str!("../schemas/lead_fields.json"),
        Paging::Unpaged,
    ),
    stream(
        "dnc_domains",
        include_str!("../schemas/dnc_domains.json"),
        Paging::Pages,
    ),
    stream("tags", include_str!("../schemas/tags.json"), Paging::Pages),
    StreamDef {
        incremental: Some(Incremental {
            param: "start_at",
            cursor: Cursor::Field("created_at"),
        }),
        ..stream(
            "events",
            include_str!("../schemas/events.json"),
            Paging::Pages,
        )
    },
    StreamDef {
        path: "campaigns/{parent_id}/leads",
        parent: Some(&CAMPAIGNS),
        ..stream(
            "campaign_leads",
            include_str!("../schemas/campaign_leads.json"),
            Paging::Pages,
        )
    },
    // One cursor for the whole stream, sent to every campaign's list; the
    // checkpoint names the campaign and page to resume at.
    StreamDef {
        path: "campaigns/{parent_id}/replies",
        parent: Some(&CAMPAIGNS),
        incremental: Some(Incremental {
            param: "start_at",
            cursor: Cursor::Field("sent_at"),
        }),
        ..stream(
            "replies",
            include_str!("../schemas/replies.json"),
            Paging::Pages,
        )
    },
];

/// The stream called `name`, if there is one.
pub fn find(name: &str) -> Option<&'static StreamDef> {
    STREAMS.iter().find(|s| s.name == name)
}

/// The stream names, comma-separated, for error messages.
pub fn names() -> String {
    STREAMS
        .iter()
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_consistent() {
        for (i, s) in STREAMS.iter().enumerate() {
            assert!(
                STREAMS[..i].iter().all(|o| o.name != s.name),
                "{} twice",
                s.name
            );
            if let Some(parent) = s.parent {
                assert!(
                    find(parent.name).is_some_and(|p| p.parent.is_none()),
                    "{}",
                    s.name
                );
                assert!(s.path.contains("{parent_id}"), "{}", s.name);
            }
            let schema: serde_json::Value = serde_json::from_str(s.schema).expect("schema is JSON");
            assert!(schema["properties"]["id"].is_object(), "{}: no id", s.name);
            if let Some(Incremental {
                cursor: Cursor::Field(f),
                ..
            }) = s.incremental
            {
                assert!(
                    schema["properties"][f].is_object(),
                    "{}: cursor {f} not in schema",
                    s.name
                );
            }
        }
    }
}
