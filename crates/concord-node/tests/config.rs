//! The node's TOML configuration: the example files, defaults, the round
//! trip, the engine configuration, and an error naming the field for every
//! kind of bad setting.

use std::path::{Path, PathBuf};
use std::time::Duration;

use concord_core::{Collection, LagThresholds, Policy, Replication, SkewAction};
use concord_crdt::RegionId;
use concord_node::NodeError;
use concord_node::auth::ClientSpec;
use concord_node::config::{
    CollectionSpec, NodeConfig, RegionEntry, RegionNames, TlsSetting, Tuning, WriteConcern,
};
use concord_node::limits::Limits;
use concord_node::tls::TlsFiles;

/// A small valid config: two regions, three collections.
const BASE: &str = r#"
region = "us-east"
listen = "127.0.0.1:7101"
data_dir = "./data/us-east"

[tls]
insecure = true

[[regions]]
name = "us-east"
id = 1

[[regions]]
name = "eu-west"
id = 2
address = "http://127.0.0.1:7102"

[[collections]]
name = "profiles"
policy = "lww-hlc"

[[collections]]
name = "carts"
policy = "mv"

[[collections]]
name = "audit"
policy = "lww-wall"
replication = ["eu-west"]
"#;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/configs")
}

fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("examples/configs exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// `BASE` with top-level settings added before the first table.
fn with_top(lines: &str) -> String {
    format!("{lines}\n{BASE}")
}

/// `BASE` with the one occurrence of `from` replaced.
fn replaced(from: &str, to: &str) -> String {
    assert_eq!(
        BASE.matches(from).count(),
        1,
        "{from:?} must occur once in BASE"
    );
    BASE.replacen(from, to, 1)
}

/// `BASE` with a table or tables appended.
fn with_tail(tail: &str) -> String {
    format!("{BASE}\n{tail}\n")
}

#[track_caller]
fn assert_config_error(text: &str, want_field: &str, want_in_reason: &str) {
    match NodeConfig::parse(text) {
        Ok(c) => panic!("expected an error at {want_field}, parsed: {c:?}\n---\n{text}"),
        Err(NodeError::Config { field, reason }) => {
            assert_eq!(
                field, want_field,
                "wrong field (reason: {reason})\n---\n{text}"
            );
            assert!(
                reason.contains(want_in_reason),
                "reason {reason:?} should contain {want_in_reason:?}\n---\n{text}"
            );
        }
        Err(other) => panic!("expected a config error, got {other}\n---\n{text}"),
    }
}

#[test]
fn every_example_config_parses() {
    let files = example_files();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["ap-south", "eu-west", "us-east"]);

    let expected = [
        ("us-east", 1u16, 7101u16, 9101u16),
        ("eu-west", 2, 7102, 9102),
        ("ap-south", 3, 7103, 9103),
    ];
    let mut loaded = Vec::new();
    for (region, id, port, metrics_port) in expected {
        let path = examples_dir().join(format!("{region}.toml"));
        let c = NodeConfig::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(c.region, region);
        assert_eq!(c.region_id(), RegionId::new(id));
        assert_eq!(c.listen.to_string(), format!("127.0.0.1:{port}"));
        assert_eq!(
            c.metrics_listen.map(|a| a.to_string()),
            Some(format!("127.0.0.1:{metrics_port}"))
        );
        assert_eq!(c.data_dir, PathBuf::from(format!("./data/{region}")));
        assert_eq!(c.regions.len(), 3);
        let peers: Vec<&str> = c.peers().map(|r| r.name.as_str()).collect();
        assert_eq!(peers.len(), 2);
        assert!(!peers.contains(&region));

        let policies: Vec<(&str, Policy)> = c
            .collections
            .iter()
            .map(|s| (s.name.as_str(), s.config.policy))
            .collect();
        assert_eq!(
            policies,
            [
                ("profiles", Policy::LwwHlc),
                ("carts", Policy::Mv),
                ("inventory", Policy::Counter),
                ("orders", Policy::Queue),
                ("prefs", Policy::LwwWall),
                ("eu-audit", Policy::LwwWall),
            ]
        );
        let audit = &c.collections[5].config;
        assert_eq!(
            audit.replication,
            Replication::Regions(vec![RegionId::new(2)])
        );
        assert_eq!(c.collections[4].config.skew_action, SkewAction::Refuse);
        assert_eq!(c.collections[0].config.replication, Replication::Everywhere);

        let engine = c.engine_config();
        assert_eq!(engine.region, RegionId::new(id));
        let mut peer_ids = engine.peers.clone();
        peer_ids.sort();
        let mut want: Vec<RegionId> = (1..=3).filter(|i| *i != id).map(RegionId::new).collect();
        want.sort();
        assert_eq!(peer_ids, want);
        assert_eq!(engine.collections.len(), 6);

        // And each file round-trips.
        assert_eq!(NodeConfig::parse(&c.to_toml()).expect("round trip"), c);
        loaded.push(c);
    }
    // The three agree on everything but the node's own settings.
    for c in &loaded[1..] {
        assert_eq!(c.regions, loaded[0].regions);
        assert_eq!(c.collections, loaded[0].collections);
        assert_eq!(c.region_names(), loaded[0].region_names());
    }
}

