//! The stream table: every stream is a row of data; `sync` has one loop for all.

/// How a stream's endpoint hands out its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paging {
    /// 1-based `?page=N`, walked while the envelope says `has_more`.
    Pages,
}

/// One stream of the connector.
#[derive(Debug)]
pub struct StreamDef {
    /// The Airbyte stream name.
    pub name: &'static str,
    /// Path under `base_url`.
    pub path: &'static str,
    /// The envelope key that holds the records.
    pub collection: &'static str,
    /// JSON schema (draft-07), compiled in from `schemas/`.
    pub schema: &'static str,
    pub paging: Paging,
}

/// Every stream, in the order `discover` lists them.
pub const STREAMS: &[StreamDef] = &[
    StreamDef {
        name: "users",
        path: "users",
        collection: "users",
        schema: include_str!("../schemas/users.json"),
        paging: Paging::Pages,
    },
    StreamDef {
        name: "leads",
        path: "leads",
        collection: "leads",
        schema: include_str!("../schemas/leads.json"),
        paging: Paging::Pages,
    },
    StreamDef {
        name: "campaigns",
        path: "campaigns",
        collection: "campaigns",
        schema: include_str!("../schemas/campaigns.json"),
        paging: Paging::Pages,
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
