//! Errors of the Docker side, each keeping which app and which step it came from.

use std::fmt;

use ballast_plan::AppStep;

/// The step an error happened in, named for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    Observe,
    EnsureImage,
    EnsureNetworks,
    CreateContainer,
    StartContainer,
    StopContainer,
    RemoveContainer,
}

impl StepKind {
    pub fn of(step: &AppStep) -> StepKind {
        match step {
            AppStep::EnsureImage => StepKind::EnsureImage,
            AppStep::EnsureNetworks => StepKind::EnsureNetworks,
            AppStep::CreateContainer => StepKind::CreateContainer,
            AppStep::StartContainer => StepKind::StartContainer,
            AppStep::StopContainer => StepKind::StopContainer,
            AppStep::RemoveContainer { .. } => StepKind::RemoveContainer,
        }
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StepKind::Observe => "observe containers",
            StepKind::EnsureImage => "ensure image",
            StepKind::EnsureNetworks => "ensure networks",
            StepKind::CreateContainer => "create container",
            StepKind::StartContainer => "start container",
            StepKind::StopContainer => "stop container",
            StepKind::RemoveContainer => "remove container",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The client could not be set up (bad `DOCKER_HOST`, unsupported scheme).
    #[error("cannot use the Docker engine at `{host}`: {reason}")]
    Connect { host: String, reason: String },

    /// The engine did not answer (socket missing, connection refused, timeout). Transient.
    #[error(
        "{}the Docker engine at `{host}` is unreachable ({step}): {reason}",
        app_prefix(app)
    )]
    Unreachable {
        host: String,
        app: Option<String>,
        step: StepKind,
        reason: String,
    },

    /// `pullPolicy: Never` and the image is not on the engine.
    #[error("image `{image}` is not on the engine and pullPolicy is Never (app `{app}`)")]
    ImageMissing { app: String, image: String },

    /// The engine could not pull the image (registry unreachable, unknown image, denied).
    #[error("cannot pull image `{image}`: {reason} (app `{app}`)")]
    PullFailed {
        app: String,
        image: String,
        reason: String,
    },

    /// A container with the app's name exists and is not one this store may adopt.
    #[error("{}", name_conflict_message(app, spec_hash.as_deref()))]
    NameConflict {
        app: String,
        /// `Some(hash)` when the container is this store's but from another spec.
        spec_hash: Option<String>,
    },

    /// A host port the app publishes is taken by another process or container.
    #[error("cannot start `{app}`: host port {} is already in use", port.map(|p| p.to_string()).unwrap_or_else(|| "(unknown)".into()))]
    PortInUse {
        app: String,
        port: Option<u16>,
        reason: String,
    },

    /// Refused to touch a container that does not carry this store's labels.
    #[error(
        "refusing to remove container `{container}` for app `{app}`: it does not carry this ballast store's labels (ballast.managed=true, ballast.instance={instance})"
    )]
    NotOurs {
        app: String,
        container: String,
        instance: String,
    },

    /// The spec has a value the engine cannot take (validation normally catches these first).
    #[error("app `{app}`: {message}")]
    InvalidSpec { app: String, message: String },

    /// The container the step needs does not exist.
    #[error("app `{app}`, {step}: container `{container}` does not exist")]
    NoSuchContainer {
        app: String,
        step: StepKind,
        container: String,
    },

    /// Several networks carry a name the app uses, and ballast cannot tell which is meant:
    /// some were not made by ballast, or a duplicate it made cannot be removed (in use).
    #[error(
        "app `{app}`: network `{network}` is ambiguous: {} networks have that name ({}); {hint}",
        ids.len(),
        ids.join(", ")
    )]
    AmbiguousNetwork {
        app: String,
        network: String,
        /// Short ids, oldest first.
        ids: Vec<String>,
        /// What to do about it.
        hint: String,
    },

    /// Any other answer of the engine.
    #[error("{}{step}: the engine answered{}: {message}", app_prefix(app), status.map(|s| format!(" {s}")).unwrap_or_default())]
    Engine {
        app: Option<String>,
        step: StepKind,
        status: Option<u16>,
        message: String,
    },
}

fn app_prefix(app: &Option<String>) -> String {
    app.as_ref()
        .map(|a| format!("app `{a}`, "))
        .unwrap_or_default()
}

fn name_conflict_message(app: &str, spec_hash: Option<&str>) -> String {
    match spec_hash {
        None => format!(
            "a container named `{app}` already exists and was not created by this ballast store; remove or rename it"
        ),
        Some(hash) => format!(
            "a container named `{app}` from this ballast store already exists with another spec (hash {hash}); it must be removed before the new one is created"
        ),
    }
}

impl DockerError {
    /// True when retrying later may succeed without anyone changing anything: the engine was
    /// unreachable, or answered with a server-side failure, or the registry could not be reached.
    /// Whether the same spec will fail the same way however often it is retried: a bad or
    /// unknown image reference, an image missing with `pullPolicy: Never`, a spec Docker refuses.
    pub fn is_terminal(&self) -> bool {
        match self {
            DockerError::ImageMissing { .. } | DockerError::InvalidSpec { .. } => true,
            DockerError::PullFailed { .. } => !self.is_transient(),
            _ => false,
        }
    }

    pub fn is_transient(&self) -> bool {
        match self {
            DockerError::Unreachable { .. } => true,
            DockerError::PullFailed { reason, .. } => {
                let r = reason.to_ascii_lowercase();
                ![
                    "not found",
                    "manifest unknown",
                    "denied",
                    "unauthorized",
                    "invalid reference",
                ]
                .iter()
                .any(|s| r.contains(s))
            }
            DockerError::Engine {
                status: Some(s), ..
            } => *s >= 500,
            _ => false,
        }
    }

    /// True when the engine could not be reached at all.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, DockerError::Unreachable { .. })
    }
}

/// The engine's status code, when the error is an answer of the engine.
pub(crate) fn status_of(err: &bollard::errors::Error) -> Option<u16> {
    match err {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The engine's message (one line) for an error.
pub(crate) fn message_of(err: &bollard::errors::Error) -> String {
    let raw = match err {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        bollard::errors::Error::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    };
    one_line(&raw)
}

pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether the error means the engine was not reached (as opposed to an answer from it).
pub(crate) fn is_unreachable(err: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    matches!(
        err,
        E::IOError { .. }
            | E::HyperResponseError { .. }
            | E::HyperLegacyError { .. }
            | E::RequestTimeoutError
            | E::SocketNotFoundError(_)
    )
}
