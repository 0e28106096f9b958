//! A fault-injecting proxy for tests/faults.rs. One [`Proxy`] stands
//! between tagwatch and one peer (moto as ECR, `git daemon`, a forge fake),
//! bound to `127.0.0.1:0`, and forwards to the peer's address unless a
//! [`Rule`] says otherwise. Rules are per proxy, so per peer; each applies
//! to the requests its predicate picks, with a probability (a share of the
//! requests), a count, and a time window, in any combination.
//!
//! Two modes:
//! - **HTTP** ([`Proxy::http`]): reads each HTTP/1.1 request whole (the
//!   client's connection is kept alive across requests), and either
//!   forwards it on a fresh upstream connection (`Connection: close`) or
//!   answers it itself. The answer reaches the client with a
//!   `Content-Length` (a chunked upstream body is decoded first), so a
//!   truncation cuts an exact number of bytes.
//! - **TCP** ([`Proxy::tcp`]), for `git://`: a byte pump. The client's first
//!   packet (for git, the `git-upload-pack`/`git-receive-pack` request
//!   pkt-line) is the "opening" that rules match on; faults cut the stream
//!   at a point relative to it.
//!
//! Every request (HTTP) or connection (TCP) is logged as an [`Exchange`]
//! with its arrival `Instant`, the fault applied, and how it ended, so a
//! test can compute request rates and retry gaps.
//!
//! What the AWS SDK needs to see a throttle (read in aws-sdk-ecr 1.138's
//! `json_errors.rs` and aws-runtime 1.10's `retries/classifiers.rs`): any
//! non-2xx status sends the body to the awsJson 1.1 error parser, which
//! takes the code from the `x-amzn-errortype` header, else from the body's
//! `code` or `__type`, dropping a `:…` suffix and a `…#` namespace prefix.
//! A code in `THROTTLING_ERRORS` (`ThrottlingException` among them) is a
//! throttling error: retried by the standard strategy with exponential
//! backoff from 1 s, full jitter, at most 3 attempts. 500/502/503/504,
//! resets and cut bodies are retried as transient errors whatever the body
//! (from 50 ms under retry behaviour 2.1, aws-smithy-types 1.9).
//!
//! Runs its own tokio runtime on a background thread, like the forge
//! fakes; dropping the proxy stops it and closes every connection,
//! stalled ones included.
#![allow(dead_code)]

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// The longest a forwarded request waits for the peer's whole answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(120);
/// Larger request or response heads are refused (nothing here sends one).
const MAX_HEAD: usize = 64 << 10;

/// What the proxy knows of a request when it decides on a fault.
#[derive(Clone, Debug)]
pub struct Request {
    /// The HTTP method, or `TCP` for a raw connection.
    pub method: String,
    /// The request target (`/repos/acme/gitops/pulls`); for a raw
    /// connection, its opening bytes as text (`git-receive-pack /remote.git`).
    pub target: String,
    /// Headers as sent; none for a raw connection.
    pub headers: Vec<(String, String)>,
    /// The body (decoded if it came chunked); for a raw connection, the
    /// opening bytes.
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The AWS JSON operation: `DescribeImages` from
    /// `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.DescribeImages`.
    pub fn aws_operation(&self) -> Option<&str> {
        self.header("x-amz-target")?.rsplit('.').next()
    }

    /// `repositoryName` of an ECR request body.
    pub fn ecr_repository(&self) -> Option<String> {
        self.json()?
            .get("repositoryName")?
            .as_str()
            .map(str::to_string)
    }

    /// For a raw git connection: whether it is a push (`git-receive-pack`).
    pub fn is_git_push(&self) -> bool {
        self.method == "TCP" && self.target.starts_with("git-receive-pack")
    }
}

/// How a cut raw stream ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Nothing more is forwarded, and the connection is held open (both
    /// sides, so neither peer sees an end) until the client gives up.
    Stall,
    /// The client's connection is reset (RST) and the peer's closed.
    Reset,
}

/// How much of an answer a truncation keeps.
#[derive(Clone, Copy, Debug)]
pub enum Keep {
    /// This many bytes of the whole answer, status line included.
    Bytes(usize),
    /// The status line, the headers (with the full `Content-Length`) and
    /// half of the body.
    HalfBody,
}

