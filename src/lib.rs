//! pivotwatch: watches company registries and supplier catalogues for the
//! entities on analysts' watchlists and raises explainable alerts when a
//! firm's activity pivots (e.g. a scrap-metal trader that starts listing
//! Western processors).
//!
//! # Layout
//!
//! See `ARCHITECTURE.md` for the module map and its invariants.

#![warn(missing_docs)]

pub mod classify;
pub mod fetch;
pub mod record;
pub mod config;
pub mod extract;
pub mod schedule;
pub mod store;
pub mod diff;
pub mod detect;
pub mod alert;
pub mod check;
pub mod app;
pub mod cli;
pub mod demo;
