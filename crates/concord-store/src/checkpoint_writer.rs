//! The checkpoint writer: one long-lived thread per store that encodes and
//! writes the checkpoints it is handed, one at a time, while the engine
//! goes on.
//!
//! One thread for the store's life rather than one per checkpoint: starting
//! and ending a thread three times a second cost the spawn, and mimalloc's
//! collection of the ended thread's heap was about 6% of the writer's time.
//! The thread runs at a lower priority (see [`crate::background`]).

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;

use concord_core::{CheckpointDelta, CoreError};

use crate::record::backend;
use crate::state::{PrepareScratch, State};

/// The writer thread, and the checkpoint it was handed, if its outcome is
/// not collected yet.
pub(crate) struct CheckpointWriter {
    jobs: Option<Sender<CheckpointDelta>>,
    outcomes: Receiver<Result<(), CoreError>>,
    thread: Option<JoinHandle<()>>,
    /// A checkpoint was handed over and its outcome not collected yet.
    busy: bool,
}

/// What a writer that stopped reports (it panicked: nothing else ends it
/// while the store holds it).
fn stopped() -> CoreError {
    CoreError::Backend("the checkpoint writer stopped".into())
}

impl CheckpointWriter {
    /// Starts the thread, writing into `state` and flushing `db`.
    pub(crate) fn start(state: Arc<State>, db: sled::Db) -> Result<Self, CoreError> {
        let (jobs, inbox) = mpsc::channel::<CheckpointDelta>();
        let (outbox, outcomes) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("concord-checkpoint".into())
            .spawn(move || {
                crate::background::lower_this_thread();
                let mut scratch = PrepareScratch::default();
                for delta in inbox {
                    let outcome = State::prepare(delta, &mut scratch).and_then(|prepared| {
                        state.commit(prepared)?;
                        db.flush().map(drop).map_err(backend)
                    });
                    if outbox.send(outcome).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| CoreError::Backend(format!("cannot start the checkpoint writer: {e}")))?;
        Ok(Self {
            jobs: Some(jobs),
            outcomes,
            thread: Some(thread),
            busy: false,
        })
    }

    /// Hands a checkpoint over. The previous one's outcome must have been
    /// collected ([`CheckpointWriter::wait`]).
    pub(crate) fn hand_over(&mut self, delta: CheckpointDelta) -> Result<(), CoreError> {
        debug_assert!(
            !self.busy,
            "the previous checkpoint's outcome is collected first"
        );
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(delta)
            .map_err(|_| stopped())?;
        self.busy = true;
        Ok(())
    }

    /// Waits for the checkpoint handed over, if any, and returns its outcome.
    pub(crate) fn wait(&mut self) -> Result<(), CoreError> {
        if !std::mem::replace(&mut self.busy, false) {
            return Ok(());
        }
        self.outcomes.recv().unwrap_or_else(|_| Err(stopped()))
    }

    /// Whether the checkpoint handed over is still being written; once it
    /// is done, its outcome (an error surfaces here).
    pub(crate) fn in_flight(&mut self) -> Result<bool, CoreError> {
        if !self.busy {
            return Ok(false);
        }
        match self.outcomes.try_recv() {
            Ok(outcome) => {
                self.busy = false;
                outcome.map(|()| false)
            }
            Err(TryRecvError::Empty) => Ok(true),
            Err(TryRecvError::Disconnected) => {
                self.busy = false;
                Err(stopped())
            }
        }
    }
}

impl Drop for CheckpointWriter {
    /// Lets the thread finish what it was handed, then ends it.
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