/// What a rule does to a request it applies to.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Both modes: wait, then forward as usual (HTTP: before forwarding the
    /// request; TCP: before connecting to the peer).
    Latency(Duration),
    /// Both modes: forward nothing, answer nothing, and hold the connection
    /// until the client gives up (a stall longer than its timeout).
    Stall,
    /// Both modes: reset the client's connection without forwarding
    /// anything (HTTP: once the request has been read).
    Reset,
    /// HTTP: answer this, without forwarding the request.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// HTTP: forward the request, then send only part of the answer and
    /// close the connection.
    Truncate(Keep),
    /// HTTP: forward the request (the peer acts on it), then reset the
    /// client's connection instead of answering: a lost response.
    LoseResponse,
    /// TCP: forward the opening and `after` more bytes of the client's
    /// stream, then cut; the peer never sees the rest (a push stalled or
    /// broken mid-pack).
    CutUpload { after: usize, then: Cut },
    /// TCP: once the client has sent anything after its opening, forward
    /// nothing more of the peer's answer, then cut: the peer did the work,
    /// the client never hears of it (a push whose report is lost).
    CutReply { then: Cut },
}

impl Fault {
    /// `status` with a small JSON body naming the injection (but not the
    /// status: what a client reports of it must come from the status line).
    pub fn status(status: u16) -> Fault {
        Fault::Respond {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: r#"{"message":"injected by the fault proxy"}"#.into(),
        }
    }

    /// ECR's throttling answer as the service sends it: 400, the code in
    /// `x-amzn-ErrorType` (with the Coral suffix the SDK strips) and in
    /// the body's `__type`.
    pub fn ecr_throttling() -> Fault {
        Fault::Respond {
            status: 400,
            headers: vec![
                ("Content-Type".into(), "application/x-amz-json-1.1".into()),
                (
                    "x-amzn-ErrorType".into(),
                    "ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.availability/"
                        .into(),
                ),
                (
                    "x-amzn-RequestId".into(),
                    "00000000-0000-0000-0000-fa017fa017fa".into(),
                ),
            ],
            body: r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.into(),
        }
    }

    /// A 429 with `Retry-After: secs`, as GitHub's secondary rate limit
    /// and GitLab send it.
    pub fn too_many_requests(retry_after_secs: u64) -> Fault {
        Fault::Respond {
            status: 429,
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("Retry-After".into(), retry_after_secs.to_string()),
            ],
            body: r#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}"#.into(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Fault::Latency(d) => format!("latency {d:?}"),
            Fault::Stall => "stall".into(),
            Fault::Reset => "reset".into(),
            Fault::Respond { status, .. } => format!("answer {status}"),
            Fault::Truncate(keep) => format!("truncate ({keep:?})"),
            Fault::LoseResponse => "lose the response".into(),
            Fault::CutUpload { after, then } => format!("cut upload after {after} B ({then:?})"),
            Fault::CutReply { then } => format!("cut reply ({then:?})"),
        }
    }

    fn fits(&self, mode: Mode) -> bool {
        match self {
            Fault::Latency(_) | Fault::Stall | Fault::Reset => true,
            Fault::Respond { .. } | Fault::Truncate(_) | Fault::LoseResponse => mode == Mode::Http,
            Fault::CutUpload { .. } | Fault::CutReply { .. } => mode == Mode::Tcp,
        }
    }
}

type Predicate = Arc<dyn Fn(&Request) -> bool + Send + Sync>;

/// A fault and the requests it applies to. Rules are tried in the order
/// they were added; the first that applies decides.
#[derive(Clone)]
pub struct Rule {
    label: String,
    fault: Fault,
    when: Option<Predicate>,
    /// The share of the requests it picks that the rule applies to; the
    /// others pass it by (and may meet a later rule).
    probability: f64,
    /// How many more times it may apply; `None` is unbounded.
    remaining: Option<usize>,
    /// `[from, until)`; `None` is always.
    window: Option<(Instant, Instant)>,
}

impl Rule {
    /// `fault` for every request, always.
    pub fn new(fault: Fault) -> Rule {
        Rule {
            label: fault.describe(),
            fault,
            when: None,
            probability: 1.0,
            remaining: None,
            window: None,
        }
    }

