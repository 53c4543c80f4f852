//! Prometheus metrics: the rendered text, parsed back, and a real HTTP
//! server on loopback answering good, wrong and garbage requests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use concord_node::metrics::{ChannelMetrics, Metrics, MetricsSnapshot, render};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------
// A small parser of the text exposition format, strict enough to catch a
// malformed rendering.

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug, Default)]
struct Exposition {
    help: HashMap<String, String>,
    kind: HashMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    fn parse(text: &str) -> Self {
        assert!(text.ends_with('\n'), "the exposition ends with a line feed");
        let mut out = Self::default();
        let mut finished: HashSet<String> = HashSet::new();
        let mut current: Option<String> = None;
        let mut seen: HashSet<(String, BTreeMap<String, String>)> = HashSet::new();
        for line in text.lines() {
            assert!(!line.is_empty(), "no blank lines");
            let family = if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("HELP name text");
                assert!(!help.is_empty());
                assert!(
                    out.help.insert(name.to_owned(), help.to_owned()).is_none(),
                    "one HELP for {name}"
                );
                name.to_owned()
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                assert!(matches!(kind, "counter" | "gauge"), "{line}");
                assert!(out.help.contains_key(name), "HELP before TYPE: {line}");
                assert!(
                    out.kind.insert(name.to_owned(), kind.to_owned()).is_none(),
                    "one TYPE for {name}"
                );
                name.to_owned()
            } else {
                assert!(!line.starts_with('#'), "unexpected comment {line}");
                let sample = parse_sample(line);
                assert!(
                    out.kind.contains_key(&sample.name),
                    "TYPE before samples: {line}"
                );
                assert!(
                    seen.insert((sample.name.clone(), sample.labels.clone())),
                    "duplicate sample {line}"
                );
                let name = sample.name.clone();
                out.samples.push(sample);
                name
            };
            assert!(family.starts_with("concord_"), "{family}");
            if current.as_deref() != Some(family.as_str()) {
                if let Some(prev) = current.replace(family.clone()) {
                    finished.insert(prev);
                }
                assert!(
                    !finished.contains(&family),
                    "family {family} is not contiguous"
                );
            }
        }
        out
    }

    /// The value of the one sample of `name` whose labels are exactly `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.name == name && s.labels == want)
            .collect();
        assert_eq!(found.len(), 1, "{name} {want:?} in {:#?}", self.samples);
        found[0].value
    }

    fn of(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }
}

fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).expect("name");
    let name = &line[..name_end];
    assert!(
        name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "metric name {name:?}"
    );
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        loop {
            // label name
            let start = chars.peek().expect("label").0;
            let mut end = start;
            for (i, c) in chars.by_ref() {
                if c == '=' {
                    end = i;
                    break;
                }
            }
            let key = r[start..end].to_owned();
            assert!(
                key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "label {key:?}"
            );
            assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
            let mut value = String::new();
            loop {
                match chars.next().expect("unterminated label value").1 {
                    '\\' => match chars.next().expect("escape").1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        other => panic!("bad escape \\{other} in {line}"),
                    },
                    '"' => break,
                    '\n' => panic!("raw newline"),
                    c => value.push(c),
                }
            }
            assert!(
                labels.insert(key, value).is_none(),
                "repeated label in {line}"
            );
            match chars.next().expect("label list end").1 {
                ',' => continue,
                '}' => {
                    let at = chars.peek().map_or(r.len(), |(i, _)| *i);
                    rest = &r[at..];
                    break;
                }
                other => panic!("unexpected {other:?} in {line}"),
            }
        }
    }
    let value = rest.strip_prefix(' ').expect("space before value");
    let value = match value {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("value {v:?} in {line}")),
    };
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

// ---------------------------------------------------------------------------

fn snapshot() -> MetricsSnapshot {
    MetricsSnapshot {
        region: "us-east".into(),
        channels: vec![
            ChannelMetrics {
                origin: "eu-west".into(),
                status: "active".into(),
                connected: true,
                writes_behind: 12,
                seconds_behind: 0.25,
                max_1m_seconds: 1.5,
                max_1h_seconds: 3.75,
                max_ever_seconds: 42.0,
                max_ever_writes: 9000,
                rpo_writes: 12,
                rpo_oldest_seconds: 0.125,
            },
            ChannelMetrics {
                origin: "ap-south".into(),
                status: "failed".into(),
                connected: false,
                writes_behind: 0,
                seconds_behind: 0.0,
                max_1m_seconds: 0.0,
                max_1h_seconds: 7.0,
                max_ever_seconds: 7.0,
                max_ever_writes: 3,
                rpo_writes: 0,
                rpo_oldest_seconds: 0.0,
            },
        ],
        local_writes_total: 1001,
        remote_applied_total: 2002,
        open_conflicts: 3,
        conflicts_opened_total: 10,
        conflicts_closed_total: 7,
        lww_losers_total: 55,
        refused_writes_total: 4,
        filtered_writes_total: 6,
        duplicates_total: 8,
    }
}

