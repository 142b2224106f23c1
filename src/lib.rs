//! pivotwatch: watches company registries and supplier catalogues for the
//! entities on analysts' watchlists and raises explainable alerts when a
//! firm's activity pivots (e.g. a scrap-metal trader that starts listing
//! Western processors).
//!
//! # Layout
//!
//! See `ARCHITECTURE.md` for the module map and its invariants.

#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod alert;
pub mod app;
pub mod check;
pub mod classify;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod detect;
pub mod diff;
pub mod export;
pub mod extract;
pub mod fetch;
pub mod model;
pub mod read;
pub mod record;
pub mod registry;
pub mod retry;
pub mod schedule;
pub mod site;
pub mod store;
pub mod text;