    /// Only requests for which `f` holds.
    pub fn when(mut self, f: impl Fn(&Request) -> bool + Send + Sync + 'static) -> Rule {
        self.when = Some(Arc::new(f));
        self
    }

    /// Each request it picks, with probability `p` (per-request rate).
    pub fn probability(mut self, p: f64) -> Rule {
        assert!((0.0..=1.0).contains(&p), "a probability: {p}");
        self.probability = p;
        self
    }

    /// At most `n` times.
    pub fn times(mut self, n: usize) -> Rule {
        self.remaining = Some(n);
        self
    }

    /// Only for requests arriving in `[from, from + length)`.
    pub fn during(mut self, from: Instant, length: Duration) -> Rule {
        self.window = Some((from, from + length));
        self
    }

    /// The name the request log gives the fault (default: its description).
    pub fn label(mut self, label: &str) -> Rule {
        self.label = label.to_string();
        self
    }
}

/// One request (HTTP) or connection (TCP) as the proxy handled it.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// The client connection it came on, numbered from 1.
    pub conn: u64,
    /// When the request had been read whole (TCP: when the opening came).
    pub at: Instant,
    pub request: Request,
    /// The label of the rule that applied, if any.
    pub fault: Option<String>,
    /// The status the client was sent (in full or in part); `None` if it
    /// got no status line.
    pub status: Option<u16>,
    /// When the proxy was done with it (`None`: still under way).
    pub ended: Option<Instant>,
    /// How it ended, in words: `forwarded`, `answered`, `reset`, …
    pub outcome: String,
    /// TCP: bytes the client sent after its opening, and how many of them
    /// reached the peer.
    pub client_bytes: u64,
    pub client_forwarded: u64,
    /// TCP: bytes the peer sent, and how many reached the client.
    pub peer_bytes: u64,
    pub peer_forwarded: u64,
}

impl Exchange {
    pub fn injected(&self) -> bool {
        self.fault.is_some()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Http,
    Tcp,
}

struct State {
    rules: Vec<Rule>,
    log: Vec<Exchange>,
    /// xorshift64 state for the probabilities.
    rng: u64,
}

impl State {
    /// The fault for `request`, if a rule applies; consumes a count.
    fn decide(&mut self, request: &Request) -> Option<(String, Fault)> {
        let now = Instant::now();
        for i in 0..self.rules.len() {
            let rule = &self.rules[i];
            if rule.remaining == Some(0)
                || rule.window.is_some_and(|(a, b)| now < a || now >= b)
                || rule.when.as_ref().is_some_and(|f| !f(request))
            {
                continue;
            }
            let p = rule.probability;
            if p < 1.0 && self.next_f64() >= p {
                continue;
            }
            let rule = &mut self.rules[i];
            if let Some(n) = &mut rule.remaining {
                *n -= 1;
            }
            return Some((rule.label.clone(), rule.fault.clone()));
        }
        None
    }

