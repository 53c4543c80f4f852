//! The security settings of the configuration (`[tls]`, `[[clients]]`,
//! `[limits]`): errors naming the field, and `concord certs` and `concord
//! token` making what a node started from files needs.

use std::process::Command;

use concord_node::NodeError;
use concord_node::client::{Client, ClientOptions, Read};
use concord_node::config::{NodeConfig, TlsSetting};

const CONCORD: &str = env!("CARGO_BIN_EXE_concord");

/// A valid config with `security` in place of `[tls]` and `[[clients]]`.
fn config(security: &str) -> String {
    format!(
        r#"
region = "us-east"
listen = "127.0.0.1:0"
data_dir = "./data/us-east"

{security}

[[regions]]
name = "us-east"
id = 1

[[regions]]
name = "eu-west"
id = 2
address = "https://127.0.0.1:7102"

[[collections]]
name = "profiles"
policy = "lww-hlc"

[[collections]]
name = "carts"
policy = "mv"
"#
    )
}

const TLS: &str =
    "[tls]\nca = \"certs/ca.pem\"\ncert = \"certs/us-east.pem\"\nkey = \"certs/us-east.key\"";

fn client(extra: &str) -> String {
    format!(
        "[[clients]]\nname = \"app\"\ntoken_sha256 = \"{}\"\n{extra}",
        concord_node::auth::hash_token("app-token")
    )
}

#[track_caller]
fn assert_field(text: &str, field: &str, in_reason: &str) {
    match NodeConfig::parse(text) {
        Err(NodeError::Config { field: f, reason }) => {
            assert_eq!(f, field, "reason: {reason}\n---\n{text}");
            assert!(
                reason.contains(in_reason),
                "{reason:?} should contain {in_reason:?}"
            );
        }
        Ok(_) => panic!("parsed:\n{text}"),
        Err(other) => panic!("{other}"),
    }
}

#[test]
fn a_config_without_tls_or_insecure_is_refused() {
    assert_field(&config(""), "tls", "insecure = true");
    assert_field(&config(&client("")), "tls", "missing");
    // Explicit plaintext, with or without clients.
    let open = NodeConfig::parse(&config("[tls]\ninsecure = true")).expect("insecure");
    assert_eq!(open.tls, Some(TlsSetting::Insecure));
    assert!(open.clients.is_empty());
    NodeConfig::parse(&config(&format!(
        "[tls]\ninsecure = true\n\n{}",
        client("")
    )))
    .expect("insecure with tokens");
    // A config built in code without tls.
    let mut c = open.clone();
    c.tls = None;
    assert!(matches!(c.validate(), Err(NodeError::Config { field, .. }) if field == "tls"));
}

#[test]
fn tls_settings_name_their_field() {
    assert_field(&config(TLS), "clients", "token");
    assert_field(
        &config(&format!("{TLS}\ninsecure = true\n\n{}", client(""))),
        "tls.insecure",
        "choose",
    );
    assert_field(
        &config(&format!(
            "[tls]\nca = \"ca.pem\"\ncert = \"c.pem\"\n\n{}",
            client("")
        )),
        "tls.key",
        "missing",
    );
    assert_field(
        &config(&format!("[tls]\ninsecure = false\n\n{}", client(""))),
        "tls.ca",
        "missing",
    );
    assert_field(
        &config("[tls]\ninsecure = true\nverify = false"),
        "tls.verify",
        "unknown field",
    );
    let c = NodeConfig::parse(&config(&format!("{TLS}\n\n{}", client("read = [\"*\"]"))))
        .expect("valid");
    assert_eq!(NodeConfig::parse(&c.to_toml()).expect("round trip"), c);
}

#[test]
fn clients_name_their_field() {
    let with = |clients: &str| config(&format!("[tls]\ninsecure = true\n\n{clients}"));
    assert_field(
        &with("[[clients]]\nname = \"a\"\ntoken_sha256 = \"abc\""),
        "clients[0].token_sha256",
        "concord token hash",
    );
    assert_field(
        &with(&format!(
            "[[clients]]\nname = \"a\"\ntoken_sha256 = \"{}\"",
            "g".repeat(64)
        )),
        "clients[0].token_sha256",
        "sha256",
    );
    assert_field(
        &with(&client("read = [\"profiles\", \"nope\"]")),
        "clients[0].read[1]",
        "not a collection",
    );
    assert_field(
        &with(&client("write = [\"nope\"]")),
        "clients[0].write[0]",
        "not a collection",
    );
    assert_field(
        &with(&client("admin = \"yes\"")),
        "clients[0].admin",
        "invalid type",
    );
    assert_field(
        &with(&format!("{}\n\n{}", client(""), client(""))),
        "clients[1].name",
        "duplicate client",
    );
    assert_field(
        &with(&format!(
            "{}\n\n{}",
            client(""),
            client("").replace("name = \"app\"", "name = \"other\"")
        )),
        "clients[1].token_sha256",
        "the same token",
    );
    assert_field(
        &with("[[clients]]\nname = \"\"\ntoken_sha256 = \"x\""),
        "clients[0].name",
        "empty",
    );
}