#[test]
fn render_has_every_metric_with_help_type_and_labels() {
    let text = render(&snapshot(), 123.5);
    let e = Exposition::parse(&text);
    let r = [("region", "us-east")];
    for (name, kind, value) in [
        ("concord_local_writes_total", "counter", 1001.0),
        ("concord_remote_applied_total", "counter", 2002.0),
        ("concord_applied_writes_per_second", "gauge", 123.5),
        ("concord_open_conflicts", "gauge", 3.0),
        ("concord_conflicts_opened_total", "counter", 10.0),
        ("concord_conflicts_closed_total", "counter", 7.0),
        ("concord_lww_losers_total", "counter", 55.0),
        ("concord_refused_writes_total", "counter", 4.0),
        ("concord_filtered_writes_total", "counter", 6.0),
        ("concord_duplicates_total", "counter", 8.0),
    ] {
        assert_eq!(e.kind[name], kind, "{name}");
        assert_eq!(e.get(name, &r), value, "{name}");
    }

    let ch = |origin: &'static str| [("region", "us-east"), ("origin", origin)];
    for (name, eu, ap) in [
        ("concord_channel_connected", 1.0, 0.0),
        ("concord_lag_writes", 12.0, 0.0),
        ("concord_lag_seconds", 0.25, 0.0),
        ("concord_lag_max_writes", 9000.0, 3.0),
        ("concord_rpo_writes", 12.0, 0.0),
        ("concord_rpo_oldest_seconds", 0.125, 0.0),
    ] {
        assert_eq!(e.kind[name], "gauge", "{name}");
        assert_eq!(e.get(name, &ch("eu-west")), eu, "{name}");
        assert_eq!(e.get(name, &ch("ap-south")), ap, "{name}");
        assert_eq!(e.of(name).len(), 2, "{name}");
    }
    for (window, eu, ap) in [("1m", 1.5, 0.0), ("1h", 3.75, 7.0), ("ever", 42.0, 7.0)] {
        let labels = |origin| {
            [
                ("region", "us-east"),
                ("origin", origin),
                ("window", window),
            ]
        };
        assert_eq!(e.get("concord_lag_max_seconds", &labels("eu-west")), eu);
        assert_eq!(e.get("concord_lag_max_seconds", &labels("ap-south")), ap);
    }

    // Every sample carries region; every family has HELP and TYPE.
    assert!(
        e.samples
            .iter()
            .all(|s| s.labels.get("region").map(String::as_str) == Some("us-east"))
    );
    for s in &e.samples {
        assert!(e.help.contains_key(&s.name) && e.kind.contains_key(&s.name));
    }
}

#[test]
fn channel_status_is_one_for_the_current_status_only() {
    let mut snap = snapshot();
    for status in ["active", "lagging", "failed", "rebuilding"] {
        snap.channels[0].status = status.into();
        let e = Exposition::parse(&render(&snap, 0.0));
        assert_eq!(e.kind["concord_channel_status"], "gauge");
        for other in ["active", "lagging", "failed", "rebuilding"] {
            let labels = [
                ("region", "us-east"),
                ("origin", "eu-west"),
                ("status", other),
            ];
            let want = if other == status { 1.0 } else { 0.0 };
            assert_eq!(
                e.get("concord_channel_status", &labels),
                want,
                "{status}/{other}"
            );
        }
        let ap = [
            ("region", "us-east"),
            ("origin", "ap-south"),
            ("status", "failed"),
        ];
        assert_eq!(e.get("concord_channel_status", &ap), 1.0);
        assert_eq!(e.of("concord_channel_status").len(), 8);
        let ones = e
            .of("concord_channel_status")
            .iter()
            .filter(|s| s.value == 1.0)
            .count();
        assert_eq!(ones, 2);
    }
    // A status outside the four is shown, not lost.
    snap.channels[0].status = "weird".into();
    let e = Exposition::parse(&render(&snap, 0.0));
    let labels = [
        ("region", "us-east"),
        ("origin", "eu-west"),
        ("status", "weird"),
    ];
    assert_eq!(e.get("concord_channel_status", &labels), 1.0);
}

