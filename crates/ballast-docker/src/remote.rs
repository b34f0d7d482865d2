//! Docker engines reached through byte streams the caller opens, such as SSH channels to the
//! docker socket of a server: a hyper client whose connector asks the caller's opener for a new
//! stream per HTTP connection, with hyper's keep-alive pool reusing them across requests.
//!
//! This crate knows nothing of SSH; the engine crate wires an opener over `ballast-ssh`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bollard::{API_DEFAULT_VERSION, BollardRequest, Docker};
use futures::future::BoxFuture;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

/// A bidirectional byte stream to an engine's API socket.
pub trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncStream for T {}

/// Opens a new stream to the engine, once per HTTP connection. An error means the engine
/// cannot be reached now (it becomes `DockerError::Unreachable`), so put the cause in it.
pub type StreamOpener =
    Arc<dyn Fn() -> BoxFuture<'static, io::Result<Box<dyn AsyncStream>>> + Send + Sync>;

/// The authority bollard puts in request URIs; the connector ignores it.
const CLIENT_ADDRESS: &str = "http://docker.stream";

/// Seconds bollard waits for one request, as for the local engine.
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// An idle HTTP connection (and so its stream) is closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The body type of bollard's requests (bollard does not name it publicly).
trait RequestBody {
    type Body;
}
impl<B> RequestBody for hyper::Request<B> {
    type Body = B;
}
type Body = <BollardRequest as RequestBody>::Body;

/// A bollard client over streams from `opener`.
pub(crate) fn docker_over(opener: StreamOpener) -> Result<Docker, bollard::errors::Error> {
    let client: Client<Connector, Body> = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(IDLE_TIMEOUT)
        .build(Connector {
            opener: opener.clone(),
        });
    Docker::connect_with_custom_transport(
        move |request: BollardRequest| {
            let client = client.clone();
            let opener = opener.clone();
            async move {
                match client.request(request).await {
                    Ok(response) => Ok(response),
                    Err(err) if err.is_connect() => Err(transport_error(err)),
                    // A pooled connection died under the request (its SSH channel went with
                    // the server): hyper says only "SendRequest". Opening a stream now tells
                    // why the engine cannot be reached, which is what a user needs to read.
                    Err(err) => match opener().await {
                        Err(reason) => Err(bollard::errors::Error::IOError { err: reason }),
                        Ok(_probe) => Err(transport_error(err)),
                    },
                }
            }
        },
        Some(CLIENT_ADDRESS),
        REQUEST_TIMEOUT_SECS,
        API_DEFAULT_VERSION,
    )
}

/// hyper's error says only "client error (Connect)"; the opener's reason is in its sources.
/// Connection failures become an I/O error carrying the whole chain, which the engine reports
/// as unreachable with that text.
fn transport_error(err: hyper_util::client::legacy::Error) -> bollard::errors::Error {
    if !err.is_connect() {
        return bollard::errors::Error::HyperLegacyError { err };
    }
    let mut text = String::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&err);
    while let Some(cause) = source {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if text.is_empty() {
        text = err.to_string();
    }
    let kind = std::error::Error::source(&err)
        .and_then(|s| s.downcast_ref::<io::Error>())
        .map_or(io::ErrorKind::Other, io::Error::kind);
    bollard::errors::Error::IOError {
        err: io::Error::new(kind, text),
    }
}

/// The connector: every new HTTP connection is a new stream from the opener.
#[derive(Clone)]
struct Connector {
    opener: StreamOpener,
}

impl tower_service::Service<hyper::Uri> for Connector {
    type Response = Stream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Stream>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: hyper::Uri) -> Self::Future {
        let open = (self.opener)();
        Box::pin(async move { Ok(Stream(TokioIo::new(open.await?))) })
    }
}

/// One opened stream, as hyper wants it.
struct Stream(TokioIo<Box<dyn AsyncStream>>);

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Through a real engine's unix socket, with the opener counting the streams it opens.
    #[tokio::test]
    async fn requests_share_pooled_streams_and_opener_errors_carry_their_reason() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let engine = ballast_test_support::docker::engine();
        let socket = engine.socket().to_path_buf();
        let opened = Arc::new(AtomicUsize::new(0));
        let counter = opened.clone();
        let opener: StreamOpener = Arc::new(move || {
            let socket = socket.clone();
            counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                let s = tokio::net::UnixStream::connect(socket).await?;
                Ok(Box::new(s) as Box<dyn AsyncStream>)
            })
        });
        let docker = docker_over(opener).unwrap();
        for _ in 0..5 {
            docker.ping().await.unwrap();
        }
        docker.version().await.unwrap();
        assert_eq!(opened.load(Ordering::SeqCst), 1);

        let failing: StreamOpener = Arc::new(|| {
            Box::pin(async {
                Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    "server `nas01`: cannot connect to root@10.0.0.5:22: connection refused",
                ))
            })
        });
        let err = docker_over(failing).unwrap().ping().await.unwrap_err();
        assert!(crate::error::is_unreachable(&err), "{err:?}");
        assert!(err.to_string().contains("server `nas01`"), "{err}");
    }
}
