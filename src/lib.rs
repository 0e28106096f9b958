//! tagwatch watches Amazon ECR for new image tags and promotes them into a
//! GitOps repository that Argo CD syncs.
//!
//! # Layout
//!
//! One cycle flows through the modules in this order; each arrow is a
//! module boundary, and dependencies point one way (`scripts/check-layers`
//! checks that no two modules import each other).
//!
//! ```text
//! registry ──► cycle::plan ──► manifest ──► trailers ──► gitops ──► forge
//! (ECR list)   (decide, pure)  (splice)     (message)    (one push) (pull requests)
//!       ╰── cycle: list → decide → write → propose → report; looped by daemon ──╯
//! ```
//!
//! - [`app`]: from a config to the peers it names, for start-up and reload.
//! - [`config`]: the TOML file, parsed then validated into types that cannot
//!   hold invalid state. No I/O beyond reading the files.
//! - [`registry`]: the [`registry::Registry`] trait; ECR's `DescribeImages`
//!   as the real implementation, an in-memory one for tests.
//! - [`image`]: what a repository holds ([`image::Image`], [`image::Listing`]);
//!   plain data shared by registry, policy and the cycle.
//! - [`gate`]: promotion gates as data and pure rules (scan findings,
//!   signatures, their verdicts); a leaf below config, registry and cycle.
//! - [`argocd`]: Argo CD's REST API, read only: one Application's sync and
//!   health, for the Argo CD health gate.
//! - [`aws`]: the validated `[aws]` settings the ECR and SQS clients take.
//! - [`lifecycle`]: ECR lifecycle policies evaluated against a listing
//!   (which images a rule would expire); pure, for `lifecycle-check`.
//! - [`policy`]: pure tag selection (ranges, filters, never-downgrade).
//! - [`manifest`]: pure, byte-minimal YAML scalar edits.
//! - [`format`]: what a target's scalar holds (tag, digest, image, template)
//!   and reading the current tag back out of it.
//! - [`trailers`]: the commit message and its `Tagwatch-*` trailers.
//! - [`gitops`]: the persistent bare clone; fetch, commit, push (blocking).
//! - [`forge`]: GitHub and GitLab pull requests.
//! - [`ghapp`]: GitHub App installation tokens (JWT, mint, cache), shared
//!   by the forge client and git's HTTPS credentials.
//! - [`prometheus`]: the Prometheus query API the `analysis` gate asks.
//! - [`rollback`]: a rollback as data (its cause, an order, its trailers).
//! - [`cycle`]: one cycle; [`cycle::plan`] decides each target from facts.
//! - [`events`]: ECR push events from SQS wake a cycle.
//! - [`server`]: `/metrics`, `/healthz`, `/readyz`, `/status`, `/`.
//! - [`metrics`]: the Prometheus families (a leaf; [`cycle::export`] records).
//! - [`notify`]: each cycle's events to Slack or a signed webhook, from a
//!   bounded queue the cycle never waits on.
//! - [`daemon`]: the polling loop, reloads and shutdown.
//! - [`cli`]: the subcommands; `main.rs` only calls [`cli::main`]. Its
//!   `demo` module is `tagwatch demo`, a self-contained walkthrough on
//!   loopback.
//! - [`telemetry`]: logging set-up.
#![forbid(unsafe_code)]

pub mod app;
pub mod argocd;
pub mod aws;
pub mod cli;
pub mod config;
pub mod cycle;
pub mod daemon;
pub mod events;
pub mod forge;
pub mod format;
pub mod gate;
pub mod ghapp;
pub mod gitops;
pub mod image;
pub mod lifecycle;
pub mod manifest;
pub mod metrics;
pub mod notify;
pub mod policy;
pub mod prometheus;
pub mod registry;
pub mod rollback;
pub mod server;
pub mod telemetry;
pub mod trailers;
