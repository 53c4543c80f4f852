//! Runs every example of `examples/` (each one's `run` function, the same
//! code `cargo run --example NAME` runs), so that `cargo test` proves they
//! still work: each example checks its own outcome and fails if it does not
//! hold.

// Each example is its own crate under `cargo run --example` and declares
// `mod common;`; here the five share one crate, so `common` is loaded five
// times (once inside each example's module), which is what we want.
#![allow(clippy::duplicate_mod)]

#[allow(dead_code)]
#[path = "../examples/inventory.rs"]
mod inventory;

#[allow(dead_code)]
#[path = "../examples/profiles_skew.rs"]
mod profiles_skew;

#[allow(dead_code)]
#[path = "../examples/cart.rs"]
mod cart;

#[allow(dead_code)]
#[path = "../examples/accounts_failover.rs"]
mod accounts_failover;

#[allow(dead_code)]
#[path = "../examples/resolver.rs"]
mod resolver;

type Result = std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inventory_example() -> Result {
    inventory::run().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn profiles_skew_example() -> Result {
    profiles_skew::run().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cart_example() -> Result {
    cart::run().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accounts_failover_example() -> Result {
    accounts_failover::run().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resolver_example() -> Result {
    resolver::run().await
}