    fn next_f64(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    // A panicking connection task must not hide the log from the test.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The proxy; stops (closing every connection) when dropped.
pub struct Proxy {
    state: Shared,
    addr: SocketAddr,
    /// The PRNG seed of the probabilities (`TAGWATCH_TEST_SEED` replays it).
    pub seed: u64,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    mode: Mode,
}

impl Proxy {
    /// An HTTP proxy in front of `upstream` (`http://host:port` or
    /// `host:port`).
    pub fn http(upstream: &str) -> Proxy {
        Proxy::start(upstream, Mode::Http)
    }

    /// A raw TCP proxy in front of `upstream` (`host:port`).
    pub fn tcp(upstream: &str) -> Proxy {
        Proxy::start(upstream, Mode::Tcp)
    }

    fn start(upstream: &str, mode: Mode) -> Proxy {
        let authority = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let upstream = authority
            .to_socket_addrs()
            .unwrap_or_else(|e| panic!("resolve {authority}: {e}"))
            .next()
            .expect("an upstream address");
        let seed = match std::env::var("TAGWATCH_TEST_SEED") {
            Ok(s) => s.parse().expect("TAGWATCH_TEST_SEED is a u64"),
            Err(_) => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64,
        };
        let state = Arc::new(Mutex::new(State {
            rules: Vec::new(),
            log: Vec::new(),
            rng: splitmix(seed),
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().unwrap();
        eprintln!("fault proxy ({mode:?}) {addr} -> {upstream}, PRNG seed {seed}");
        let (tx, rx) = oneshot::channel::<()>();
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fault-proxy-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("tokio runtime for the fault proxy");
                rt.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    let accept = async {
                        let mut conn = 0;
                        loop {
                            let Ok((client, _)) = listener.accept().await else {
                                continue;
                            };
                            conn += 1;
                            let state = shared.clone();
                            tokio::spawn(async move {
                                match mode {
                                    Mode::Http => serve_http(client, conn, upstream, state).await,
                                    Mode::Tcp => serve_tcp(client, conn, upstream, state).await,
                                }
                            });
                        }
                    };
                    tokio::select! {
                        _ = accept => {}
                        _ = rx => {}
                    }
                });
                // Held connections are dropped, not waited for.
                rt.shutdown_timeout(Duration::from_millis(500));
            })
            .expect("spawn the fault proxy");
        Proxy {
            state,
            addr,
            seed,
            shutdown: Some(tx),
            thread: Some(thread),
            mode,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Adds a rule after the existing ones.
    pub fn add(&self, rule: Rule) {
        assert!(
            rule.fault.fits(self.mode),
            "{:?} is not a fault a {:?} proxy can inject",
            rule.fault,
            self.mode
        );
        lock(&self.state).rules.push(rule);
    }

    /// Removes every rule: from now on everything is forwarded.
    pub fn clear(&self) {
        lock(&self.state).rules.clear();
    }

    /// The request log so far, in arrival order.
    pub fn log(&self) -> Vec<Exchange> {
        lock(&self.state).log.clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    (z ^ (z >> 31)).max(1)
}

/// Logs a new exchange and decides its fault; returns its index.
fn admit(state: &Shared, conn: u64, request: Request) -> (usize, Option<(String, Fault)>) {
    let mut s = lock(state);
    let decided = s.decide(&request);
    s.log.push(Exchange {
        conn,
        at: Instant::now(),
        request,
        fault: decided.as_ref().map(|(label, _)| label.clone()),
        status: None,
        ended: None,
        outcome: "under way".into(),
        client_bytes: 0,
        client_forwarded: 0,
        peer_bytes: 0,
        peer_forwarded: 0,
    });
    (s.log.len() - 1, decided)
}

fn finish(state: &Shared, index: usize, status: Option<u16>, outcome: impl Into<String>) {
    let mut s = lock(state);
    let e = &mut s.log[index];
    e.status = status;
    e.outcome = outcome.into();
    e.ended = Some(Instant::now());
}

/// RST instead of FIN: SO_LINGER 0, then close.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Reads and drops whatever the client sends until it closes the
/// connection: a held connection, from the client's point of view.
async fn hold(stream: &mut TcpStream) {
    let mut sink = [0u8; 8192];
    while let Ok(n) = stream.read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/// Bytes read from a stream and not yet consumed.
#[derive(Default)]
struct Buffered {
    buf: Vec<u8>,
}

impl Buffered {
    async fn fill(&mut self, stream: &mut TcpStream) -> std::io::Result<usize> {
        let mut chunk = [0u8; 16384];
        let n = stream.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let rest = self.buf.split_off(n);
        std::mem::replace(&mut self.buf, rest)
    }

    /// A head up to and including its blank line; `None` at a clean end
    /// of the stream before any byte of it.
    async fn head(&mut self, stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                return Ok(Some(self.take(end + 4)));
            }
            if self.buf.len() > MAX_HEAD {
                return Err(std::io::Error::other("head too large"));
            }
            if self.fill(stream).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(std::io::ErrorKind::UnexpectedEof.into())
                };
            }
        }
    }

    async fn exact(&mut self, stream: &mut TcpStream, n: usize) -> std::io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill(stream).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.take(n))
    }

