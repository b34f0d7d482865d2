//! Errors of the store. Each names the operation and table involved and the database URL (with
//! any password replaced by `***`), so a failure in a log line can be acted on.

use std::path::PathBuf;

use sea_orm::DbErr;

/// An error of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported database URL `{url}`: expected sqlite://PATH (for example \
         sqlite:///var/lib/ballast/ballast.db) or postgres://USER:PASSWORD@HOST/DATABASE"
    )]
    UnsupportedUrl { url: String },

    #[error("cannot create the directory {} for the SQLite database {url}: {error}", path.display())]
    CreateDir {
        url: String,
        path: PathBuf,
        error: std::io::Error,
    },

    #[error("cannot create the SQLite database {}: {error}", path.display())]
    CreateFile {
        url: String,
        path: PathBuf,
        error: std::io::Error,
    },

    #[error(
        "no ballast database at {} ({url}); `ballast init` creates it (or pass \
         --database-url / BALLAST_DATABASE_URL for the database you meant)",
        path.display()
    )]
    NoDatabase { url: String, path: PathBuf },

    #[error("cannot connect to the database {url}: {error}")]
    Connect { url: String, error: DbErr },

    #[error("cannot bring the database {url} to the current schema: {error}")]
    Migrate { url: String, error: DbErr },

    #[error("{op} failed on table `{table}` of {url}: {error}")]
    Db {
        op: &'static str,
        table: &'static str,
        url: String,
        error: DbErr,
    },

    #[error("table `{table}` of {url} holds an invalid value: {detail}")]
    Corrupt {
        table: &'static str,
        url: String,
        detail: String,
    },

    #[error("{op}: {detail}")]
    Invalid { op: &'static str, detail: String },

    #[error("{op}: {what} does not exist")]
    NotFound { op: &'static str, what: String },

    /// The audit log does not verify; see [`AuditBreak`].
    #[error(transparent)]
    AuditBroken(AuditBreak),

    #[error("re-encrypting secret `{name}` failed, nothing was changed: {error}")]
    Rewrap {
        name: String,
        error: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// Where the audit chain is broken, if that is what this error is.
    pub fn audit_break(&self) -> Option<&AuditBreak> {
        match self {
            StoreError::AuditBroken(b) => Some(b),
            _ => None,
        }
    }
}

/// Where the audit chain is broken, as found by
/// [`Store::verify_audit_chain`](crate::Store::verify_audit_chain).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the audit log is broken at seq {seq}: {reason}")]
pub struct AuditBreak {
    /// The first sequence number that does not verify.
    pub seq: i64,
    pub reason: String,
}

/// `url` with the password (if any) replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    // The userinfo ends at the last '@' of the authority (a password may contain '@').
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_string();
    };
    format!(
        "{}{}:***{}",
        &url[..authority_start],
        &userinfo[..colon],
        &url[authority_start + at..]
    )
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://ballast:s3cr%40t@db.example:5432/ballast?sslmode=require"),
            "postgres://ballast:***@db.example:5432/ballast?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://u:p@ss@host/db"),
            "postgres://u:***@host/db"
        );
        assert_eq!(redact_url("postgres://u@host/db"), "postgres://u@host/db");
        assert_eq!(redact_url("postgres://host/db"), "postgres://host/db");
        assert_eq!(
            redact_url("sqlite:///var/lib/ballast/ballast.db?mode=rwc"),
            "sqlite:///var/lib/ballast/ballast.db?mode=rwc"
        );
        assert_eq!(redact_url("sqlite:ballast.db"), "sqlite:ballast.db");
    }
}
