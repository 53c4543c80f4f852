//! Shared helpers for the Concord examples.