    async fn line(&mut self, stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let mut line = self.take(end + 2);
                line.truncate(end);
                return Ok(line);
            }
            if self.fill(stream).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// A chunked body, decoded; trailers are read and dropped.
    async fn chunked(&mut self, stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.line(stream).await?;
            let size = String::from_utf8_lossy(&line);
            let size = size.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {size:?}")))?;
            if size == 0 {
                while !self.line(stream).await?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.exact(stream, size).await?);
            self.exact(stream, 2).await?;
        }
    }

    /// The body a head announces: chunked, `Content-Length`, or (for an
    /// answer only) everything up to the end of the stream.
    async fn body(
        &mut self,
        stream: &mut TcpStream,
        headers: &[(String, String)],
        to_eof: bool,
    ) -> std::io::Result<Vec<u8>> {
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_ascii_lowercase())
        };
        if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            return self.chunked(stream).await;
        }
        if let Some(n) = get("content-length") {
            let n = n
                .parse()
                .map_err(|_| std::io::Error::other("bad Content-Length"))?;
            return self.exact(stream, n).await;
        }
        if to_eof {
            while self.fill(stream).await? > 0 {}
            return Ok(std::mem::take(&mut self.buf));
        }
        Ok(Vec::new())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A head's start line, split in (up to) three, and its headers.
type Head = (Vec<String>, Vec<(String, String)>);

fn parse_head(head: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let start: Vec<String> = lines.next()?.splitn(3, ' ').map(str::to_string).collect();
    if start.len() < 2 {
        return None;
    }
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some((start, headers))
}

/// An answer to send to the client.
struct Answer {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Headers that describe one hop's connection or framing, which the proxy
/// sets itself.
fn hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "content-length",
        "te",
        "trailer",
        "upgrade",
        "expect",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

impl Answer {
    fn bytes(&self, close: bool) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, self.reason);
        for (k, v) in self.headers.iter().filter(|(k, _)| !hop_by_hop(k)) {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        if close {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// Where [`Keep`] cuts [`Answer::bytes`].
    fn cut(&self, keep: Keep, total: usize) -> usize {
        match keep {
            Keep::Bytes(n) => n.min(total),
            Keep::HalfBody => total - self.body.len() + self.body.len() / 2,
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Sends `request` to the peer on a new connection and reads its answer.
async fn forward(upstream: SocketAddr, request: &Request) -> std::io::Result<Answer> {
    let exchange = async {
        let mut peer = TcpStream::connect(upstream).await?;
        let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.target);
        for (k, v) in request.headers.iter().filter(|(k, _)| !hop_by_hop(k)) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            request.body.len()
        ));
        peer.write_all(head.as_bytes()).await?;
        peer.write_all(&request.body).await?;
        let mut rd = Buffered::default();
        loop {
            let head = rd
                .head(&mut peer)
                .await?
                .ok_or(std::io::ErrorKind::UnexpectedEof)?;
            let (start, headers) = parse_head(&head)
                .ok_or_else(|| std::io::Error::other("unreadable answer from the peer"))?;
            let status: u16 = start[1]
                .parse()
                .map_err(|_| std::io::Error::other("bad status"))?;
            if (100..200).contains(&status) {
                continue;
            }
            let no_body = request.method == "HEAD" || status == 204 || status == 304;
            let body = if no_body {
                Vec::new()
            } else {
                rd.body(&mut peer, &headers, true).await?
            };
            return Ok(Answer {
                status,
                reason: start.get(2).cloned().unwrap_or_default(),
                headers,
                body,
            });
        }
    };
    tokio::time::timeout(UPSTREAM_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// The peer's answer, or a 502 saying why there is none.
async fn forward_or_502(upstream: SocketAddr, request: &Request) -> Answer {
    forward(upstream, request).await.unwrap_or_else(|e| Answer {
        status: 502,
        reason: "Bad Gateway".into(),
        headers: vec![("Content-Type".into(), "text/plain".into())],
        body: format!("fault proxy: the peer did not answer: {e}").into_bytes(),
    })
}

async fn serve_http(mut client: TcpStream, conn: u64, upstream: SocketAddr, state: Shared) {
    let mut rd = Buffered::default();
    loop {
        let Ok(Some(head)) = rd.head(&mut client).await else {
            return;
        };
        let Some((start, headers)) = parse_head(&head) else {
            return;
        };
        let expects_continue = headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("expect") && v.eq_ignore_ascii_case("100-continue")
        });
        if expects_continue
            && client
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
        {
            return;
        }
        let Ok(body) = rd.body(&mut client, &headers, false).await else {
            return;
        };
        let close = start.get(2).is_some_and(|v| v.trim() == "HTTP/1.0")
            || headers.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close")
            });
        let request = Request {
            method: start[0].clone(),
            target: start[1].clone(),
            headers,
            body,
        };
        let (index, decided) = admit(&state, conn, request.clone());
        let fault = decided.map(|(_, f)| f);
        let answer = match fault {
            None => forward_or_502(upstream, &request).await,
            Some(Fault::Latency(d)) => {
                tokio::time::sleep(d).await;
                forward_or_502(upstream, &request).await
            }
            Some(Fault::Respond {
                status,
                headers,
                body,
            }) => Answer {
                status,
                reason: reason(status).into(),
                headers,
                body: body.into_bytes(),
            },
            Some(Fault::Stall) => {
                hold(&mut client).await;
                finish(&state, index, None, "stalled until the client gave up");
                return;
            }
            Some(Fault::Reset) => {
                finish(&state, index, None, "reset before forwarding");
                reset(client);
                return;
            }
            Some(Fault::LoseResponse) => {
                let answer = forward_or_502(upstream, &request).await;
                finish(
                    &state,
                    index,
                    None,
                    format!("forwarded; the peer's {} lost to a reset", answer.status),
                );
                reset(client);
                return;
            }
            Some(Fault::Truncate(keep)) => {
                let answer = forward_or_502(upstream, &request).await;
                let bytes = answer.bytes(true);
                let cut = answer.cut(keep, bytes.len());
                let _ = client.write_all(&bytes[..cut]).await;
                let _ = client.shutdown().await;
                let status = (cut >= 12).then_some(answer.status);
                finish(
                    &state,
                    index,
                    status,
                    format!("truncated to {cut} of {} bytes", bytes.len()),
                );
                return;
            }
            Some(f @ (Fault::CutUpload { .. } | Fault::CutReply { .. })) => {
                unreachable!("{f:?} was refused for an HTTP proxy")
            }
        };
        let sent = client.write_all(&answer.bytes(close)).await;
        finish(
            &state,
            index,
            Some(answer.status),
            if sent.is_ok() {
                "answered"
            } else {
                "the client left"
            },
        );
        if close || sent.is_err() {
            let _ = client.shutdown().await;
            return;
        }
    }
}