#[test]
fn a_minimal_config_gets_the_defaults() {
    let c = NodeConfig::parse(BASE).expect("valid");
    assert_eq!(c.metrics_listen, None);
    assert_eq!(c.max_skew, Duration::from_millis(5000));
    assert_eq!(c.write_concern, WriteConcern::Local);
    assert_eq!(c.write_timeout, Duration::from_millis(5000));
    assert_eq!(c.read_wait, Duration::from_millis(5000));
    assert_eq!(c.lag, LagThresholds::default());
    assert_eq!(c.tuning, Tuning::default());
    assert_eq!(
        Tuning::default(),
        Tuning {
            max_batch_writes: 1000,
            max_in_flight: 8,
            checkpoint_every: 50_000,
            heartbeat: Duration::from_millis(500),
            max_key_bytes: 4096,
            max_value_bytes: 1_048_576,
            max_message_bytes: 4 * 1024 * 1024,
        }
    );
    let carts = &c.collections[1].config;
    assert_eq!(carts.max_siblings, 16);
    assert_eq!(carts.skew_action, SkewAction::Queue);
    assert_eq!(carts.replication, Replication::Everywhere);
    // This node's own address may be left out.
    assert_eq!(c.regions[0].address, None);

    // An empty collection list is allowed too.
    let no_collections = BASE.split("[[collections]]").next().unwrap();
    assert!(
        NodeConfig::parse(no_collections)
            .unwrap()
            .collections
            .is_empty()
    );
}

#[test]
fn partial_tables_keep_the_other_defaults() {
    let text =
        with_tail("[lag]\nrpo_ms = 2000\n\n[tuning]\nmax_in_flight = 4\nheartbeat_ms = 250\n");
    let c = NodeConfig::parse(&text).unwrap();
    assert_eq!(c.lag.rpo, Duration::from_secs(2));
    assert_eq!(c.lag.warn_factor, LagThresholds::default().warn_factor);
    assert_eq!(c.lag.failed_after, LagThresholds::default().failed_after);
    assert_eq!(c.tuning.max_in_flight, 4);
    assert_eq!(c.tuning.heartbeat, Duration::from_millis(250));
    assert_eq!(c.tuning.max_batch_writes, 1000);
    // An integer warn_factor is fine.
    let c = NodeConfig::parse(&with_tail("[lag]\nwarn_factor = 4\n")).unwrap();
    assert_eq!(c.lag.warn_factor, 4.0);
}

