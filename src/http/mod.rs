//! HTTP: one page asked of the API and given back checked (`client`), on
//! the wire (`transport`), with the retry policy (`retry`), what the
//! server says of its rate limit (`rate`), and the words for what went
//! wrong (`errors`). Nothing here writes Airbyte output: the client tells
//! its waits through `client::Report`.

pub mod client;
pub mod errors;
pub mod rate;
pub mod retry;
pub mod transport;
