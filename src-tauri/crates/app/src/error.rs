//! The one error of the application layer: a [`ErrorKind`] that each adapter maps once (the server
//! to an HTTP status, the desktop app to its command error, the page to its message) and a message
//! safe to show to the caller. Internal causes are logged here and never shown.

use serde::{Deserialize, Serialize};

use dsmon_auth::AuthError;
use dsmon_store::export::ExportError;
use dsmon_store::history::HistoryError;
use dsmon_store::StoreError;

/// What went wrong, as the caller must react to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No (valid) session: sign in.
    NotSignedIn,
    /// Signed in, but the role does not allow it.
    Forbidden,
    /// Signed in at the provider, but this identity has no role here (or is blocked).
    NotAuthorized,
    /// The request itself is wrong (parameters, body).
    BadRequest,
    /// The thing asked for does not exist (an unknown user, no sign-in configured).
    NotFound,
    /// The change conflicts with the configuration (e.g. demoting a configuration admin).
    Conflict,
    /// Too many at once (live streams of a session, or in total): try again later.
    TooMany,
    /// The configuration does not load (the desktop app's Settings page can fix it).
    Config,
    /// A service this depends on failed: the sign-in provider, a remote server, the browser.
    Unavailable,
    /// The database cannot be reached (PostgreSQL down, its connection cut): what needs it waits;
    /// the live view goes on and the rows of the ticks are logged once it is back.
    DatabaseUnavailable,
    /// Our fault; the cause is in the log.
    Internal,
}

/// An application-layer failure: its kind and a message for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{message}")]
pub struct AppError {
    pub kind: ErrorKind,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, AppError>;

impl AppError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    pub fn not_signed_in() -> Self {
        Self::new(ErrorKind::NotSignedIn, "not signed in")
    }

    /// Logs `cause` and returns an error that does not show it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(ErrorKind::Internal, "internal error (see the server log)")
    }
}

/// What a caller is told while the database cannot be reached.
pub const DATABASE_UNAVAILABLE: &str =
    "the database is unreachable: this needs it; the live view goes on and no logged tick is lost; try again shortly";

impl AppError {
    /// A store failure: "the database is unavailable" when it could not be reached (logged once
    /// at warn, without the request), else an internal error.
    pub fn store(e: StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "a request needed the database, which is unreachable");
            return Self::new(ErrorKind::DatabaseUnavailable, DATABASE_UNAVAILABLE);
        }
        Self::internal(e)
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        Self::store(e)
    }
}

impl From<HistoryError> for AppError {
    fn from(e: HistoryError) -> Self {
        match e {
            HistoryError::Store(e) => Self::store(e),
            other => Self::bad_request(other.to_string()),
        }
    }
}

impl From<ExportError> for AppError {
    fn from(e: ExportError) -> Self {
        match e {
            ExportError::Store(e) => Self::store(e),
            ExportError::Io(e) => Self::internal(e),
            other => Self::bad_request(other.to_string()),
        }
    }
}

impl From<AuthError> for AppError {
    fn from(e: AuthError) -> Self {
        let e = match e {
            AuthError::Db(db) => return Self::store(db),
            other => other,
        };
        let kind = match &e {
            AuthError::UnknownUser(_) | AuthError::UnknownToken(_) => ErrorKind::NotFound,
            AuthError::ConfigAdmin(_)
            | AuthError::NothingToRebind(_)
            | AuthError::TokenNameTaken(_) => ErrorKind::Conflict,
            AuthError::NotAuthorized(_)
            | AuthError::Blocked(_)
            | AuthError::Unverified(_)
            | AuthError::OtherAccount { .. } => ErrorKind::NotAuthorized,
            AuthError::Refused(_) | AuthError::InvalidToken(_) => ErrorKind::NotSignedIn,
            AuthError::Provider(_) => {
                // Its chain (DNS, TLS details) is for the log, not for whoever asks.
                tracing::warn!(error = %e, "the sign-in provider failed");
                return Self::new(
                    ErrorKind::Unavailable,
                    "the sign-in provider is unavailable (see the server log)",
                );
            }
            AuthError::Browser(_) => ErrorKind::Unavailable,
            AuthError::Busy => ErrorKind::TooMany,
            AuthError::Db(_) | AuthError::Poisoned => return Self::internal(e),
            _ => ErrorKind::BadRequest,
        };
        Self::new(kind, e.to_string())
    }
}

impl From<tokio::task::JoinError> for AppError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::internal(e)
    }
}