#[test]
fn label_values_are_escaped() {
    let mut snap = snapshot();
    snap.region = "a\"b\\c\nd".into();
    snap.channels[0].origin = "x}y,z=\"".into();
    let e = Exposition::parse(&render(&snap, 0.0));
    assert_eq!(
        e.get("concord_open_conflicts", &[("region", "a\"b\\c\nd")]),
        3.0
    );
    assert_eq!(
        e.get(
            "concord_lag_writes",
            &[("region", "a\"b\\c\nd"), ("origin", "x}y,z=\"")]
        ),
        12.0
    );
}

#[test]
fn no_channels_and_special_floats_still_render_valid_text() {
    let snap = MetricsSnapshot {
        region: "solo".into(),
        ..MetricsSnapshot::default()
    };
    let e = Exposition::parse(&render(&snap, f64::NAN));
    assert!(
        e.get("concord_applied_writes_per_second", &[("region", "solo")])
            .is_nan()
    );
    assert!(e.of("concord_lag_seconds").is_empty());
    assert_eq!(e.kind["concord_lag_seconds"], "gauge");

    let mut snap = snapshot();
    snap.channels[0].seconds_behind = f64::INFINITY;
    snap.channels[1].max_ever_seconds = f64::NEG_INFINITY;
    snap.local_writes_total = u64::MAX;
    let e = Exposition::parse(&render(&snap, 1e-9));
    assert_eq!(
        e.get(
            "concord_lag_seconds",
            &[("region", "us-east"), ("origin", "eu-west")]
        ),
        f64::INFINITY
    );
    assert_eq!(
        e.get(
            "concord_lag_max_seconds",
            &[
                ("region", "us-east"),
                ("origin", "ap-south"),
                ("window", "ever")
            ]
        ),
        f64::NEG_INFINITY
    );
    assert!(render(&snap, 0.0).contains(&format!(" {}\n", u64::MAX)));
}

// ---------------------------------------------------------------------------
// The HTTP server.

struct Server {
    addr: SocketAddr,
    publish: watch::Sender<MetricsSnapshot>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), concord_node::NodeError>>,
}

async fn start(initial: MetricsSnapshot) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let (publish, source) = watch::channel(initial);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(Metrics::new(source).serve(listener, async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        publish,
        stop: Some(stop),
        task,
    }
}

impl Server {
    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("serve returns after shutdown")
            .expect("serve task")
            .expect("serve returns Ok");
    }
}

