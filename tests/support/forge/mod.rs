//! Stateful fakes of GitHub (REST v3 plus one GraphQL mutation) and GitLab
//! (REST v4), for driving tagwatch's forge client on loopback. Each fake
//! runs axum on its own tokio runtime on a background thread, bound to
//! `127.0.0.1:0`, and stops when it is dropped. Its state sits behind an
//! `Arc<Mutex<…>>` that a synchronous test reads through `state()` or the
//! convenience accessors.
//!
//! # Layout
//!
//! - [`server`]: what both share, written once: the request log, fault
//!   injection, the serve path ([`Fake`] and its `handle`), HTTP plumbing,
//!   body validation.
//! - [`github`], [`gitlab`]: each service's routes, handlers and wire
//!   format for faults.
//! - here: [`ForgeFake`], one view of either fake for tests that run the
//!   same scenario on both.
//!
//! # Where each behaviour comes from
//!
//! GitHub (docs.github.com, API version 2022-11-28):
//! - `rest/pulls/pulls`: list (`state` open|closed|all, default open;
//!   `head` as `user:ref-name`; `base`; `sort`; `direction`; `per_page` ≤ 100,
//!   default 30; `page`), create (`title`, `head`, `base` required, `body`,
//!   `draft`, `maintainer_can_modify`; 201; 422), get, update (`title`, `body`,
//!   `state` open|closed, `base`, `maintainer_can_modify`; 200; 422).
//! - `rest/issues/comments` (create: `body`; 201), `rest/issues/labels` (add:
//!   `{labels: [..]}`; 200 with every label on the issue; an empty array
//!   removes them all), `rest/issues/assignees` (add: `{assignees: [..]}`;
//!   201; users without push access are silently ignored),
//!   `rest/pulls/review-requests` (`reviewers`, `team_reviewers`; 201; 422).
//! - `graphql/reference/mutations#enablepullrequestautomerge`
//!   (`pullRequestId` is the PR's `node_id`; `mergeMethod` MERGE|SQUASH|REBASE).
//! - `rest/using-the-rest-api/troubleshooting-the-rest-api`: 400 "Problems
//!   parsing JSON" / "Body should be a JSON object"; 422 "Invalid request"
//!   for a missing parameter or a wrong type; 422 "Validation Failed" with
//!   `errors[].code` (missing_field, invalid, custom…); requests without a
//!   `User-Agent` are rejected (403).
//! - `rest/using-the-rest-api/rate-limits-for-the-rest-api`: primary limit =
//!   403 or 429 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset` in UTC
//!   epoch seconds; secondary limit = 403 or 429, a message naming the
//!   secondary limit, and `retry-after` seconds when present.
//! - Real-service behaviour documented only in issue trackers, reproduced here
//!   because a client must cope with it: a duplicate PR is 422 `custom`
//!   "A pull request already exists for owner:branch."; a missing head branch
//!   is 422 `{resource: PullRequest, field: head, code: invalid}`; `head`
//!   without the `owner:` prefix is *silently ignored* by the list endpoint
//!   (every open PR comes back); "Review cannot be requested from pull request
//!   author."; the auto-merge mutation answers HTTP 200 with an `errors`
//!   array (e.g. "Pull request Pull request is in clean status").
//!
//! GitLab (docs.gitlab.com/api):
//! - `merge_requests`: list (`state` opened|closed|locked|merged|all,
//!   **default all**; `source_branch`; `target_branch`; `labels`; `order_by`;
//!   `sort`; `page`; `per_page` default 20), create (`source_branch`,
//!   `target_branch`, `title` required; `description`, `labels` comma-separated,
//!   `assignee_id`, `assignee_ids`, `reviewer_ids`, `remove_source_branch`,
//!   `squash`, `allow_collaboration`; 201), update (at least one of the
//!   attributes; `state_event` close|reopen; `labels`, `add_labels`,
//!   `remove_labels`; 200), merge (`auto_merge`, added in 17.11, replaces the
//!   deprecated `merge_when_pipeline_succeeds`; 405 when the MR cannot be
//!   merged; 409 when `sha` is not the source branch's head).
//!   `draft` is true when the title starts with `Draft:`, `[Draft]` or
//!   `(Draft)`.
//! - `notes` (create on a merge request: `body`; 201), `users` (`username`
//!   exact lookup; returns an array).
//! - `rest/troubleshooting`: 400 for a missing required attribute, 401
//!   `{"message":"401 Unauthorized"}`, 404, 405, 409 conflict, 422, 429.
//! - `rest/authentication`: `PRIVATE-TOKEN` or `Authorization: Bearer`.
//!   `rest/index`: a project is named by id or by its URL-encoded path
//!   (`group%2Fsub%2Fproject`).
//! - Rate limits (`security/rate_limits`, `user/gitlab_com`): 429 with
//!   `Retry-After`, `RateLimit-Limit`, `-Observed`, `-Remaining`, `-Reset`
//!   (epoch seconds), `-ResetTime` (HTTP date); the body is the plain text
//!   "Retry later".
//! - From GitLab's source (`lib/api/merge_requests.rb`, `MergeRequest`
//!   validation): a duplicate (same source *and* target branch, opened) is
//!   409 `{"message":["Another open merge request already exists for this
//!   source branch: !N"]}`; the same source and target is 422; parameter
//!   errors from Grape are `{"error":"title is missing"}` (the docs' own
//!   example body is `{"message":"400 (Bad request) \"title\" not given"}`);
//!   model errors are `{"message":{"source_branch":["does not exist"]}}`.
//!
//! # Where the fakes are stricter than the services, on purpose
//!
//! To catch typos in our client:
//! - An unknown field in a JSON body, or a query parameter the fake does not
//!   know, is 422 naming it (both services ignore unknown fields). A field the
//!   docs list but the fake does not implement is 422 saying so.
//! - Writes must send JSON with `Content-Type: application/json` (415
//!   otherwise); parameters of a write in the query string are rejected.
//! - GitHub REST requests must send `Accept: application/vnd.github+json` (415
//!   otherwise) and `X-GitHub-Api-Version: 2022-11-28` (400 otherwise). The
//!   GraphQL endpoint needs only `User-Agent` and the token.
//! - A wrong method on a known route is 405 with an `Allow` header (GitHub
//!   answers 404 there, GitLab 404 or 405).
//! - Integers must be JSON numbers and booleans JSON booleans (GitLab would
//!   coerce `"5"` and `"true"`).
//!
//! # Where they are simpler
//!
//! - One repository (GitHub) or project (GitLab); no forks; PR numbers are
//!   not shared with plain issues. GitHub `labels` accepts only the
//!   documented `{labels: [names]}` form.
//! - Branch checks need a bare repository (`git_dir`); without one every
//!   branch exists and has commits.
//! - GraphQL is not parsed: the query must contain `mutation` and
//!   `enablePullRequestAutoMerge`, and the id must come in
//!   `variables.pullRequestId`. The response shape is fixed.
//! - GitLab auto-merge is recorded and answered 200 whatever the pipeline
//!   (the real service may answer 405 or 422 when there is no pipeline); a
//!   merge without `auto_merge` merges at once.
//!
//! # Fault injection
//!
//! `fail_next(Match, n, Fault)` queues a fault for the next `n` requests that
//! match; faults apply before any other handling (before authentication).
//! Every request is logged with its arrival `Instant` and the status it was
//! answered, so a test can check that a client waited as `retry-after` told
//! it to, and that a happy path drew no 4xx (`assert_no_client_errors`).
#![allow(dead_code)]

