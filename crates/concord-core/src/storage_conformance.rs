//! The conformance suite every [`crate::Storage`] implementation passes.
