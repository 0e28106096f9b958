//! The forge boundary: pull requests on GitHub and merge requests on
//! GitLab, for environments whose changes need a reviewer.
//!
//! [`Forge`] is the trait the cycle talks to: find the request for a
//! branch, open one, update its text, close it with a comment. The branch
//! itself is made and pushed by [`crate::gitops`]; a forge only ever sees
//! branch names. [`github`] speaks REST v3 (and GraphQL for auto-merge, the
//! only way GitHub offers it), [`gitlab`] REST v4. [`http`] is their shared
//! client: the token read from its file on every request, bounded retries,
//! and rate limits obeyed by waiting, never by looping. This module owns
//! the shape of a request and the classification of failures.

pub mod github;
pub mod gitlab;
mod http;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::config::{ForgeAuth, ForgeKind, ForgeSettings, ProposalOptions};

/// What tagwatch asks for: a request from `branch` into `base`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub branch: String,
    pub base: String,
    pub title: String,
    /// Markdown.
    pub body: String,
    pub options: ProposalOptions,
}

/// Where a request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Open,
    /// Closed without merging: a person declined it.
    Closed,
    Merged,
}

/// A pull request (GitHub) or merge request (GitLab) as the forge has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequest {
    /// GitHub's `number`, GitLab's `iid`: what the web page shows.
    pub number: u64,
    /// The page a person opens.
    pub url: String,
    pub state: State,
    /// Its title as the forge holds it: a branch rebuilt by a process that
    /// died before retitling the request is retitled by the next cycle.
    pub title: String,
    /// The commit the request's branch pointed at, as the forge last saw it.
    pub head_sha: Option<String>,
    /// GitHub's GraphQL id, needed for auto-merge.
    pub node_id: Option<String>,
    /// The labels it carries; a request without the configured ones was
    /// never decorated (its create answer was lost) and is decorated again.
    pub labels: Vec<String>,
}

/// Why a forge call failed, in the fixed set logs and metrics use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// 401 or 403: the token is wrong, expired or lacks a scope.
    Auth,
    /// Still rate limited after waiting as long as a cycle may.
    RateLimited,
    /// The forge refused the request as invalid (4xx).
    Rejected,
    /// 5xx after the retries.
    Server,
    /// No answer: connection, TLS or timeout.
    Transport,
    /// The answer was not what the API documents.
    Protocol,
    /// The token file could not be read.
    Token,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Auth => "auth",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Rejected => "rejected",
            ErrorKind::Server => "server",
            ErrorKind::Transport => "transport",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Token => "token",
        }
    }
}

/// A failed forge call. The message names the forge and the request,
/// never the token.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{forge}: {message}")]
pub struct ForgeError {
    pub forge: String,
    pub kind: ErrorKind,
    pub message: String,
}

pub type Reply<'a, T> = Pin<Box<dyn Future<Output = Result<T, ForgeError>> + Send + 'a>>;

/// A code-review host. Every method is one logical operation; retries and
/// rate limits are handled inside.
pub trait Forge: Send + Sync {
    /// The newest request from `branch` into `base`, open or not, or
    /// `None` if there never was one. Found by branch name, so a restart
    /// never opens a duplicate.
    fn find<'a>(&'a self, branch: &'a str, base: &'a str) -> Reply<'a, Option<PullRequest>>;

    /// Opens a request and applies its labels, reviewers, assignees and
    /// auto-merge. If another writer opened one for the branch first, that
    /// one is returned instead.
    fn open<'a>(&'a self, proposal: &'a Proposal) -> Reply<'a, PullRequest>;

    /// Applies labels, assignees, reviewers and auto-merge, best effort: a
    /// refusal is logged, not returned, because the request itself is what
    /// matters.
    fn decorate<'a>(&'a self, pr: &'a PullRequest, proposal: &'a Proposal) -> Reply<'a, ()>;

    /// Replaces the title and body (after the branch was rebuilt).
    fn update<'a>(&'a self, pr: &'a PullRequest, proposal: &'a Proposal) -> Reply<'a, ()>;

    /// Leaves `comment` on the request and closes it.
    fn close<'a>(&'a self, pr: &'a PullRequest, comment: &'a str) -> Reply<'a, ()>;

    /// Where request `number` stands in `repository` (the configured one
    /// when `None`): for preview environments, whose numbers come from
    /// image tags. GitHub `GET /repos/{owner}/{repo}/pulls/{number}`,
    /// GitLab `GET /projects/:id/merge_requests/:iid`.
    fn pull_state<'a>(&'a self, repository: Option<&'a str>, number: u64) -> Reply<'a, State>;
}

/// From a forge's list of requests for a branch (newest first): the open
/// one, else the newest.
fn pick(list: Vec<PullRequest>) -> Option<PullRequest> {
    let open = list.iter().position(|p| p.state == State::Open);
    list.into_iter().nth(open.unwrap_or(0))
}

/// Where `settings`' token comes from: its file, or the GitHub App's
/// shared cache (the one git's credentials use too).
fn credential(settings: &ForgeSettings) -> http::Credential {
    match &settings.auth {
        ForgeAuth::Token(file) => http::Credential::File(file.clone()),
        ForgeAuth::App(app) => http::Credential::Source(crate::ghapp::shared(app)),
    }
}

/// The forge `settings` describe.
pub fn connect(settings: &ForgeSettings) -> Result<Arc<dyn Forge>, ForgeError> {
    Ok(match settings.kind {
        ForgeKind::GitHub => Arc::new(github::GitHub::new(settings)?),
        ForgeKind::GitLab => Arc::new(gitlab::GitLab::new(settings)?),
    })
}