// ---------------------------------------------------------------------------
// Raw TCP
// ---------------------------------------------------------------------------

/// The length of a git pkt-line at the start of `bytes`, if it is one.
fn pkt_len(bytes: &[u8]) -> Option<usize> {
    let len = std::str::from_utf8(bytes.get(..4)?).ok()?;
    usize::from_str_radix(len, 16).ok().filter(|n| *n >= 4)
}

/// The opening as text: a pkt-line's payload up to its first NUL.
fn opening_text(opening: &[u8]) -> String {
    let payload = if pkt_len(opening).is_some() {
        &opening[4..]
    } else {
        opening
    };
    let end = payload
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(payload.len());
    String::from_utf8_lossy(&payload[..end]).trim().to_string()
}

struct Counts {
    client: u64,
    client_forwarded: u64,
    peer: u64,
    peer_forwarded: u64,
}

fn finish_tcp(state: &Shared, index: usize, counts: &Counts, outcome: &str) {
    let mut s = lock(state);
    let e = &mut s.log[index];
    e.client_bytes = counts.client;
    e.client_forwarded = counts.client_forwarded;
    e.peer_bytes = counts.peer;
    e.peer_forwarded = counts.peer_forwarded;
    e.outcome = outcome.to_string();
    e.ended = Some(Instant::now());
}

