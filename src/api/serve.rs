//! Serving the API over HTTP/1.1 (hyper): connections from the bounded listener, a deadline
//! for each request's headers, and a graceful shutdown.
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

use super::listen::BoundedListener;

/// How long requests in flight may go on after shutdown was asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

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