#[test]
fn limits_name_their_field() {
    let with = |limits: &str| config(&format!("[tls]\ninsecure = true\n\n[limits]\n{limits}"));
    assert_field(
        &with("max_write_many = 0"),
        "limits.max_write_many",
        "not in",
    );
    assert_field(
        &with("max_peer_batch = 10"),
        "limits.max_peer_batch",
        "tuning.max_batch_writes",
    );
    assert_field(
        &with("max_concurrent_per_client = 0"),
        "limits.max_concurrent_per_client",
        "not in",
    );
    assert_field(
        &with("max_concurrent_per_peer = 0"),
        "limits.max_concurrent_per_peer",
        "not in",
    );
    assert_field(&with("max_batch = 3"), "limits.max_batch", "unknown field");
    // The collections' sibling caps (16 by default) stay under
    // limits.max_siblings.
    assert_field(
        &with("max_siblings = 8"),
        "collections[0].max_siblings",
        "limits.max_siblings",
    );
    let c = NodeConfig::parse(&with("max_write_many = 7\nmax_siblings = 16")).expect("valid");
    assert_eq!(c.limits.max_write_many, 7);
    assert_eq!(NodeConfig::parse(&c.to_toml()).expect("round trip"), c);
}

fn concord(args: &[&str]) -> (bool, String) {
    let out = Command::new(CONCORD)
        .args(args)
        .output()
        .expect("run concord");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn concord_token_hashes_and_makes_tokens() {
    let (ok, out) = concord(&["token", "hash", "secret"]);
    assert!(ok, "{out}");
    assert_eq!(
        out.trim(),
        "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
    );
    let (ok, out) = concord(&["token", "new"]);
    assert!(ok, "{out}");
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {out}"))
    };
    let token = field("token:");
    assert_eq!(token.len(), 64);
    assert_eq!(
        field("token_sha256:"),
        concord_node::auth::hash_token(&token)
    );
}

/// `concord certs` and `concord token` make everything a node started from
/// its TOML file needs; a client with the CA and the token reads and
/// writes, one without the CA does not connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_runs_from_files_made_by_concord_certs() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let certs = dir.path().join("certs");
    let (ok, out) = concord(&[
        "certs",
        "--out",
        certs.to_str().expect("utf-8"),
        "--regions",
        "us-east,eu-west",
        "--hosts",
        "node1.example.com",
    ]);
    assert!(ok, "{out}");
    for f in [
        "ca.pem",
        "ca.key",
        "us-east.pem",
        "us-east.key",
        "eu-west.pem",
    ] {
        assert!(certs.join(f).exists(), "{f}: {out}");
    }
    let pem = std::fs::read(certs.join("eu-west.pem")).expect("read");
    let der = concord_node::tls::pem_certs(&pem, "cert").expect("a certificate");
    assert_eq!(concord_node::tls::cert_regions(&der[0]), ["eu-west"]);

    let text = config(&format!(
        "{TLS}\n\n{}",
        client("read = [\"*\"]\nwrite = [\"profiles\"]")
    ))
    .replace(
        "./data/us-east",
        &dir.path().join("data").display().to_string(),
    );
    let path = dir.path().join("us-east.toml");
    std::fs::write(&path, text).expect("write the config");
    let config = NodeConfig::load(&path).expect("the config loads");
    let Some(TlsSetting::Files(files)) = &config.tls else {
        panic!("TLS");
    };
    assert_eq!(
        files.cert,
        dir.path().join("certs/us-east.pem"),
        "relative to the file"
    );
    let node = concord_node::node::Node::start(config)
        .await
        .expect("starts");
    let addr = format!("https://{}", node.addr());

    let options = ClientOptions::default()
        .ca_file(&certs.join("ca.pem"))
        .expect("the CA")
        .token("app-token");
    let mut c = Client::connect_with(&addr, &options)
        .await
        .expect("connects");
    let t = c.put("profiles", b"k", b"v").await.expect("put");
    assert!(matches!(
        c.get_after("profiles", b"k", t).await.expect("get"),
        Read::Value { .. }
    ));
    // Without the CA: no TLS connection to speak of.
    let anon = Client::connect_with(&addr, &ClientOptions::default().token("app-token")).await;
    if let Ok(mut anon) = anon {
        assert!(anon.get("profiles", b"k").await.is_err());
    }
    // The CLI with --ca and --token.
    let ca = certs.join("ca.pem");
    let (ok, out) = concord(&[
        "get",
        "--addr",
        &addr,
        "--ca",
        ca.to_str().expect("utf-8"),
        "--token",
        "app-token",
        "profiles",
        "k",
    ]);
    assert!(ok, "{out}");
    assert!(out.starts_with('v'), "{out}");
    let (ok, out) = concord(&[
        "put",
        "--addr",
        &addr,
        "--ca",
        ca.to_str().expect("utf-8"),
        "--token",
        "wrong",
        "profiles",
        "k",
        "w",
    ]);
    assert!(!ok && out.contains("Unauthenticated"), "{out}");
    node.shutdown().await.expect("shutdown");
}
