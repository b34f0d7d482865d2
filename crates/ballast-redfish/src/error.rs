//! The client's errors, classified by what the caller must do next ([`ErrorClass`]).

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// One message of a Redfish error body (`error.@Message.ExtendedInfo[]`) or of a task.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RedfishMessage {
    #[serde(default)]
    pub message_id: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub severity: Option<String>,
    /// JSON pointers of the request fields the message is about (`#/ImageURI`).
    #[serde(default)]
    pub related_properties: Vec<String>,
    #[serde(default)]
    pub resolution: Option<String>,
}

impl RedfishMessage {
    /// Whether the message id names `name` in any registry version (`Base.1.8.ResetRequired`
    /// matches `ResetRequired`).
    pub fn is(&self, name: &str) -> bool {
        self.message_id.rsplit('.').next() == Some(name)
    }
}

impl fmt::Display for RedfishMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = if self.message.is_empty() {
            self.message_id.as_str()
        } else {
            self.message.as_str()
        };
        f.write_str(text)?;
        let fields: Vec<&str> = self
            .related_properties
            .iter()
            .map(|p| p.trim_start_matches("#/"))
            .filter(|p| !p.is_empty())
            .collect();
        if !fields.is_empty() {
            write!(f, " (field {})", fields.join(", "))?;
        }
        Ok(())
    }
}

/// Messages joined for an error text.
pub(crate) fn join(messages: &[RedfishMessage]) -> String {
    if messages.is_empty() {
        return "no message from the BMC".to_string();
    }
    messages
        .iter()
        .map(|m| m.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a caller must do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again later with backoff; `after` is the BMC's own `Retry-After` when it gave one.
    Retry { after: Option<Duration> },
    /// The caller's view is stale (an ETag did not match): read the resource again, re-plan.
    Reread,
    /// Retrying the same request will not help: fix the input, the credentials or the trust.
    Stop,
}

/// An error of the Redfish client. Never holds a password or a session token.
#[derive(Debug, thiserror::Error)]
pub enum RedfishError {
    /// The BMC did not answer (refused, reset, timed out): normal while it reboots.
    #[error("the BMC at {url} does not answer: {reason}")]
    Unreachable { url: String, reason: String },
    /// The TLS handshake failed: the certificate is not trusted or does not match the pin.
    #[error("TLS with the BMC at {url} failed: {reason}")]
    Tls { url: String, reason: String },
    /// The BMC refused the credentials (also after logging in again once).
    #[error("the BMC at {url} refused the credentials: {}", join(.messages))]
    Auth {
        url: String,
        messages: Vec<RedfishMessage>,
    },
    /// The BMC has no free session (iDRAC allows 8); older sessions time out by themselves.
    #[error("the BMC at {url} has no free session: {}", join(.messages))]
    SessionLimit {
        url: String,
        messages: Vec<RedfishMessage>,
    },
    /// 503 (or 429): the BMC is busy; `retry_after` is its `Retry-After`.
    #[error("the BMC at {url} is busy (HTTP {status}{}): {}", .retry_after.map(|d| format!(", retry after {} s", d.as_secs())).unwrap_or_default(), join(.messages))]
    Busy {
        url: String,
        status: u16,
        retry_after: Option<Duration>,
        messages: Vec<RedfishMessage>,
    },
    /// 409: the resource is locked or another update runs.
    #[error("the BMC at {url} reports a conflict: {}", join(.messages))]
    Conflict {
        url: String,
        messages: Vec<RedfishMessage>,
    },
    /// 412: the ETag given no longer matches.
    #[error("the resource at {url} changed since it was read: {}", join(.messages))]
    Stale {
        url: String,
        messages: Vec<RedfishMessage>,
    },
    /// Another 5xx.
    #[error("the BMC at {url} failed (HTTP {status}): {}", join(.messages))]
    Server {
        url: String,
        status: u16,
        messages: Vec<RedfishMessage>,
    },
    /// 4xx: the request was refused; the messages say which field and why.
    #[error("the BMC at {url} refused the request (HTTP {status}): {}", join(.messages))]
    Rejected {
        url: String,
        status: u16,
        messages: Vec<RedfishMessage>,
    },
    /// 404.
    #[error("the BMC has no resource at {url}")]
    NotFound { url: String },
    /// The BMC does not offer what was asked (no UpdateService, a reset type it does not allow).
    #[error("{what}")]
    Unsupported { what: String },
    /// The BMC answered something that is not the Redfish the client expects.
    #[error("unexpected answer from {url}: {reason}")]
    Protocol { url: String, reason: String },
    /// The client's own configuration (address, CA file, fingerprint) is wrong.
    #[error("{0}")]
    Config(String),
    /// Reading a local file to upload failed.
    #[error("reading {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl RedfishError {
    /// What the caller must do: retry later, re-read, or stop.
    pub fn class(&self) -> ErrorClass {
        match self {
            RedfishError::Unreachable { .. }
            | RedfishError::SessionLimit { .. }
            | RedfishError::Conflict { .. }
            | RedfishError::Server { .. } => ErrorClass::Retry { after: None },
            RedfishError::Busy { retry_after, .. } => ErrorClass::Retry {
                after: *retry_after,
            },
            RedfishError::Stale { .. } => ErrorClass::Reread,
            RedfishError::Tls { .. }
            | RedfishError::Auth { .. }
            | RedfishError::Rejected { .. }
            | RedfishError::NotFound { .. }
            | RedfishError::Unsupported { .. }
            | RedfishError::Protocol { .. }
            | RedfishError::Config(_)
            | RedfishError::File { .. } => ErrorClass::Stop,
        }
    }

    /// Whether a later retry may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self.class(), ErrorClass::Retry { .. })
    }

    /// The BMC's messages, when the error carries any.
    pub fn messages(&self) -> &[RedfishMessage] {
        match self {
            RedfishError::Auth { messages, .. }
            | RedfishError::SessionLimit { messages, .. }
            | RedfishError::Busy { messages, .. }
            | RedfishError::Conflict { messages, .. }
            | RedfishError::Stale { messages, .. }
            | RedfishError::Server { messages, .. }
            | RedfishError::Rejected { messages, .. } => messages,
            _ => &[],
        }
    }
}

