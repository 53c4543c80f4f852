//! A client generated from `proto/concord.proto` by another toolchain
//! (Python grpcio-tools) against a real `concord` process: Put, Get,
//! Increment, and INVALID_ARGUMENT for an increment on an LWW collection.
//!
//! Ignored by default: a fresh machine has no grpcio. `.ci/run` installs
//! it in a venv and runs this with
//! `CONCORD_PYTHON=target/pyenv/bin/python cargo test -p concord-node --test python_client -- --ignored`.

mod process_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use process_support::{Cluster, Spec};

/// `$CONCORD_PYTHON` (default `python3`); a relative path is taken from
/// the workspace root if it is not there from here (cargo runs tests in
/// the package's directory).
fn python() -> PathBuf {
    let python =
        PathBuf::from(std::env::var("CONCORD_PYTHON").unwrap_or_else(|_| "python3".into()));
    if python.is_relative() && python.components().count() > 1 && !python.exists() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(&python);
        if root.exists() {
            return root;
        }
    }
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Python with grpcio and grpcio-tools (CONCORD_PYTHON); .ci/run installs them"]
async fn python_grpcio_client_puts_gets_and_increments() {
    // The Python script speaks plaintext without a token: an explicitly
    // insecure node (TLS and tokens are the Rust tests' business).
    let mut spec = Spec::new(1);
    spec.insecure = true;
    let mut cluster = Cluster::new(spec);
    cluster.start().await;
    let python = python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/client_test.py");
    let addr = format!("127.0.0.1:{}", cluster.nodes[0].port);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg(&script)
            .arg(&addr)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()))
    })
    .await
    .expect("python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "client_test.py failed ({}):\n{stdout}\n{stderr}\n{}",
        out.status,
        cluster.logs()
    );
    for check in [
        "ok generate",
        "ok put",
        "ok get",
        "ok get-missing",
        "ok increment",
        "ok invalid-argument",
        "ok status",
        "all checks passed",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(check)),
            "no {check:?} in the output:\n{stdout}\n{stderr}"
        );
    }
}
