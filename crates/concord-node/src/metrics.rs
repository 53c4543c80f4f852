//! Prometheus text metrics on an HTTP port.
//!
//! The node publishes a [`MetricsSnapshot`] on a `tokio::sync::watch`
//! channel every half second or so; [`Metrics::serve`] answers
//! `GET /metrics` with it in the Prometheus text exposition format 0.0.4
//! (see [`render`]), adding the applied-writes rate it measures itself by
//! sampling the snapshot every second.
//!
//! The HTTP server is deliberately small: one request per connection
//! (`Connection: close`), a request head of at most 8 KiB read within 5 s, at
//! most 64 connections at once. `GET` or `HEAD /metrics` gets 200; any other
//! path 404; another method on `/metrics` 405; a malformed request 400; an
//! oversize one 431; a slow one 408. Nothing a client sends can stop it.
//!
//! Every metric is prefixed `concord_` and labelled `region`; the per-channel
//! ones are labelled `origin` too (the region whose writes the channel brings):
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `concord_local_writes_total` | counter | writes accepted from local clients |
//! | `concord_remote_applied_total` | counter | remote writes applied |
//! | `concord_applied_writes_per_second` | gauge | local + remote applied, per second over the last 10 s |
//! | `concord_open_conflicts` | gauge | conflict-queue items open |
//! | `concord_conflicts_opened_total` | counter | conflict-queue items opened |
//! | `concord_conflicts_closed_total` | counter | conflict-queue items closed |
//! | `concord_lww_losers_total` | counter | versions that lost under an LWW policy |
//! | `concord_refused_writes_total` | counter | writes refused (never applied) |
//! | `concord_filtered_writes_total` | counter | writes withheld by residency or local-only rules |
//! | `concord_duplicates_total` | counter | remote writes received again and skipped |
//! | `concord_channel_connected{origin}` | gauge | 1 if the peer is connected |
//! | `concord_channel_status{origin,status}` | gauge | 1 for the current status of `active`, `lagging`, `failed`, `rebuilding`; 0 for the others |
//! | `concord_lag_writes{origin}` | gauge | writes of the origin known and not applied here |
//! | `concord_lag_seconds{origin}` | gauge | how far behind the origin this node is, now |
//! | `concord_lag_max_seconds{origin,window}` | gauge | the largest lag over `window` = `1m`, `1h` or `ever` |
//! | `concord_lag_max_writes{origin}` | gauge | the largest `concord_lag_writes` since the node started |
//! | `concord_rpo_writes{origin}` | gauge | writes a failover of this node would lose now |
//! | `concord_rpo_oldest_seconds{origin}` | gauge | age of the oldest of them |

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior, timeout};

use crate::error::NodeError;

/// The largest request head read, in bytes.
const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// How long a client has to send its request head, and to read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Most connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;
/// How often the applied total is sampled for the rate.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// The window of the applied rate.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// The four channel statuses, in the order they are rendered.
const STATUSES: [&str; 4] = ["active", "lagging", "failed", "rebuilding"];

/// What the node measures, published every ~500 ms for [`Metrics`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// This node's region name.
    pub region: String,
    /// One entry per peer region: the channel bringing its writes here.
    pub channels: Vec<ChannelMetrics>,
    /// Writes accepted from local clients since the node started.
    pub local_writes_total: u64,
    /// Remote writes applied since the node started.
    pub remote_applied_total: u64,
    /// Conflict-queue items open now.
    pub open_conflicts: u64,
    /// Conflict-queue items opened since the node started.
    pub conflicts_opened_total: u64,
    /// Conflict-queue items closed (resolved or released) since the node started.
    pub conflicts_closed_total: u64,
    /// Versions that lost under an LWW policy (each in the loser log).
    pub lww_losers_total: u64,
    /// Writes refused: wrong op kind, merge refused, too far in the future, fenced, ...
    pub refused_writes_total: u64,
    /// Writes withheld from a peer by a residency or local-only rule.
    pub filtered_writes_total: u64,
    /// Remote writes received again and skipped.
    pub duplicates_total: u64,
}