mod github;
mod github_app;
mod gitlab;
mod server;

pub use github::*;
#[allow(unused_imports)] // only the GitHub App tests use it
pub use github_app::FakeApp;
pub use gitlab::*;
pub use server::{Fake, Fault, Match, RequestRecord};

/// A pull request (GitHub) or merge request (GitLab) as a scenario run on
/// both forges checks it.
#[derive(Clone, Debug, PartialEq)]
pub struct Pr {
    /// GitHub's `number`, GitLab's `iid`.
    pub number: u64,
    pub open: bool,
    /// As the forge holds it (GitLab's `Draft: ` prefix included).
    pub title: String,
    pub body: String,
    pub branch: String,
    pub draft: bool,
    pub labels: Vec<String>,
    /// Users asked to review, by login (GitLab's ids mapped back to names).
    pub reviewers: Vec<String>,
    /// Teams asked to review (GitHub only).
    pub teams: Vec<String>,
    pub assignees: Vec<String>,
    pub auto_merge: bool,
    pub comments: Vec<String>,
}

/// Either fake, seen the same way: for scenarios written once and run on
/// both forges.
pub trait ForgeFake {
    /// `github` or `gitlab`, as `[forge] kind` spells it.
    fn kind(&self) -> &'static str;
    /// `[forge] repository`.
    fn repository(&self) -> &'static str;
    fn api_url(&self) -> String;
    /// The route that opens a request (`pulls.create`, `mr.create`).
    fn create_route(&self) -> &'static str;
    fn requests(&self) -> Vec<RequestRecord>;
    fn count(&self, route: &str) -> usize;
    fn fail_next(&self, matcher: Match, n: usize, fault: Fault);
    fn clear_faults(&self);
    fn assert_no_client_errors(&self);
    /// Every request the fake holds, oldest first.
    fn prs(&self) -> Vec<Pr>;
    /// An open request someone else opened from `branch` into `base`.
    fn seed(&self, branch: &str, base: &str, title: &str) -> u64;

