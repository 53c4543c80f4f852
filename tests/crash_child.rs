//! The child process of the kill -9 crash test (`crash_kill9.rs`).
//!
//! `crash-child <dir>` opens a region-0 node on a sled store in `dir` and
//! loops forever: it accepts local counter increments and applies batches of
//! replicated increments from region 1, committing (one flush) every few
//! steps and printing `ack <local seq> <region-1 seq>` once they are durable.
//! The parent kills it with SIGKILL at a random moment and checks the store.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use concord_clock::SystemClock;
use concord_core::{ClientOp, ClientWrite, Engine, PeerMessage, WriteBatch};
use concord_crdt::RegionId;
use concord_integration::crash::{self, LOCAL};
use concord_store::SledStore;

fn main() -> ExitCode {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: crash-child <dir>");
        return ExitCode::FAILURE;
    };
    match run(&dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crash-child: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(dir: &str) -> Result<(), Box<dyn std::error::Error>> {
    let store = SledStore::open(dir)?;
    let mut engine = Engine::open(crash::config(0), store, Arc::new(SystemClock))?;
    let remote = crash::remote_writes();
    let mut out = std::io::stdout().lock();
    let mut step: u64 = 0;
    loop {
        step += 1;
        if step.is_multiple_of(2) {
            engine.write(ClientWrite {
                collection: crash::collection(),
                key: LOCAL.to_vec(),
                op: ClientOp::Add(1),
                context: None,
            })?;
        } else {
            let from = usize::try_from(engine.cursor(RegionId::new(1)))?;
            let writes: Vec<_> = remote.iter().skip(from).take(25).cloned().collect();
            if !writes.is_empty() {
                let batch = WriteBatch {
                    origin: RegionId::new(1),
                    writes,
                };
                engine.receive(RegionId::new(1), PeerMessage::Batch(batch))?;
            }
        }
        if step.is_multiple_of(7) {
            let report = engine.commit()?;
            writeln!(
                out,
                "ack {} {}",
                report.local_durable,
                engine.cursor(RegionId::new(1))
            )?;
            out.flush()?;
        }
    }
}