#[derive(Debug)]
struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` as is, reads to EOF, parses the response.
async fn raw(addr: SocketAddr, request: &[u8]) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("send the request");
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes))
        .await
        .expect("the server answers and closes")
        .expect("read the response");
    let text = String::from_utf8(bytes).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"));
    let status: u16 = parts
        .next()
        .expect("status code")
        .parse()
        .expect("numeric status");
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header");
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let response = HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    };
    if let Some(len) = response.header("content-length") {
        let len: usize = len.parse().expect("numeric content-length");
        if request.starts_with(b"HEAD ") {
            assert!(response.body.is_empty());
        } else {
            assert_eq!(len, response.body.len());
        }
    }
    response
}

async fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: test\r\nAccept: */*\r\n\r\n")
            .as_bytes(),
    )
    .await
}

#[tokio::test]
async fn get_metrics_answers_200_with_the_current_snapshot() {
    let server = start(snapshot()).await;
    let r = get(server.addr, "/metrics").await;
    assert_eq!(r.status, 200);
    let ct = r.header("content-type").unwrap();
    assert!(
        ct.starts_with("text/plain") && ct.contains("version=0.0.4"),
        "{ct}"
    );
    let e = Exposition::parse(&r.body);
    assert_eq!(
        e.get("concord_local_writes_total", &[("region", "us-east")]),
        1001.0
    );
    assert_eq!(
        e.get(
            "concord_lag_writes",
            &[("region", "us-east"), ("origin", "eu-west")]
        ),
        12.0
    );

    // A new snapshot is served at once; a query string is ignored.
    let mut next = snapshot();
    next.open_conflicts = 99;
    next.channels[0].status = "rebuilding".into();
    server.publish.send(next).unwrap();
    let r = get(server.addr, "/metrics?x=1").await;
    assert_eq!(r.status, 200);
    let e = Exposition::parse(&r.body);
    assert_eq!(
        e.get("concord_open_conflicts", &[("region", "us-east")]),
        99.0
    );
    let labels = [
        ("region", "us-east"),
        ("origin", "eu-west"),
        ("status", "rebuilding"),
    ];
    assert_eq!(e.get("concord_channel_status", &labels), 1.0);

    // HTTP/1.0 and HEAD.
    let r = raw(server.addr, b"GET /metrics HTTP/1.0\r\n\r\n").await;
    assert_eq!(r.status, 200);
    let r = raw(server.addr, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert!(
        r.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 100
    );
    server.shutdown().await;
}

#[tokio::test]
async fn other_paths_and_methods_are_refused() {
    let server = start(snapshot()).await;
    for path in [
        "/",
        "/metric",
        "/metrics/",
        "/metrics/x",
        "/health",
        "/METRICS",
    ] {
        let r = get(server.addr, path).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(!r.body.contains("concord_"), "{path}");
    }
    let r = raw(
        server.addr,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert_eq!(get(server.addr, "/metrics").await.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn garbage_gets_400_and_the_server_keeps_serving() {
    let server = start(snapshot()).await;
    let garbage: Vec<Vec<u8>> = vec![
        b"hello\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET /metrics\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/2.0\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/1.1 extra\r\n\r\n".to_vec(),
        b"GET metrics HTTP/1.1\r\n\r\n".to_vec(),
        b"get /metrics HTTP/1.1\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/1.1\r\n: empty name\r\n\r\n".to_vec(),
        b"GET /met\x01rics HTTP/1.1\r\n\r\n".to_vec(),
        [&[0xff, 0xfe, 0x00, 0x80][..], b"\r\n\r\n"].concat(),
        b"\r\n\r\n".to_vec(),
        b"GET /metrics HTTP/1.1\r\nHost: x".to_vec(), // cut short: then EOF
    ];
    for request in &garbage {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        stream.shutdown().await.unwrap(); // EOF after the request
        let mut bytes = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes))
            .await
            .expect("answered")
            .unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with("HTTP/1.1 400 "), "{request:?} -> {text}");
        assert_eq!(
            get(server.addr, "/metrics").await.status,
            200,
            "after {request:?}"
        );
    }

    // Oversize: a head that never ends.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let big = vec![b'a'; 64 * 1024];
    let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\nX: ").await;
    let _ = stream.write_all(&big).await; // the server may close first
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes)).await;
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.starts_with("HTTP/1.1 431 ") || text.is_empty(),
        "{text}"
    );

    // Connect and close at once; connect and say nothing.
    drop(TcpStream::connect(server.addr).await.unwrap());
    let _silent = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(get(server.addr, "/metrics").await.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn a_silent_client_is_timed_out_with_408() {
    let server = start(snapshot()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"GET /metr").await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut bytes))
        .await
        .expect("closed by the server")
        .unwrap();
    assert!(String::from_utf8_lossy(&bytes).starts_with("HTTP/1.1 408 "));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_at_once_are_all_served() {
    let server = start(snapshot()).await;
    let addr = server.addr;
    let clients: Vec<_> = (0..150)
        .map(|_| tokio::spawn(async move { get(addr, "/metrics").await.status }))
        .collect();
    for c in clients {
        assert_eq!(c.await.unwrap(), 200);
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_per_second_is_measured_from_the_totals() {
    let server = start(MetricsSnapshot {
        region: "us-east".into(),
        ..MetricsSnapshot::default()
    })
    .await;
    // 1000 applied writes a second: 60 local + 40 remote every 100 ms.
    let publish = server.publish.clone();
    let feeder = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut n = 0u64;
        loop {
            tick.tick().await;
            n += 1;
            publish.send_modify(|s| {
                s.local_writes_total = 60 * n;
                s.remote_applied_total = 40 * n;
            });
        }
    });
    tokio::time::sleep(Duration::from_millis(3300)).await;
    let r = get(server.addr, "/metrics").await;
    feeder.abort();
    let e = Exposition::parse(&r.body);
    let rate = e.get(
        "concord_applied_writes_per_second",
        &[("region", "us-east")],
    );
    assert!((500.0..=2000.0).contains(&rate), "rate {rate}");
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let server = start(snapshot()).await;
    let addr = server.addr;
    assert_eq!(get(addr, "/metrics").await.status, 200);
    // A connection left open does not hold the shutdown up.
    let _idle = TcpStream::connect(addr).await.unwrap();
    server.shutdown().await;
    // The listener is gone: connecting fails, or the connection is closed unanswered.
    if let Ok(mut s) = TcpStream::connect(addr).await {
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await;
        let mut bytes = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut bytes)).await;
        assert!(bytes.is_empty());
    }
}
