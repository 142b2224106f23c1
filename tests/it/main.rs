//! The integration tests: one binary (as ripgrep does), one module per
//! area, shared harnesses in `support/`. Every test runs against real
//! parts on loopback: HTTP sites (`pivotwatch::app::demo::Site`, axum), an SMTP
//! server over TCP (`support::smtp`), sled files in tempdirs, `pivotwatch`
//! processes and signals. Never the internet.
//!
//! `cargo test --test it MODULE::` runs one area.

mod support;

mod check_integrity;
mod classify;
mod cli;
mod config;
mod corpus;
mod crash_delivery;
mod daemon;
mod delivery;
mod edges;
mod evidence;
mod fetch;
mod import;
mod pipeline;
mod registries;
mod registry_stream;
mod site;
mod store_integrity;
mod store_upgrade;
mod stream_equal;
mod tidy;
mod tokens_equal;