/// The replication channel from one peer region to this node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChannelMetrics {
    /// The peer region's name (the origin of the writes).
    pub origin: String,
    /// `active`, `lagging`, `failed` or `rebuilding`.
    pub status: String,
    /// Whether the peer stream is connected now.
    pub connected: bool,
    /// Writes of the origin known here and not applied yet.
    pub writes_behind: u64,
    /// Origin time of the newest known write minus that of the newest applied.
    pub seconds_behind: f64,
    /// The largest `seconds_behind` in the last minute.
    pub max_1m_seconds: f64,
    /// The largest `seconds_behind` in the last hour.
    pub max_1h_seconds: f64,
    /// The largest `seconds_behind` since the node started.
    pub max_ever_seconds: f64,
    /// The largest `writes_behind` since the node started.
    pub max_ever_writes: u64,
    /// Writes of the origin a failover of this node would lose now.
    pub rpo_writes: u64,
    /// Age of the oldest of them, in seconds (0 if none).
    pub rpo_oldest_seconds: f64,
}

/// Renders `snapshot` in the Prometheus text exposition format 0.0.4, with
/// `applied_per_second` as `concord_applied_writes_per_second`.
///
/// ```
/// use concord_node::metrics::{ChannelMetrics, MetricsSnapshot, render};
///
/// let snapshot = MetricsSnapshot {
///     region: "us-east".into(),
///     local_writes_total: 7,
///     channels: vec![ChannelMetrics {
///         origin: "eu-west".into(),
///         status: "lagging".into(),
///         ..ChannelMetrics::default()
///     }],
///     ..MetricsSnapshot::default()
/// };
/// let text = render(&snapshot, 2.5);
/// assert!(text.contains("\nconcord_local_writes_total{region=\"us-east\"} 7\n"));
/// assert!(text.contains(
///     "\nconcord_channel_status{region=\"us-east\",origin=\"eu-west\",status=\"lagging\"} 1\n"
/// ));
/// ```
pub fn render(snapshot: &MetricsSnapshot, applied_per_second: f64) -> String {
    let mut out = Text {
        buf: String::with_capacity(4096 + snapshot.channels.len() * 2048),
        region: escape(&snapshot.region),
    };
    let s = snapshot;
    out.single(
        "concord_local_writes_total",
        "counter",
        "Writes accepted from local clients.",
        u(s.local_writes_total),
    );
    out.single(
        "concord_remote_applied_total",
        "counter",
        "Remote writes applied.",
        u(s.remote_applied_total),
    );
    out.single(
        "concord_applied_writes_per_second",
        "gauge",
        "Local and remote writes applied per second, over the last 10 seconds.",
        f(applied_per_second),
    );
    out.single(
        "concord_open_conflicts",
        "gauge",
        "Conflict-queue items open.",
        u(s.open_conflicts),
    );
    out.single(
        "concord_conflicts_opened_total",
        "counter",
        "Conflict-queue items opened.",
        u(s.conflicts_opened_total),
    );
    out.single(
        "concord_conflicts_closed_total",
        "counter",
        "Conflict-queue items closed (resolved or released).",
        u(s.conflicts_closed_total),
    );
    out.single(
        "concord_lww_losers_total",
        "counter",
        "Versions that lost under an LWW policy (each is in the loser log).",
        u(s.lww_losers_total),
    );
    out.single(
        "concord_refused_writes_total",
        "counter",
        "Writes refused and never applied.",
        u(s.refused_writes_total),
    );
    out.single(
        "concord_filtered_writes_total",
        "counter",
        "Writes withheld from a peer by a residency or local-only rule.",
        u(s.filtered_writes_total),
    );
    out.single(
        "concord_duplicates_total",
        "counter",
        "Remote writes received again and skipped.",
        u(s.duplicates_total),
    );

    let channels = &s.channels;
    out.per_channel(
        "concord_channel_connected",
        "1 if the peer's stream is connected.",
        channels,
        |c| u(u64::from(c.connected)),
    );
    out.header(
        "concord_channel_status",
        "gauge",
        "The channel's status: 1 for the current one of active, lagging, failed and rebuilding.",
    );
    for c in channels {
        let origin = escape(&c.origin);
        let mut statuses: Vec<&str> = STATUSES.to_vec();
        if !STATUSES.contains(&c.status.as_str()) {
            statuses.push(&c.status);
        }
        for status in statuses {
            let value = u64::from(status == c.status);
            out.sample(
                "concord_channel_status",
                &format!(",origin=\"{origin}\",status=\"{}\"", escape(status)),
                &u(value),
            );
        }
    }
    out.per_channel(
        "concord_lag_writes",
        "Writes of the origin known here and not applied yet.",
        channels,
        |c| u(c.writes_behind),
    );
    out.per_channel(
        "concord_lag_seconds",
        "How far behind the origin this node is: origin time of its newest known write minus that of its newest applied.",
        channels,
        |c| f(c.seconds_behind),
    );
    out.header(
        "concord_lag_max_seconds",
        "gauge",
        "The largest concord_lag_seconds over the window (1m, 1h, or ever: since the node started).",
    );
    for c in channels {
        let origin = escape(&c.origin);
        for (window, value) in [
            ("1m", c.max_1m_seconds),
            ("1h", c.max_1h_seconds),
            ("ever", c.max_ever_seconds),
        ] {
            out.sample(
                "concord_lag_max_seconds",
                &format!(",origin=\"{origin}\",window=\"{window}\""),
                &f(value),
            );
        }
    }
    out.per_channel(
        "concord_lag_max_writes",
        "The largest concord_lag_writes since the node started.",
        channels,
        |c| u(c.max_ever_writes),
    );
    out.per_channel(
        "concord_rpo_writes",
        "Writes of the origin a failover of this node would lose now.",
        channels,
        |c| u(c.rpo_writes),
    );
    out.per_channel(
        "concord_rpo_oldest_seconds",
        "Age of the oldest write a failover of this node would lose now (0 if none).",
        channels,
        |c| f(c.rpo_oldest_seconds),
    );
    out.buf
}