/// The messages of a Redfish error body; a body without ExtendedInfo gives its
/// `error.message`, and a body that is not JSON gives its first line of text.
pub fn error_messages(body: &[u8]) -> Vec<RedfishMessage> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        let text = String::from_utf8_lossy(body);
        let line = text.lines().map(str::trim).find(|l| !l.is_empty());
        return line
            .map(|l| {
                vec![RedfishMessage {
                    message: l.chars().take(300).collect(),
                    ..RedfishMessage::default()
                }]
            })
            .unwrap_or_default();
    };
    let error = value.get("error").unwrap_or(&value);
    let mut messages: Vec<RedfishMessage> = error
        .get("@Message.ExtendedInfo")
        .and_then(|v| serde_json::from_value::<Vec<RedfishMessage>>(v.clone()).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|m| !m.message.is_empty() || !m.message_id.is_empty())
        .collect();
    // Some BMCs (sushy-tools among them) put the text in error.message and only a bare id in
    // ExtendedInfo: keep the text rather than a meaningless "GeneralError".
    let top = error.get("message").and_then(|m| m.as_str()).unwrap_or("");
    if !top.is_empty() && messages.iter().all(|m| m.message.is_empty()) {
        let code = error.get("code").and_then(|c| c.as_str()).unwrap_or("");
        messages = vec![RedfishMessage {
            message_id: code.to_string(),
            message: top.to_string(),
            ..RedfishMessage::default()
        }];
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_info_messages_with_fields() {
        let body = br##"{"error":{"code":"Base.1.0.GeneralError","message":"A general error has occurred. See ExtendedInfo for more information.",
            "@Message.ExtendedInfo":[{"MessageId":"Base.1.5.ActionParameterMissing","RelatedProperties":["#/ImageURI"],
            "Message":"The action requires the parameter ImageURI to be present in the request body.","Severity":"Critical"},
            {"MessageId":"Base.1.0.PropertyValueNotInList","RelatedProperties":["#/TransferProtocol"],"Message":"The value FTPS for the property TransferProtocol is not in the list of acceptable values"}]}}"##;
        let messages = error_messages(body);
        assert_eq!(messages.len(), 2);
        assert!(messages[0].is("ActionParameterMissing"));
        assert_eq!(
            join(&messages),
            "The action requires the parameter ImageURI to be present in the request body. (field ImageURI); The value FTPS for the property TransferProtocol is not in the list of acceptable values (field TransferProtocol)"
        );
    }

    #[test]
    fn top_message_when_extended_info_has_no_text() {
        // The shape sushy-tools renders for every error.
        let body = br#"{"error":{"code":"Base.1.0.GeneralError","message":"Fake system nope was not found","@Message.ExtendedInfo":[{"MessageId":"Base.1.0.GeneralError"}]}}"#;
        let messages = error_messages(body);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].message, "Fake system nope was not found");
    }

    #[test]
    fn plain_text_body() {
        let messages = error_messages(b"\n  Service Unavailable\n<html>");
        assert_eq!(messages[0].message, "Service Unavailable");
        assert!(error_messages(b"").is_empty());
    }

    #[test]
    fn classes() {
        let url = || "https://bmc".to_string();
        let cases: Vec<(RedfishError, ErrorClass)> = vec![
            (
                RedfishError::Unreachable {
                    url: url(),
                    reason: "refused".into(),
                },
                ErrorClass::Retry { after: None },
            ),
            (
                RedfishError::Busy {
                    url: url(),
                    status: 503,
                    retry_after: Some(Duration::from_secs(7)),
                    messages: vec![],
                },
                ErrorClass::Retry {
                    after: Some(Duration::from_secs(7)),
                },
            ),
            (
                RedfishError::Server {
                    url: url(),
                    status: 500,
                    messages: vec![],
                },
                ErrorClass::Retry { after: None },
            ),
            (
                RedfishError::Stale {
                    url: url(),
                    messages: vec![],
                },
                ErrorClass::Reread,
            ),
            (
                RedfishError::Rejected {
                    url: url(),
                    status: 400,
                    messages: vec![],
                },
                ErrorClass::Stop,
            ),
            (
                RedfishError::Auth {
                    url: url(),
                    messages: vec![],
                },
                ErrorClass::Stop,
            ),
            (
                RedfishError::Tls {
                    url: url(),
                    reason: "pin".into(),
                },
                ErrorClass::Stop,
            ),
        ];
        for (error, class) in cases {
            assert_eq!(error.class(), class, "{error}");
        }
    }
}
