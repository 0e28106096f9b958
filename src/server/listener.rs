//! The accept loop and the connection limits of the HTTP server: who gets
//! a connection served, and for how long. What is served is the router's
//! business (the parent module).
//!
//! The order matters. A connection's request line is read *before* it
//! counts against a limit, because that is the only way to tell a probe
//! from anything else: a limit counted at accept time lets 64 kept-alive
//! connections park every probe in the kernel's backlog (measured: 29.7 s
//! for `/healthz` against the kubelet's 5 s timeout). The reading itself is
//! bounded by [`HEADER_TIMEOUT`] and by [`MAX_OPEN`].

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{
    Board, CONNECTION_TIMEOUT, HEADER_TIMEOUT, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_CLIENT,
    MAX_OPEN, PROBE_CONNECTIONS, PROBE_CONNECTIONS_PER_CLIENT, REQUEST_LINE_LIMIT, router,
};

/// The answer to a connection no slot is free for. Written by hand: the
/// connection is refused before hyper sees it.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
x-content-type-options: nosniff\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 21\r\n\r\n\
too many connections\n";

/// Which pool a connection is served from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Class {
    /// Its first request is `GET /healthz` or `GET /readyz`.
    Probe,
    Other,
}

/// The connection slots: one pool per class, and a count per client
/// address and class. A std `Mutex` is right here: it is held for a map
/// lookup, never across an `.await`.
struct Limits {
    probes: Arc<Semaphore>,
    others: Arc<Semaphore>,
    per_client: Mutex<HashMap<(IpAddr, Class), usize>>,
}

/// A connection's place in its pool and in its client's count; both are
/// given back when it drops.
struct Slot {
    _permit: OwnedSemaphorePermit,
    limits: Arc<Limits>,
    key: (IpAddr, Class),
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .limits
            .per_client
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

impl Limits {
    fn new() -> Limits {
        Limits {
            probes: Arc::new(Semaphore::new(PROBE_CONNECTIONS)),
            others: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            per_client: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for a connection of `class` from `ip`, or `None` when its
    /// pool or its client's share is full.
    fn admit(self: &Arc<Self>, class: Class, ip: IpAddr) -> Option<Slot> {
        let (pool, share) = match class {
            Class::Probe => (&self.probes, PROBE_CONNECTIONS_PER_CLIENT),
            Class::Other => (&self.others, MAX_CONNECTIONS_PER_CLIENT),
        };
        let mut counts = self.per_client.lock().unwrap_or_else(|e| e.into_inner());
        let held = counts.entry((ip, class)).or_default();
        if *held >= share {
            return None;
        }
        let permit = Arc::clone(pool).try_acquire_owned().ok()?;
        *held += 1;
        Some(Slot {
            _permit: permit,
            limits: Arc::clone(self),
            key: (ip, class),
        })
    }
}

/// Serves until `shutdown`.
pub async fn serve(listener: TcpListener, board: Arc<Board>, shutdown: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "serving /metrics, /healthz, /readyz, /status");
    }
    let app = router(board);
    let open = Arc::new(Semaphore::new(MAX_OPEN));
    let limits = Arc::new(Limits::new());
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            permit = Arc::clone(&open).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (app, limits) = (app.clone(), Arc::clone(&limits));
        tokio::spawn(async move {
            let _open = permit;
            connection(stream, peer, app, limits).await;
        });
    }
}

/// One connection: classify it by its first request line, take a slot or
/// refuse it, then hand it to hyper.
async fn connection(mut stream: TcpStream, peer: SocketAddr, app: Router, limits: Arc<Limits>) {
    let mut head = Vec::with_capacity(256);
    match tokio::time::timeout(HEADER_TIMEOUT, read_request_line(&mut stream, &mut head)).await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => return,
        Ok(Err(e)) => return debug!(%peer, error = %e, "connection ended before a request"),
        Err(_) => return debug!(%peer, "no request line in time"),
    }
    let class = if is_probe(&head) {
        Class::Probe
    } else {
        Class::Other
    };
    let Some(slot) = limits.admit(class, peer.ip()) else {
        debug!(%peer, ?class, "no free connection slot; answering 503");
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(REFUSED)).await;
        let _ = stream.shutdown().await;
        return;
    };
    let service = hyper_util::service::TowerToHyperService::new(app);
    let io = hyper_util::rt::TokioIo::new(Replay {
        head,
        at: 0,
        stream,
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        // One request per probe connection: a probe slot is never kept by
        // a client that goes on to ask for something else.
        .keep_alive(class == Class::Other)
        .serve_connection(io, service);
    match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => debug!(%peer, error = %e, "connection ended"),
        Err(_) => debug!(%peer, "connection timed out"),
    }
    drop(slot);
}

/// Reads from `stream` into `head` until the first line is complete (or
/// [`REQUEST_LINE_LIMIT`] bytes are in). `false`: the client closed first.
async fn read_request_line(stream: &mut TcpStream, head: &mut Vec<u8>) -> io::Result<bool> {
    let mut buf = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < REQUEST_LINE_LIMIT {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(false);
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(true)
}

/// Whether a request line asks for a probe: `GET /healthz` or
/// `GET /readyz` (a query string allowed), as the kubelet sends it.
fn is_probe(head: &[u8]) -> bool {
    let Some(end) = head.iter().position(|&b| b == b'\n') else {
        return false;
    };
    let line = String::from_utf8_lossy(&head[..end]);
    let mut parts = line.split_ascii_whitespace();
    let (Some("GET"), Some(target)) = (parts.next(), parts.next()) else {
        return false;
    };
    let path = target.split('?').next().unwrap_or_default();
    matches!(path, "/healthz" | "/readyz")
}

/// The stream, with the bytes already read from it put back in front, so
/// hyper reads the request from its first byte.
struct Replay {
    head: Vec<u8>,
    at: usize,
    stream: TcpStream,
}

impl AsyncRead for Replay {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.head.len() {
            let n = buf.remaining().min(this.head.len() - this.at);
            buf.put_slice(&this.head[this.at..this.at + n]);
            this.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_told_by_their_request_line() {
        for (line, probe) in [
            ("GET /healthz HTTP/1.1\r\n", true),
            ("GET /readyz HTTP/1.1\r\n", true),
            ("GET /readyz?verbose HTTP/1.1\r\n", true),
            ("GET /healthzz HTTP/1.1\r\n", false),
            ("POST /healthz HTTP/1.1\r\n", false),
            ("GET /status HTTP/1.1\r\n", false),
            ("GET /healthz", false),
            ("", false),
        ] {
            assert_eq!(is_probe(line.as_bytes()), probe, "{line:?}");
        }
    }

    #[test]
    fn one_client_gets_its_share_and_the_probes_keep_theirs() {
        let limits = Arc::new(Limits::new());
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let held: Vec<Slot> = (0..MAX_CONNECTIONS_PER_CLIENT)
            .map(|_| limits.admit(Class::Other, a).expect("within the share"))
            .collect();
        assert!(limits.admit(Class::Other, a).is_none(), "over the share");
        assert!(limits.admit(Class::Other, b).is_some(), "another client");
        assert!(limits.admit(Class::Probe, a).is_some(), "a probe");
        drop(held);
        assert!(limits.admit(Class::Other, a).is_some(), "slots come back");
    }
}