/// The exposition being written.
struct Text {
    buf: String,
    /// The escaped region label value.
    region: String,
}

impl Text {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.buf, "# HELP {name} {help}");
        let _ = writeln!(self.buf, "# TYPE {name} {kind}");
    }

    /// One sample: `extra_labels` starts with a comma, or is empty.
    fn sample(&mut self, name: &str, extra_labels: &str, value: &str) {
        let _ = writeln!(
            self.buf,
            "{name}{{region=\"{}\"{extra_labels}}} {value}",
            self.region
        );
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: String) {
        self.header(name, kind, help);
        self.sample(name, "", &value);
    }

    fn per_channel(
        &mut self,
        name: &str,
        help: &str,
        channels: &[ChannelMetrics],
        value: impl Fn(&ChannelMetrics) -> String,
    ) {
        self.header(name, "gauge", help);
        for c in channels {
            let labels = format!(",origin=\"{}\"", escape(&c.origin));
            self.sample(name, &labels, &value(c));
        }
    }
}

fn u(value: u64) -> String {
    value.to_string()
}

/// A float as Prometheus writes it (`NaN`, `+Inf`, `-Inf` for the specials).
fn f(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        value.to_string()
    }
}

/// Escapes a label value: backslash, double quote and line feed.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The applied total over the last [`RATE_WINDOW`], sampled.
#[derive(Debug, Default)]
struct RateWindow {
    /// (when, total), oldest first.
    samples: VecDeque<(Instant, u64)>,
}

