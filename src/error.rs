//! The one error type of the connector. Each error knows its Airbyte
//! `failure_type`; `main` turns it into a TRACE message and an exit code.
//!
//! Errors are made by named constructors only: there is no blanket
//! conversion from `std::io::Error`, because the same io error means
//! different things (a closed stdout, an unreadable config file) and must
//! say which.

use std::fmt;
use std::io;
use std::path::Path;

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
    /// stdout cannot be written (its reader left, its disk is full): the
    /// command stops, and says why on stderr, the one place left.
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

    /// The user must fix the config, catalog, state or command line.
    pub fn config(message: impl Into<String>) -> Error {
        Error::new(FailureType::Config, message)
    }

    /// A later attempt may succeed.
    pub fn transient(message: impl Into<String>) -> Error {
        Error::new(FailureType::Transient, message)
    }

    /// Neither the user nor time will fix it.
    pub fn system(message: impl Into<String>) -> Error {
        Error::new(FailureType::System, message)
    }

    /// The reader of stdout went away (e.g. `| head -1`).
    pub fn output_closed() -> Error {
        Error {
            output_closed: true,
            ..Error::system(
                "the reader of stdout closed it before the end (a broken pipe, as `| head` \
                 makes); nothing after the last line it read was written. Read all of stdout, \
                 or send it to a file",
            )
        }
    }

    /// Writing to stdout failed: a broken pipe means the reader left;
    /// either way nothing more can be written there.
    pub fn stdout(e: &io::Error) -> Error {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Error::output_closed()
        } else {
            let next = if e.kind() == io::ErrorKind::StorageFull {
                "free space where stdout goes, or send it to another disk"
            } else {
                "check where stdout goes"
            };
            Error {
                output_closed: true,
                ..Error::system(format!("writing to stdout failed: {e}; {next}"))
            }
        }
    }

    /// A file the user named could not be read; `what` says which one
    /// ("config", "catalog", "state").
    pub fn unreadable(what: &str, path: &Path, e: &io::Error) -> Error {
        let why = match e.kind() {
            io::ErrorKind::PermissionDenied => permission_hint(path),
            _ => String::new(),
        };
        Error::config(format!(
            "cannot read the {what} file {}: {e}{why}",
            path.display()
        ))
    }

    /// Detail for the logs, beside the message.
    pub fn with_internal(mut self, internal: impl Into<String>) -> Error {
        self.internal = Some(internal.into());
        self
    }

    /// The HTTP status the API answered with.
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

impl std::error::Error for Error {}

/// Who this process is and who may read `path`: a file written under
/// `umask 077` by one user cannot be read by a container running as
/// another (the image runs as uid 1000).
fn permission_hint(path: &Path) -> String {
    let (uid, gid) = ids();
    let owner = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path)
            .map(|m| {
                format!(
                    ", the file is uid {}'s with mode {:o}",
                    m.uid(),
                    m.mode() & 0o777
                )
            })
            .unwrap_or_default()
    };
    format!(
        "; this process runs as uid {uid} (gid {gid}){owner}: make the file readable by uid \
         {uid} (chown, or chmod a+r on a file only you can reach; the Docker image runs as uid \
         1000)"
    )
}

/// The user and group ids the process acts as.
#[allow(unsafe_code)] // geteuid and getegid have no safe wrapper in std
fn ids() -> (u32, u32) {
    // SAFETY: geteuid() and getegid() take nothing, cannot fail and touch
    // no memory of ours.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// The connector's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_says_where_it_arose() {
        let gone = io::Error::new(io::ErrorKind::NotFound, "No such file or directory");
        let config = Error::unreadable("config", Path::new("c.json"), &gone);
        assert_eq!(config.failure, FailureType::Config);
        assert!(config
            .message
            .starts_with("cannot read the config file c.json"));
        let full = io::Error::new(io::ErrorKind::StorageFull, "No space left on device");
        assert!(Error::stdout(&full)
            .message
            .starts_with("writing to stdout"));
        let pipe = io::Error::new(io::ErrorKind::BrokenPipe, "Broken pipe");
        assert!(Error::stdout(&pipe).output_closed);
    }
}