fn custom() -> NodeConfig {
    let coll = |name: &str, policy| CollectionSpec {
        name: Collection::new(name).expect("valid collection name"),
        config: concord_core::CollectionConfig::new(policy),
    };
    let mut local = coll("scratch", Policy::Mv);
    local.config.replication = Replication::LocalOnly;
    local.config.max_siblings = 3;
    local.config.skew_action = SkewAction::Refuse;
    let mut resident = coll("eu.data_1", Policy::Queue);
    resident.config.replication = Replication::Regions(vec![RegionId::new(20), RegionId::new(300)]);
    NodeConfig {
        region: "eu-west".into(),
        listen: "[::1]:0".parse().expect("socket address"),
        metrics_listen: Some("0.0.0.0:9000".parse().expect("socket address")),
        data_dir: PathBuf::from("/var/lib/concord \"eu\""),
        regions: vec![
            RegionEntry {
                name: "us-east".into(),
                id: RegionId::new(300),
                address: Some("https://us.example.com".into()),
            },
            RegionEntry {
                name: "eu-west".into(),
                id: RegionId::new(20),
                address: Some("http://10.0.0.2:7102".into()),
            },
            RegionEntry {
                name: "ap_south.2".into(),
                id: RegionId::new(65535),
                address: Some("http://[::1]:7103/".into()),
            },
        ],
        collections: vec![coll("counts", Policy::Counter), local, resident],
        max_skew: Duration::from_millis(1500),
        write_concern: WriteConcern::Regions(2),
        write_timeout: Duration::from_millis(750),
        read_wait: Duration::ZERO,
        lag: LagThresholds {
            rpo: Duration::from_secs(30),
            warn_factor: 2.5,
            warn_floor: Duration::from_millis(20),
            failed_after: Duration::from_secs(3),
        },
        tuning: Tuning {
            max_batch_writes: 5000,
            max_in_flight: 2,
            checkpoint_every: 7,
            heartbeat: Duration::from_millis(100),
            max_key_bytes: 100,
            max_value_bytes: 2000,
            max_message_bytes: 1 << 20,
        },
        tls: Some(TlsSetting::Files(TlsFiles {
            ca: "/etc/concord/ca.pem".into(),
            cert: "/etc/concord/eu-west.pem".into(),
            key: "/etc/concord/eu-west.key".into(),
        })),
        clients: vec![
            ClientSpec {
                name: "reader".into(),
                token_sha256: concord_node::auth::hash_token("r"),
                read: vec!["counts".into(), "scratch".into()],
                write: Vec::new(),
                admin: false,
            },
            ClientSpec::admin("ops", concord_node::auth::hash_token("o")),
        ],
        limits: Limits {
            max_write_many: 10,
            max_peer_batch: 6000,
            max_siblings: 20,
            max_concurrent_per_client: 3,
            max_concurrent_per_peer: 2,
        },
    }
}

#[test]
fn a_config_built_in_code_round_trips_through_toml() {
    let c = custom();
    c.validate().expect("valid");
    let text = c.to_toml();
    let back = NodeConfig::parse(&text).unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
    assert_eq!(back, c, "\n---\n{text}");
    // Twice gives the same text.
    assert_eq!(back.to_toml(), text);
}

#[test]
fn engine_config_carries_every_setting() {
    let c = custom();
    let e = c.engine_config();
    assert_eq!(e.region, RegionId::new(20));
    assert_eq!(e.peers, [RegionId::new(300), RegionId::new(65535)]);
    assert_eq!(e.max_skew, Duration::from_millis(1500));
    assert_eq!(e.lag, c.lag);
    assert_eq!(e.max_batch_writes, 5000);
    assert_eq!(e.max_in_flight, 2);
    assert_eq!(e.checkpoint_every, 7);
    assert_eq!(e.heartbeat_every, Duration::from_millis(100));
    assert_eq!(e.max_key_bytes, 100);
    assert_eq!(e.max_value_bytes, 2000);
    let names: Vec<&str> = e.collections.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["counts", "scratch", "eu.data_1"]);
    assert_eq!(e.collections[1].1, c.collections[1].config);
}