impl RateWindow {
    fn record(&mut self, now: Instant, total: u64) {
        self.samples.push_back((now, total));
        // Keep the newest sample at least RATE_WINDOW old, as the base.
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= RATE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Writes per second between the oldest and the newest sample (0 with
    /// fewer than two; a total that went down counts as no writes).
    fn rate(&self) -> f64 {
        let (Some((t0, n0)), Some((t1, n1))) = (self.samples.front(), self.samples.back()) else {
            return 0.0;
        };
        let seconds = t1.saturating_duration_since(*t0).as_secs_f64();
        if seconds <= 0.0 {
            return 0.0;
        }
        let writes = n1.saturating_sub(*n0) as f64;
        writes / seconds
    }
}

/// Serves the node's metrics over HTTP.
#[derive(Debug)]
pub struct Metrics {
    source: watch::Receiver<MetricsSnapshot>,
}

impl Metrics {
    /// Metrics of the snapshots published on `source`.
    pub fn new(source: watch::Receiver<MetricsSnapshot>) -> Self {
        Self { source }
    }

    /// Answers HTTP requests on `listener` until `shutdown` completes (or the
    /// snapshot's sender is dropped, after which the last snapshot is still
    /// served until `shutdown`). Connections still open then are dropped.
    ///
    /// Errors accepting a connection (out of file descriptors, ...) are
    /// logged and retried after a short pause, never returned.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), NodeError> {
        let rate = Arc::new(AtomicU64::new(0f64.to_bits()));
        let mut window = RateWindow::default();
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = tick.tick() => {
                    let total = {
                        let s = self.source.borrow();
                        s.local_writes_total.saturating_add(s.remote_applied_total)
                    };
                    window.record(Instant::now(), total);
                    rate.store(window.rate().to_bits(), Ordering::Relaxed);
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept(), if connections.len() < MAX_CONNECTIONS => {
                    match accepted {
                        Ok((stream, _)) => {
                            let source = self.source.clone();
                            let rate = Arc::clone(&rate);
                            connections.spawn(async move {
                                let rate = f64::from_bits(rate.load(Ordering::Relaxed));
                                handle(stream, &source, rate).await;
                            });
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "metrics: accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
        }
        connections.shutdown().await;
        Ok(())
    }
}

/// An answer to one request.
struct Response {
    /// Code and reason, e.g. `404 Not Found`.
    status: &'static str,
    /// Empty, or one more header line ending in CRLF.
    extra_header: &'static str,
    body: String,
    /// `HEAD`: the headers (with the body's length) but not the body.
    head_only: bool,
}

impl Response {
    fn error(status: &'static str, message: &str) -> Self {
        Self {
            status,
            extra_header: "",
            body: format!("{message}\n"),
            head_only: false,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let content_type = if self.status.starts_with("200") {
            "text/plain; version=0.0.4; charset=utf-8"
        } else {
            "text/plain; charset=utf-8"
        };
        let mut out = format!(
            "HTTP/1.1 {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
            self.status,
            self.body.len(),
            self.extra_header,
        )
        .into_bytes();
        if !self.head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

/// Serves one request on `stream`, then closes it. Never fails: a broken
/// client only loses its own connection.
async fn handle(mut stream: TcpStream, source: &watch::Receiver<MetricsSnapshot>, rate: f64) {
    let response = match timeout(IO_TIMEOUT, read_head(&mut stream)).await {
        Err(_) => Some(Response::error(
            "408 Request Timeout",
            "request not received in time",
        )),
        Ok(Err(HeadError::Closed)) => None,
        Ok(Err(HeadError::Incomplete)) => Some(Response::error(
            "400 Bad Request",
            "the request ended before its head did",
        )),
        Ok(Err(HeadError::TooLarge)) => Some(Response::error(
            "431 Request Header Fields Too Large",
            "request head larger than 8 KiB",
        )),
        Ok(Ok(head)) => Some(respond(&head, source, rate)),
    };
    if let Some(response) = response {
        let bytes = response.bytes();
        let _ = timeout(IO_TIMEOUT, async {
            stream.write_all(&bytes).await?;
            stream.shutdown().await
        })
        .await;
    }
}

enum HeadError {
    /// The client closed the connection (or it failed) before a full head.
    Closed,
    /// The client stopped sending (end of stream) before the end of the head.
    Incomplete,
    /// No end of head within [`MAX_REQUEST_BYTES`].
    TooLarge,
}

/// Reads up to the blank line that ends the request head.
async fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| HeadError::Closed)?;
        if n == 0 {
            return Err(if buf.is_empty() {
                HeadError::Closed
            } else {
                HeadError::Incomplete
            });
        }
        let searched_from = buf.len().saturating_sub(3);
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if let Some(end) = find_head_end(&buf, searched_from) {
            buf.truncate(end);
            return Ok(buf);
        }
        if buf.len() > MAX_REQUEST_BYTES {
            return Err(HeadError::TooLarge);
        }
    }
}

/// Where the head ends (`\r\n\r\n` or a bare `\n\n`), searching from `from`.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    (from..buf.len()).find_map(|i| {
        let rest = buf.get(i..)?;
        (rest.starts_with(b"\r\n\r\n") || rest.starts_with(b"\n\n")).then_some(i)
    })
}

/// The answer to a complete request head.
fn respond(head: &[u8], source: &watch::Receiver<MetricsSnapshot>, rate: f64) -> Response {
    let bad = |why: &str| Response::error("400 Bad Request", why);
    let Ok(text) = std::str::from_utf8(head) else {
        return bad("the request is not UTF-8");
    };
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return bad("malformed request line");
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return bad("malformed method");
    }
    if !matches!(version, "HTTP/1.0" | "HTTP/1.1") {
        return bad("unsupported HTTP version");
    }
    if !target.starts_with('/') || target.bytes().any(|b| b.is_ascii_control()) {
        return bad("malformed request target");
    }
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, _)) = line.split_once(':') else {
            return bad("malformed header line");
        };
        if name.is_empty()
            || name
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return bad("malformed header name");
        }
    }
    let path = target.split(['?', '#']).next().unwrap_or(target);
    if path != "/metrics" {
        return Response::error("404 Not Found", "not found: the metrics are at /metrics");
    }
    match method {
        "GET" | "HEAD" => {
            let body = render(&source.borrow(), rate);
            Response {
                status: "200 OK",
                extra_header: "",
                body,
                head_only: method == "HEAD",
            }
        }
        _ => Response {
            extra_header: "Allow: GET, HEAD\r\n",
            ..Response::error("405 Method Not Allowed", "only GET and HEAD")
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_over_the_window() {
        let start = Instant::now();
        let mut w = RateWindow::default();
        assert_eq!(w.rate(), 0.0);
        w.record(start, 100);
        assert_eq!(w.rate(), 0.0);
        for s in 1..=30u64 {
            // 50 writes a second for 20 s, then 200 a second.
            let total = if s <= 20 {
                100 + 50 * s
            } else {
                1100 + 200 * (s - 20)
            };
            w.record(start + Duration::from_secs(s), total);
        }
        // The window holds the last 10 s: all at 200/s.
        assert!((w.rate() - 200.0).abs() < 1e-9, "{}", w.rate());
        assert!(w.samples.len() <= 12);
    }

    #[test]
    fn rate_of_a_total_that_went_down_is_zero() {
        let start = Instant::now();
        let mut w = RateWindow::default();
        w.record(start, 500);
        w.record(start + Duration::from_secs(1), 10);
        assert_eq!(w.rate(), 0.0);
    }

    #[test]
    fn head_end() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\n", 0), Some(14));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\n", 0), Some(14));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n", 0), None);
    }

    #[test]
    fn floats() {
        assert_eq!(f(f64::NAN), "NaN");
        assert_eq!(f(f64::INFINITY), "+Inf");
        assert_eq!(f(f64::NEG_INFINITY), "-Inf");
        assert_eq!(f(0.25), "0.25");
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
