//! Serving the API over HTTP/1.1 (hyper): on threads of its own with a lowered priority
//! (`api.nice`), so that however hard clients hammer the API the decoders and detectors are
//! served first; connections from the bounded listener, a deadline for each request's headers,
//! and a graceful shutdown.
//!
//! The listener closes a connection without traffic, but a client that sends its headers a
//! byte every few seconds is never silent: the header deadline cuts it off however steadily
//! the bytes trickle in. The same deadline ends a kept-alive connection that waits that long
//! for its next request.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::serve::Listener;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::listen::BoundedListener;

/// How long requests in flight may go on after shutdown was asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Threads serving requests (JPEG renderings run on the same runtime's blocking threads, at
/// the same priority).
const API_THREADS: usize = 2;

/// How the API is served.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ServeSettings {
    /// Most client connections at once.
    pub max_connections: usize,
    /// A connection without traffic this long is closed.
    pub idle: Duration,
    /// A request's headers must arrive within this.
    pub header_read: Duration,
    /// Nice value of the API's threads (0: as the rest of the service).
    pub nice: i32,
}

/// The API, served on threads of its own.
pub struct ApiServer {
    runtime: Option<tokio::runtime::Runtime>,
    task: tokio::task::JoinHandle<()>,
    stop: CancellationToken,
}

impl ApiServer {
    /// Starts serving `app` on `listener` on a runtime of [`API_THREADS`] threads at nice
    /// `settings.nice`.
    pub fn start(
        listener: TcpListener,
        app: Router,
        settings: ServeSettings,
    ) -> std::io::Result<ApiServer> {
        let nice = settings.nice;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(API_THREADS)
            .thread_name("dw-api")
            .enable_all()
            .on_thread_start(move || crate::priority::lower_this_thread(nice))
            .build()?;
        // The listener moves to the API's runtime.
        let listener = {
            let _inside = runtime.enter();
            TcpListener::from_std(listener.into_std()?)?
        };
        let listener = BoundedListener::new(listener, settings.max_connections, settings.idle);
        let stop = CancellationToken::new();
        let task = runtime.spawn(serve(
            listener,
            app,
            settings.header_read,
            stop.clone().cancelled_owned(),
        ));
        Ok(ApiServer {
            runtime: Some(runtime),
            task,
            stop,
        })
    }

    /// Stops taking connections, lets the requests in flight finish (at most
    /// [`SHUTDOWN_GRACE`]), and stops the API's threads.
    pub async fn stop(mut self) -> Result<(), tokio::task::JoinError> {
        self.stop.cancel();
        let served = (&mut self.task).await;
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        served
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes; each request's headers must arrive
/// within `header_read`. At shutdown, no new connection is taken, idle ones close, and requests
/// in flight get [`SHUTDOWN_GRACE`] to finish.
pub async fn serve(
    mut listener: BoundedListener,
    app: Router,
    header_read: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, addr) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(io), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // A client that went away, was too slow with its headers, or sent garbage.
                tracing::debug!(client = %addr, error = %e, "API connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "API: requests still in flight {} s after shutdown began were cut off",
            SHUTDOWN_GRACE.as_secs()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    async fn started(
        header_read: Duration,
    ) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        // The idle limit is well above the byte interval below: only the header deadline acts.
        let listener = BoundedListener::new(tcp, 8, Duration::from_secs(30));
        let app = Router::new().route("/", axum::routing::get(|| async { "hello" }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, app, header_read, async move {
            let _ = stopped.await;
        }));
        (addr, stop)
    }

    #[tokio::test]
    async fn a_request_is_answered_and_headers_trickled_in_too_slowly_are_cut_off() {
        let (addr, _stop) = started(Duration::from_millis(600)).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = vec![0u8; 256];
        let n = client.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("hello"),
            "{answer}"
        );

        // A byte every 150 ms (never silent for long) of a request that never ends.
        let mut slow = TcpStream::connect(addr).await.unwrap();
        let started = std::time::Instant::now();
        let request = b"GET / HTTP/1.1\r\nhost: x\r\nx-padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let mut cut_off = false;
        for byte in request.iter().cycle().take(200) {
            if slow.write_all(&[*byte]).await.is_err() {
                cut_off = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
            let mut buf = [0u8; 256];
            match tokio::time::timeout(Duration::from_millis(1), slow.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    cut_off = true;
                    break;
                }
                Ok(Ok(n)) => {
                    // hyper answers 408 before closing.
                    assert!(String::from_utf8_lossy(&buf[..n]).contains("408"));
                    cut_off = true;
                    break;
                }
                Err(_) => {}
            }
        }
        let took = started.elapsed();
        assert!(cut_off, "a trickling client was served for {took:?}");
        assert!(took < Duration::from_secs(5), "cut off only after {took:?}");
    }

    #[tokio::test]
    async fn the_api_threads_run_at_the_lowered_priority_and_stop_cleanly() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let app = Router::new().route(
            "/nice",
            axum::routing::get(|| async { crate::priority::this_thread_nice().to_string() }),
        );
        let nice = crate::priority::this_thread_nice().max(5);
        let settings = ServeSettings {
            max_connections: 4,
            idle: Duration::from_secs(5),
            header_read: Duration::from_secs(5),
            nice,
        };
        let server = ApiServer::start(tcp, app, settings).unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /nice HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.ends_with(&format!("\r\n\r\n{nice}")), "{answer}");
        server.stop().await.unwrap();
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "still accepting after stop"
        );
    }

    #[tokio::test]
    async fn shutdown_lets_the_request_in_flight_finish() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let listener = BoundedListener::new(tcp, 8, Duration::from_secs(30));
        let app = Router::new().route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                "done"
            }),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, app, Duration::from_secs(5), async move {
            let _ = stopped.await;
        }));
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("done"),
            "{answer}"
        );
        tokio::time::timeout(Duration::from_secs(2), server)
            .await
            .expect("the server stops once the request is answered")
            .unwrap();
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "still accepting after shutdown"
        );
    }
}
