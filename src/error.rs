//! The one error type of the core: every failure is either an expected
//! `Pixstore` error (bad input, not found, not initialized), a `Config` error
//! (rejected configuration) or an `Internal` failure (I/O, database, bugs).

use std::fmt;

/// What kind of failure an [`Error`] is; the binding turns it into a JS error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
  /// An expected failure the caller can act on; becomes a `PixstoreError` in JS.
  Pixstore,
  /// An invalid configuration value; becomes a plain `Error` thrown by init.
  Config,
  /// Anything unexpected: I/O, SQLite, a broken invariant.
  Internal,
}

/// A failure with its kind and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
  /// Which kind of failure this is.
  pub kind: ErrorKind,
  /// The message shown to the user.
  pub message: String,
  /// Whether the disk or the database refused to be written (read-only file
  /// system, no space, no permission): a store can then still be read.
  pub writes_refused: bool,
}

/// Result alias used throughout the core.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
  /// An expected failure (becomes `PixstoreError`).
  pub fn pixstore(message: impl Into<String>) -> Self {
    Error {
      kind: ErrorKind::Pixstore,
      message: message.into(),
      writes_refused: false,
    }
  }

  /// A configuration failure.
  pub fn config(message: impl Into<String>) -> Self {
    Error {
      kind: ErrorKind::Config,
      message: message.into(),
      writes_refused: false,
    }
  }

  /// An unexpected failure.
  pub fn internal(message: impl Into<String>) -> Self {
    Error {
      kind: ErrorKind::Internal,
      message: message.into(),
      writes_refused: false,
    }
  }

  /// The expected error for a store that is not (or no longer) open.
  pub fn not_initialized() -> Self {
    Error::pixstore("Pixstore backend is not initialized: call initPixstoreBackend() first")
  }

  /// The reference's message for a missing record.
  pub fn not_found(id: &str) -> Self {
    Error::pixstore(format!("Image not found: {id}"))
  }

  /// The reference's message for bytes that are not an allowed image.
  pub fn invalid_image() -> Self {
    Error::pixstore("Invalid image file")
  }
}

impl fmt::Display for Error {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str(&self.message)
  }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
  fn from(err: std::io::Error) -> Self {
    use std::io::ErrorKind;
    let writes_refused = matches!(
      err.kind(),
      ErrorKind::ReadOnlyFilesystem | ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::PermissionDenied
    );
    Error {
      writes_refused,
      ..Error::internal(format!("I/O error: {err}"))
    }
  }
}

impl From<rusqlite::Error> for Error {
  fn from(err: rusqlite::Error) -> Self {
    use rusqlite::ErrorCode;
    let writes_refused = matches!(
      err.sqlite_error_code(),
      Some(ErrorCode::ReadOnly | ErrorCode::DiskFull | ErrorCode::PermissionDenied | ErrorCode::CannotOpen)
    );
    Error {
      writes_refused,
      ..Error::internal(format!("database error: {err}"))
    }
  }
}

impl From<serde_json::Error> for Error {
  fn from(err: serde_json::Error) -> Self {
    Error::internal(format!("corrupt image meta: {err}"))
  }
}
