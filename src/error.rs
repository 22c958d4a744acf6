//! The one error type of the connector. Each error knows its Airbyte
//! `failure_type`; `main` turns it into a TRACE message and an exit code.

use std::fmt;

/// Airbyte's `failure_type`: who has to act to fix the failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureType {
    /// The user must change the config, catalog or state (or the API key).
    Config,
    /// A retry later may succeed: rate limits, server errors, network faults.
    Transient,
    /// Anything else: the API answered something we cannot use.
    System,
}

impl FailureType {
    /// The protocol's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureType::Config => "config_error",
            FailureType::Transient => "transient_error",
            FailureType::System => "system_error",
        }
    }
}

/// A failure that ends a command (or, during `read`, a stream).
#[derive(Debug)]
pub struct Error {
    pub failure: FailureType,
    /// Shown to the user: what went wrong and what to do next.
    pub message: String,
    /// Extra detail for the logs (URL path, status, a snippet of the body).
    pub internal: Option<String>,
    /// stdout was closed by the reader: stop quietly, there is nobody to tell.
    pub output_closed: bool,
    /// The HTTP status that caused the error, when the API answered.
    pub http_status: Option<u16>,
    /// Why no later stream of a sync can be read either (a rejected key, a
    /// certificate that is not trusted): the sync stops at this error.
    pub stops_sync: Option<&'static str>,
}

impl Error {
    fn new(failure: FailureType, message: impl Into<String>) -> Error {
        Error {
            failure,
            message: message.into(),
            internal: None,
            output_closed: false,
            http_status: None,
            stops_sync: None,
        }
    }

    pub fn config(message: impl Into<String>) -> Error {
        Error::new(FailureType::Config, message)
    }

    pub fn transient(message: impl Into<String>) -> Error {
        Error::new(FailureType::Transient, message)
    }

    pub fn system(message: impl Into<String>) -> Error {
        Error::new(FailureType::System, message)
    }

    /// The reader of stdout went away (e.g. `| head -1`).
    pub fn output_closed() -> Error {
        Error {
            output_closed: true,
            ..Error::system("stdout was closed")
        }
    }

    pub fn with_internal(mut self, internal: impl Into<String>) -> Error {
        self.internal = Some(internal.into());
        self
    }

    pub fn with_status(mut self, status: u16) -> Error {
        self.http_status = Some(status);
        self
    }

    /// Marks an error no other stream could avoid, saying why.
    pub fn stopping_sync(mut self, why: &'static str) -> Error {
        self.stops_sync = Some(why);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<std::io::Error> for Error {
    /// Only stdout writes reach this conversion; a broken pipe means the
    /// reader left, anything else is a real failure to report.
    fn from(e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Error::output_closed()
        } else {
            Error::system(format!("writing to stdout failed: {e}"))
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