#[test]
fn region_names_map_both_ways() {
    let c = custom();
    let names: RegionNames = c.region_names();
    let copy = names.clone();
    assert_eq!(copy.name(RegionId::new(20)), "eu-west");
    assert_eq!(copy.name(RegionId::new(65535)), "ap_south.2");
    assert_eq!(copy.name(RegionId::new(7)), "region-7");
    assert_eq!(copy.id("us-east"), Some(RegionId::new(300)));
    assert_eq!(copy.id("nowhere"), None);
    let all: Vec<(u16, &str)> = names.iter().map(|(i, n)| (i.get(), n)).collect();
    assert_eq!(
        all,
        [(20, "eu-west"), (300, "us-east"), (65535, "ap_south.2")]
    );
    let peers: Vec<&str> = c.peers().map(|r| r.name.as_str()).collect();
    assert_eq!(peers, ["us-east", "ap_south.2"]);
    assert_eq!(c.region_id(), RegionId::new(20));

    let built: RegionNames = [
        (RegionId::new(2), "b".to_owned()),
        (RegionId::new(1), "a".to_owned()),
    ]
    .into_iter()
    .collect();
    assert_eq!(built.iter().map(|(_, n)| n).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(RegionNames::default().name(RegionId::new(1)), "region-1");
}

#[test]
fn write_concern_text() {
    for (text, concern) in [
        ("local", WriteConcern::Local),
        ("all", WriteConcern::All),
        ("regions:1", WriteConcern::Regions(1)),
        ("regions:12", WriteConcern::Regions(12)),
    ] {
        assert_eq!(text.parse::<WriteConcern>().unwrap(), concern);
        assert_eq!(concern.to_string(), text);
    }
    assert_eq!(
        "regions(2)".parse::<WriteConcern>().unwrap(),
        WriteConcern::Regions(2)
    );
    assert_eq!(WriteConcern::default(), WriteConcern::Local);
    for bad in [
        "",
        "Local",
        "regions",
        "regions:",
        "regions:0",
        "regions:-1",
        "regions:x",
        "regions:99999999999",
        "quorum",
    ] {
        match bad.parse::<WriteConcern>() {
            Err(NodeError::Config { field, .. }) => assert_eq!(field, "write_concern"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

#[test]
fn load_reads_a_file_and_names_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    std::fs::write(&path, BASE).unwrap();
    assert_eq!(
        NodeConfig::load(&path).unwrap(),
        NodeConfig::parse(BASE).unwrap()
    );

    let missing = dir.path().join("missing.toml");
    match NodeConfig::load(&missing) {
        Err(NodeError::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("{other:?}"),
    }
    std::fs::write(&path, "region = 1").unwrap();
    assert!(matches!(
        NodeConfig::load(&path),
        Err(NodeError::Config { .. })
    ));
}

#[test]
fn the_error_message_names_the_field() {
    let err = NodeConfig::parse(&replaced("policy = \"mv\"", "policy = \"mvv\"")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("config: collections[1].policy: "),
        "{text}"
    );
    assert!(text.contains("mvv"), "{text}");
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    assert_config_error(
        &with_top("listen_addr = \"1.2.3.4:5\""),
        "listen_addr",
        "unknown field",
    );
    assert_config_error(
        &replaced("policy = \"mv\"", "polcy = \"mv\""),
        "collections[1].polcy",
        "unknown field `polcy`",
    );
    assert_config_error(&with_tail("[lag]\nrpo = 5"), "lag.rpo", "unknown field");
    assert_config_error(
        &with_tail("[tuning]\nbatch = 5"),
        "tuning.batch",
        "unknown field",
    );
    assert_config_error(
        &replaced("id = 1\n", "id = 1\nzone = \"a\"\n"),
        "regions[0].zone",
        "unknown field",
    );
    assert_config_error(&with_tail("[extra]\na = 1"), "extra", "unknown field");
}

#[test]
fn missing_keys_are_errors_naming_the_key() {
    assert_config_error(
        &BASE.replacen("region = \"us-east\"\n", "", 1),
        "region",
        "missing field",
    );
    assert_config_error(
        &BASE.replacen("listen = ", "# listen = ", 1),
        "listen",
        "missing field",
    );
    assert_config_error(
        &BASE.replacen("data_dir", "#", 1),
        "data_dir",
        "missing field",
    );
    assert_config_error(
        &replaced("policy = \"mv\"\n", ""),
        "collections[1].policy",
        "missing field",
    );
    assert_config_error(&replaced("id = 2\n", ""), "regions[1].id", "missing field");
    assert_config_error(
        &replaced("address = \"http://127.0.0.1:7102\"\n", ""),
        "regions[1].address",
        "required",
    );
    let no_regions: String = BASE
        .split("[[collections]]")
        .next()
        .unwrap()
        .split("[[regions]]")
        .next()
        .unwrap()
        .to_owned();
    assert_config_error(&no_regions, "regions", "missing field");
}

#[test]
fn wrong_types_are_errors_naming_the_key() {
    assert_config_error(&with_top("max_skew_ms = -5"), "max_skew_ms", "");
    assert_config_error(
        &with_top("max_skew_ms = \"5s\""),
        "max_skew_ms",
        "invalid type",
    );
    assert_config_error(
        &with_top("write_timeout_ms = 1.5"),
        "write_timeout_ms",
        "invalid type",
    );
    assert_config_error(
        &with_tail("[lag]\nwarn_factor = \"x\""),
        "lag.warn_factor",
        "invalid type",
    );
    assert_config_error(&with_top("lag.rpo_ms = true"), "lag.rpo_ms", "invalid type");
    assert_config_error(&with_top("tuning = \"fast\""), "tuning", "invalid type");
    assert_config_error(
        &replaced("policy = \"mv\"", "policy = 3"),
        "collections[1].policy",
        "invalid type",
    );
    assert_config_error(
        &replaced("policy = \"mv\"", "policy = \"mv\"\nmax_siblings = -1"),
        "collections[1].max_siblings",
        "",
    );
    assert_config_error(
        &replaced("id = 2", "id = \"2\""),
        "regions[1].id",
        "invalid type",
    );
    assert_config_error(
        &replaced("name = \"carts\"", "name = [\"carts\"]"),
        "collections[1].name",
        "invalid type",
    );
    // Inline tables and arrays are located too.
    let inline = r#"
region = "a"
listen = "127.0.0.1:1"
data_dir = "d"
regions = [{ name = "a", id = 1 }]
collections = [{ name = "x", policy = "mv" }, { name = 3, policy = "mv" }]
"#;
    assert_config_error(inline, "collections[1].name", "invalid type");
    assert_config_error(
        &inline
            .replace("regions = [{ name = \"a\", id = 1 }]", "regions = 5")
            .replace("name = 3", "name = \"y\""),
        "regions",
        "invalid type",
    );
}

#[test]
fn syntax_errors_are_located() {
    assert_config_error(&with_top("region ="), "region", "line 1");
    // A duplicate key.
    assert_config_error(&with_top("region = \"eu-west\""), "region", "duplicate key");
    // Garbage with no key to blame names the line.
    match NodeConfig::parse("[[[\n") {
        Err(NodeError::Config { field, reason }) => {
            assert!(!field.is_empty());
            assert!(reason.contains("line 1"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        NodeConfig::parse(""),
        Err(NodeError::Config { .. })
    ));
}

#[test]
fn bad_values_are_errors_naming_the_field() {
    // Policies and collection settings.
    assert_config_error(
        &replaced("policy = \"lww-wall\"", "policy = \"lww\""),
        "collections[2].policy",
        "unknown policy \"lww\"",
    );
    assert_config_error(
        &replaced(
            "replication = [\"eu-west\"]",
            "replication = [\"eu-west\", \"mars\"]",
        ),
        "collections[2].replication[1]",
        "unknown region \"mars\"",
    );
    assert_config_error(
        &replaced(
            "replication = [\"eu-west\"]",
            "replication = [\"eu-west\", 2]",
        ),
        "collections[2].replication[1]",
        "expected a region name",
    );
    assert_config_error(
        &replaced(
            "replication = [\"eu-west\"]",
            "replication = [\"eu-west\", \"eu-west\"]",
        ),
        "collections[2].replication[1]",
        "twice",
    );
    assert_config_error(
        &replaced("replication = [\"eu-west\"]", "replication = []"),
        "collections[2].replication",
        "empty",
    );
    assert_config_error(
        &replaced("replication = [\"eu-west\"]", "replication = \"somewhere\""),
        "collections[2].replication",
        "somewhere",
    );
    assert_config_error(
        &replaced("replication = [\"eu-west\"]", "replication = 5"),
        "collections[2].replication",
        "found integer",
    );
    assert_config_error(
        &replaced(
            "policy = \"lww-hlc\"",
            "policy = \"lww-hlc\"\nskew_action = \"drop\"",
        ),
        "collections[0].skew_action",
        "\"drop\"",
    );
    assert_config_error(
        &replaced("policy = \"mv\"", "policy = \"mv\"\nmax_siblings = 0"),
        "collections[1].max_siblings",
        "at least 1",
    );
    assert_config_error(
        &replaced("name = \"carts\"", "name = \"profiles\""),
        "collections[1].name",
        "duplicate",
    );
    assert_config_error(
        &replaced("name = \"carts\"", "name = \"my carts\""),
        "collections[1].name",
        "allowed",
    );
    assert_config_error(
        &replaced("name = \"carts\"", "name = \"\""),
        "collections[1].name",
        "empty",
    );
    let long = "c".repeat(200);
    assert_config_error(
        &replaced("name = \"carts\"", &format!("name = \"{long}\"")),
        "collections[1].name",
        "longer",
    );

    // Regions.
    assert_config_error(
        &replaced("id = 2", "id = 1"),
        "regions[1].id",
        "duplicate region id 1",
    );
    assert_config_error(
        &replaced("id = 1\n", "id = 0\n"),
        "regions[0].id",
        "1..=65535",
    );
    assert_config_error(
        &replaced("id = 2", "id = 65536"),
        "regions[1].id",
        "1..=65535",
    );
    assert_config_error(&replaced("id = 2", "id = -2"), "regions[1].id", "1..=65535");
    assert_config_error(
        &replaced("name = \"eu-west\"", "name = \"us-east\""),
        "regions[1].name",
        "duplicate region name",
    );
    assert_config_error(
        &replaced("name = \"eu-west\"", "name = \"eu west\"\n")
            .replace("replication = [\"eu-west\"]", "replication = \"local\""),
        "regions[1].name",
        "allowed",
    );
    assert_config_error(
        &replaced("name = \"eu-west\"", "name = \"\"")
            .replace("replication = [\"eu-west\"]", "replication = \"local\""),
        "regions[1].name",
        "empty",
    );
    for bad in [
        "127.0.0.1:7102",
        "ftp://h:1",
        "http://",
        "http://h:1/path",
        "http://h:99999",
        "not a url",
    ] {
        assert_config_error(
            &replaced("http://127.0.0.1:7102", bad),
            "regions[1].address",
            "",
        );
    }
    let head = BASE.split("[[regions]]").next().unwrap();
    assert_config_error(&format!("regions = []\n{head}"), "regions", "no regions");
    assert_config_error(
        &BASE.replacen("region = \"us-east\"", "region = \"mars\"", 1),
        "region",
        "not one of the [[regions]] (us-east, eu-west)",
    );

    // Node settings.
    assert_config_error(
        &BASE.replacen("127.0.0.1:7101", "localhost", 1),
        "listen",
        "not a socket address",
    );
    assert_config_error(
        &with_top("metrics_listen = \"127.0.0.1:7101\""),
        "metrics_listen",
        "also the gRPC address",
    );
    assert_config_error(
        &with_top("metrics_listen = \":9100\""),
        "metrics_listen",
        "",
    );
    assert_config_error(
        &BASE.replacen("\"./data/us-east\"", "\"\"", 1),
        "data_dir",
        "empty",
    );
    assert_config_error(
        &with_top("write_concern = \"most\""),
        "write_concern",
        "most",
    );
    assert_config_error(
        &with_top("write_concern = \"regions:0\""),
        "write_concern",
        "local",
    );
    assert_config_error(
        &with_top("write_concern = \"regions:2\""),
        "write_concern",
        "more other regions than there are (1)",
    );
    assert_config_error(
        &with_top("write_timeout_ms = 0"),
        "write_timeout_ms",
        "at least 1 ms",
    );
    assert_config_error(
        &with_top("max_skew_ms = 9223372036854775807"),
        "max_skew_ms",
        "365 days",
    );

    // Lag and tuning.
    assert_config_error(
        &with_tail("[lag]\nwarn_factor = 0.5"),
        "lag.warn_factor",
        "at least 1",
    );
    assert_config_error(
        &with_tail("[lag]\nwarn_factor = nan"),
        "lag.warn_factor",
        "",
    );
    assert_config_error(
        &with_tail("[lag]\nwarn_factor = inf"),
        "lag.warn_factor",
        "",
    );
    assert_config_error(
        &with_tail("[lag]\nrpo_ms = 0"),
        "lag.rpo_ms",
        "at least 1 ms",
    );
    assert_config_error(
        &with_tail("[lag]\nfailed_after_ms = 500"),
        "lag.failed_after_ms",
        "heartbeat",
    );
    assert_config_error(
        &with_tail("[tuning]\nmax_batch_writes = 0"),
        "tuning.max_batch_writes",
        "1..=",
    );
    assert_config_error(
        &with_tail("[tuning]\nmax_in_flight = 0"),
        "tuning.max_in_flight",
        "1..=",
    );
    assert_config_error(
        &with_tail("[tuning]\nmax_in_flight = 4294967296"),
        "tuning.max_in_flight",
        "",
    );
    assert_config_error(
        &with_tail("[tuning]\ncheckpoint_every = 0"),
        "tuning.checkpoint_every",
        "",
    );
    assert_config_error(
        &with_tail("[tuning]\nheartbeat_ms = 0"),
        "tuning.heartbeat_ms",
        "at least 1 ms",
    );
    assert_config_error(
        &with_tail("[tuning]\nmax_key_bytes = 0"),
        "tuning.max_key_bytes",
        "",
    );
    assert_config_error(
        &with_tail("[tuning]\nmax_message_bytes = 100"),
        "tuning.max_message_bytes",
        "1024..=",
    );
    assert_config_error(
        &with_tail("[tuning]\nmax_value_bytes = 8388608"),
        "tuning.max_message_bytes",
        "cannot carry one write",
    );
}

#[test]
fn validate_checks_configs_built_in_code() {
    let ok = custom();
    ok.validate().unwrap();
    let field_of = |c: &NodeConfig| match c.validate() {
        Err(NodeError::Config { field, .. }) => field,
        other => panic!("{other:?}"),
    };

    let mut c = ok.clone();
    c.max_skew = Duration::MAX;
    assert_eq!(field_of(&c), "max_skew_ms");
    let mut c = ok.clone();
    c.lag.warn_factor = f64::NAN;
    assert_eq!(field_of(&c), "lag.warn_factor");
    let mut c = ok.clone();
    c.collections[2].config.replication =
        Replication::Regions(vec![RegionId::new(20), RegionId::new(9)]);
    assert_eq!(field_of(&c), "collections[2].replication[1]");
    let mut c = ok.clone();
    c.regions[2].id = RegionId::new(0);
    assert_eq!(field_of(&c), "regions[2].id");
    let mut c = ok.clone();
    c.regions[0].address = None;
    assert_eq!(field_of(&c), "regions[0].address");
    let mut c = ok.clone();
    c.regions.clear();
    assert_eq!(field_of(&c), "regions");
    let mut c = ok.clone();
    c.tuning.max_batch_writes = usize::MAX;
    assert_eq!(field_of(&c), "tuning.max_batch_writes");
    let mut c = ok.clone();
    c.tuning.max_key_bytes = usize::MAX;
    assert_eq!(field_of(&c), "tuning.max_key_bytes");
    let mut c = ok.clone();
    c.write_concern = WriteConcern::Regions(0);
    assert_eq!(field_of(&c), "write_concern");
    let mut c = ok.clone();
    c.write_concern = WriteConcern::Regions(u32::MAX);
    assert_eq!(field_of(&c), "write_concern");
    let mut c = ok.clone();
    c.collections[0].config.max_siblings = 0;
    assert_eq!(field_of(&c), "collections[0].max_siblings");

    // An invalid config still answers without panicking.
    let mut c = ok;
    c.region = "elsewhere".into();
    assert_eq!(field_of(&c), "region");
    assert_eq!(c.region_id(), RegionId::default());
    assert_eq!(c.peers().count(), 3);
    let _ = c.engine_config();
    let _ = c.to_toml();
}

#[test]
fn mangled_files_never_panic() {
    let text = std::fs::read_to_string(examples_dir().join("us-east.toml")).unwrap();
    // Every prefix.
    for (i, _) in text.char_indices() {
        let _ = NodeConfig::parse(&text[..i]);
    }
    // Every 3rd character replaced by something disruptive.
    let chars: Vec<char> = text.chars().collect();
    for i in (0..chars.len()).step_by(3) {
        for c in ['"', '[', ']', '=', '\n', '0', '-', '#', '.', '\u{e9}', '{'] {
            let mut m = chars.clone();
            m[i] = c;
            let m: String = m.into_iter().collect();
            if let Err(e) = NodeConfig::parse(&m) {
                assert!(!e.to_string().is_empty());
            }
        }
    }
}

#[test]
fn duplicate_keys_in_tables_are_located() {
    assert_config_error(
        &with_tail("[lag]\nrpo_ms = 1000\nrpo_ms = 2000"),
        "lag.rpo_ms",
        "duplicate key",
    );
    assert_config_error(
        &replaced("policy = \"mv\"", "policy = \"mv\"\npolicy = \"mv\""),
        "collections[1].policy",
        "duplicate key",
    );
}