    fn create_calls(&self) -> usize {
        self.count(self.create_route())
    }

    /// The `[forge]` section pointing at this fake, with the token in
    /// `token_file` (relative to the config) and `extra` lines appended.
    fn section(&self, token_file: &str, extra: &str) -> String {
        format!(
            "\n[forge]\nkind = \"{}\"\nrepository = \"{}\"\ntoken_file = \"{token_file}\"\napi_url = \"{}\"\n{extra}",
            self.kind(),
            self.repository(),
            self.api_url()
        )
    }
}

impl ForgeFake for GitHubFake {
    fn kind(&self) -> &'static str {
        "github"
    }
    fn repository(&self) -> &'static str {
        "acme/gitops"
    }
    fn api_url(&self) -> String {
        GitHubFake::api_url(self)
    }
    fn create_route(&self) -> &'static str {
        "pulls.create"
    }
    fn requests(&self) -> Vec<RequestRecord> {
        Fake::requests(self)
    }
    fn count(&self, route: &str) -> usize {
        Fake::count(self, route)
    }
    fn fail_next(&self, matcher: Match, n: usize, fault: Fault) {
        Fake::fail_next(self, matcher, n, fault)
    }
    fn clear_faults(&self) {
        Fake::clear_faults(self)
    }
    fn assert_no_client_errors(&self) {
        Fake::assert_no_client_errors(self)
    }
    fn seed(&self, branch: &str, base: &str, title: &str) -> u64 {
        self.seed_pull("octocat", branch, base, title)
    }
    fn prs(&self) -> Vec<Pr> {
        self.pulls()
            .into_iter()
            .map(|p| Pr {
                number: p.number,
                open: p.is_open(),
                title: p.title,
                body: p.body.unwrap_or_default(),
                branch: p.head_ref,
                draft: p.draft,
                labels: p.labels,
                reviewers: p.requested_reviewers,
                teams: p.requested_teams,
                assignees: p.assignees,
                auto_merge: p.auto_merge.is_some(),
                comments: p.comments.into_iter().map(|c| c.body).collect(),
            })
            .collect()
    }
}

impl ForgeFake for GitLabFake {
    fn kind(&self) -> &'static str {
        "gitlab"
    }
    fn repository(&self) -> &'static str {
        "acme/platform/gitops"
    }
    fn api_url(&self) -> String {
        GitLabFake::api_url(self)
    }
    fn create_route(&self) -> &'static str {
        "mr.create"
    }
    fn requests(&self) -> Vec<RequestRecord> {
        Fake::requests(self)
    }
    fn count(&self, route: &str) -> usize {
        Fake::count(self, route)
    }
    fn fail_next(&self, matcher: Match, n: usize, fault: Fault) {
        Fake::fail_next(self, matcher, n, fault)
    }
    fn clear_faults(&self) {
        Fake::clear_faults(self)
    }
    fn assert_no_client_errors(&self) {
        Fake::assert_no_client_errors(self)
    }
    fn seed(&self, branch: &str, base: &str, title: &str) -> u64 {
        let me = self.state().me.id;
        self.seed_merge_request(me + 1000, branch, base, title)
    }
    fn prs(&self) -> Vec<Pr> {
        let users = self.state().users.clone();
        let name = |id: u64| {
            users
                .iter()
                .find(|u| u.id == id)
                .map_or_else(|| format!("#{id}"), |u| u.username.clone())
        };
        self.merge_requests()
            .into_iter()
            .map(|m| Pr {
                number: m.iid,
                open: m.is_open(),
                draft: m.draft(),
                title: m.title,
                body: m.description.unwrap_or_default(),
                branch: m.source_branch,
                labels: m.labels,
                reviewers: m.reviewer_ids.iter().map(|&i| name(i)).collect(),
                teams: Vec::new(),
                assignees: m.assignee_ids.iter().map(|&i| name(i)).collect(),
                auto_merge: m.auto_merge,
                comments: m.notes.into_iter().map(|c| c.body).collect(),
            })
            .collect()
    }
}
