//! tagwatch watches Amazon ECR for new image tags and promotes them into a
//! GitOps repository that Argo CD syncs.
//!
//! # Layout
//!
//! One cycle flows through the modules in this order; each arrow is a
//! module boundary.
//!
//! ```text
//! registry ──► policy ──► manifest ──► trailers ──► gitops
//! (ECR list)   (choose)   (splice)     (message)    (commit, one push)
//!                 ╰──────── orchestrated by reconcile, looped by daemon ────────╯
//! ```
//!
//! - [`config`]: the TOML file, parsed then validated into types that cannot
//!   hold invalid state. No I/O beyond reading the files.
//! - [`registry`]: the [`registry::Registry`] trait; ECR's `DescribeImages`
//!   as the real implementation, an in-memory one for tests.
//! - [`policy`]: pure tag selection (ranges, filters, never-downgrade).
//! - [`manifest`]: pure, byte-minimal YAML scalar edits.
//! - [`format`]: what a target's scalar holds (tag, digest, image, template)
//!   and reading the current tag back out of it.
//! - [`trailers`]: the commit message and its `Tagwatch-*` trailers.
//! - [`gitops`]: the persistent bare clone; fetch, commit, push (blocking).
//! - [`reconcile`]: one cycle, from listings to a pushed branch.
//! - [`daemon`]: the polling loop and its shutdown.
//! - [`cli`]: the subcommands; `main.rs` only calls [`cli::main`]. Its
//!   `demo` module is `tagwatch demo`, a self-contained walkthrough on
//!   loopback.
//! - [`telemetry`]: logging set-up.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod daemon;
pub mod events;
pub mod forge;
pub mod format;
pub mod gitops;
pub mod manifest;
pub mod metrics;
pub mod policy;
pub mod propose;
pub mod reconcile;
pub mod registry;
pub mod server;
pub mod telemetry;
pub mod trailers;