async fn serve_tcp(mut client: TcpStream, conn: u64, upstream: SocketAddr, state: Shared) {
    let mut first = vec![0u8; 65536];
    let n = match tokio::time::timeout(Duration::from_secs(10), client.read(&mut first)).await {
        Ok(Ok(n)) if n > 0 => n,
        _ => return,
    };
    first.truncate(n);
    let opening = pkt_len(&first).filter(|l| *l <= n).unwrap_or(n);
    let request = Request {
        method: "TCP".into(),
        target: opening_text(&first[..opening]),
        headers: Vec::new(),
        body: first[..opening].to_vec(),
    };
    let (index, decided) = admit(&state, conn, request);
    let fault = decided.map(|(_, f)| f);
    let mut counts = Counts {
        client: (n - opening) as u64,
        client_forwarded: 0,
        peer: 0,
        peer_forwarded: 0,
    };
    match fault {
        Some(Fault::Latency(d)) => tokio::time::sleep(d).await,
        Some(Fault::Reset) => {
            finish_tcp(&state, index, &counts, "reset before connecting");
            reset(client);
            return;
        }
        Some(Fault::Stall) => {
            hold(&mut client).await;
            finish_tcp(&state, index, &counts, "stalled until the client gave up");
            return;
        }
        _ => {}
    }
    let Ok(mut peer) = TcpStream::connect(upstream).await else {
        finish_tcp(&state, index, &counts, "the peer refused the connection");
        return;
    };
    let (upload_cut, reply_cut) = match fault {
        Some(Fault::CutUpload { after, then }) => (Some((after as u64, then)), None),
        Some(Fault::CutReply { then }) => (None, Some(then)),
        _ => (None, None),
    };
    // Forwards up to the upload cut; says whether the cut was reached.
    let upload_allowance = |counts: &Counts| match upload_cut {
        Some((after, _)) => after.saturating_sub(counts.client_forwarded),
        None => u64::MAX,
    };
    // The cut, once made: the upload's (client to peer) or the reply's
    // (peer to client); the other direction keeps flowing.
    let mut cut: Option<Cut> = None;
    let (mut upload_stopped, mut reply_stopped) = (false, false);
    let mut outcome = String::new();

    // The opening, and whatever came with it.
    let allowed = upload_allowance(&counts).min(counts.client) as usize;
    if peer.write_all(&first[..opening + allowed]).await.is_err() {
        finish_tcp(&state, index, &counts, "the peer left");
        return;
    }
    counts.client_forwarded = allowed as u64;
    if let Some((_, then)) = upload_cut
        && counts.client > counts.client_forwarded
    {
        cut = Some(then);
        upload_stopped = true;
        outcome = format!("upload cut ({then:?})");
    }

    let (mut cbuf, mut pbuf) = ([0u8; 16384], [0u8; 16384]);
    let (mut client_open, mut peer_open) = (true, true);
    while cut != Some(Cut::Reset) && client_open {
        tokio::select! {
            r = client.read(&mut cbuf) => match r {
                Ok(0) | Err(_) => {
                    client_open = false;
                    if cut.is_none() && peer_open {
                        // A half-close: the peer may still answer.
                        let _ = peer.shutdown().await;
                        while let Ok(k) = peer.read(&mut pbuf).await {
                            if k == 0 || client.write_all(&pbuf[..k]).await.is_err() {
                                break;
                            }
                            counts.peer += k as u64;
                            counts.peer_forwarded += k as u64;
                        }
                    }
                }
                Ok(k) => {
                    counts.client += k as u64;
                    if !upload_stopped {
                        let allowed = upload_allowance(&counts).min(k as u64) as usize;
                        if peer.write_all(&cbuf[..allowed]).await.is_err() {
                            outcome = "the peer left".into();
                            break;
                        }
                        counts.client_forwarded += allowed as u64;
                        if let Some((_, then)) = upload_cut && allowed < k {
                            cut = Some(then);
                            upload_stopped = true;
                            outcome = format!("upload cut ({then:?})");
                        }
                    }
                }
            },
            r = peer.read(&mut pbuf), if peer_open => match r {
                Ok(0) | Err(_) => {
                    peer_open = false;
                    if cut.is_none() {
                        // The peer is done; so is the exchange, once the
                        // client has read it all and closes.
                        let _ = client.shutdown().await;
                    }
                }
                Ok(k) => {
                    counts.peer += k as u64;
                    let sent_more = counts.client > 0;
                    if let Some(then) = reply_cut && sent_more && !reply_stopped {
                        cut = Some(then);
                        reply_stopped = true;
                        outcome = format!("reply cut ({then:?})");
                    }
                    if !reply_stopped {
                        if client.write_all(&pbuf[..k]).await.is_err() {
                            outcome = "the client left".into();
                            break;
                        }
                        counts.peer_forwarded += k as u64;
                    }
                }
            },
        }
    }
    if outcome.is_empty() {
        outcome = "forwarded".into();
    }
    if cut == Some(Cut::Stall) {
        outcome.push_str("; held until the client gave up");
    }
    finish_tcp(&state, index, &counts, &outcome);
    if cut == Some(Cut::Reset) {
        reset(client);
    }
}
