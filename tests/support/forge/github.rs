//! The GitHub fake: REST v3 pull requests, issues' comments, labels and
//! assignees, review requests, and the one GraphQL mutation tagwatch uses
//! (`enablePullRequestAutoMerge`). Logging, faults and serving are
//! [`super::server`]'s; this file holds GitHub's routes and answers.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::response::Response;
use serde_json::{Map, Value, json};

use super::server::*;

/// The REST API version the GitHub fake requires in `X-GitHub-Api-Version`.
pub const GITHUB_API_VERSION: &str = "2022-11-28";

const GH_DOCS: &str = "https://docs.github.com/rest";
const GH_DOC_LIST: &str = "https://docs.github.com/rest/pulls/pulls#list-pull-requests";
const GH_DOC_CREATE: &str = "https://docs.github.com/rest/pulls/pulls#create-a-pull-request";
const GH_DOC_GET: &str = "https://docs.github.com/rest/pulls/pulls#get-a-pull-request";
const GH_DOC_UPDATE: &str = "https://docs.github.com/rest/pulls/pulls#update-a-pull-request";
const GH_DOC_COMMENT: &str = "https://docs.github.com/rest/issues/comments#create-an-issue-comment";
const GH_DOC_LABELS: &str = "https://docs.github.com/rest/issues/labels#add-labels-to-an-issue";
const GH_DOC_ASSIGNEES: &str =
    "https://docs.github.com/rest/issues/assignees#add-assignees-to-an-issue";
const GH_DOC_REVIEWERS: &str =
    "https://docs.github.com/rest/pulls/review-requests#request-reviewers-for-a-pull-request";
const GH_DOC_GRAPHQL: &str = "https://docs.github.com/graphql";
const GH_DOC_RATE: &str = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api";

/// How a [`GitHubFake`] starts.
#[derive(Clone, Debug)]
pub struct GitHubConfig {
    pub owner: String,
    pub repo: String,
    pub token: String,
    /// The login the token belongs to: the author of created PRs.
    pub login: String,
    /// `""` for api.github.com, `/api/v3` for GitHub Enterprise Server.
    pub path_prefix: String,
    /// A bare repository whose `refs/heads/*` decide which branches exist.
    pub git_dir: Option<PathBuf>,
}

impl GitHubConfig {
    pub fn new(owner: &str, repo: &str) -> GitHubConfig {
        GitHubConfig {
            owner: owner.to_string(),
            repo: repo.to_string(),
            token: "ghp_faketoken".to_string(),
            login: "tagwatch-bot".to_string(),
            path_prefix: String::new(),
            git_dir: None,
        }
    }

    pub fn token(mut self, token: &str) -> Self {
        self.token = token.to_string();
        self
    }

    pub fn login(mut self, login: &str) -> Self {
        self.login = login.to_string();
        self
    }

    /// Serve under `/api/v3` (REST) and `/api/graphql`, as GitHub
    /// Enterprise Server does.
    pub fn enterprise(mut self) -> Self {
        self.path_prefix = "/api/v3".to_string();
        self
    }

    pub fn path_prefix(mut self, prefix: &str) -> Self {
        self.path_prefix = prefix.trim_end_matches('/').to_string();
        self
    }

    pub fn git_dir(mut self, dir: &Path) -> Self {
        self.git_dir = Some(dir.to_path_buf());
        self
    }
}

/// Auto-merge as enabled through GraphQL.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoMerge {
    /// `MERGE`, `SQUASH` or `REBASE`.
    pub merge_method: String,
    pub enabled_by: String,
    pub enabled_at: String,
}

/// A pull request in the GitHub fake, with everything done to it.
#[derive(Clone, Debug, PartialEq)]
pub struct PullRequest {
    pub number: u64,
    pub node_id: String,
    pub author: String,
    pub title: String,
    pub body: Option<String>,
    /// `open` or `closed`.
    pub state: String,
    pub draft: bool,
    pub merged: bool,
    pub maintainer_can_modify: bool,
    pub head_owner: String,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    pub base_sha: String,
    pub labels: Vec<String>,
    pub assignees: Vec<String>,
    pub requested_reviewers: Vec<String>,
    pub requested_teams: Vec<String>,
    pub auto_merge: Option<AutoMerge>,
    pub comments: Vec<Comment>,
    pub created_at: String,
    pub updated_at: String,
    pub closed_at: Option<String>,
}

impl PullRequest {
    pub fn is_open(&self) -> bool {
        self.state == "open"
    }

    /// `owner:branch`, as GitHub's `head.label`.
    pub fn head_label(&self) -> String {
        format!("{}:{}", self.head_owner, self.head_ref)
    }
}

/// Everything the GitHub fake holds; tests may read and change it.
pub struct GitHubState {
    pub owner: String,
    pub repo: String,
    pub token: String,
    pub login: String,
    pub git_dir: Option<PathBuf>,
    /// Users with push access; `None` means everyone. Assignees outside it
    /// are silently dropped, reviewers outside it are a 422.
    pub collaborators: Option<Vec<String>>,
    /// When set, the auto-merge mutation answers with this GraphQL error,
    /// e.g. "Pull request Pull request is in clean status".
    pub auto_merge_error: Option<String>,
    pub pulls: Vec<PullRequest>,
    /// With [`GitHubFake::enable_app`]: the GitHub App whose installation
    /// tokens the API accepts besides `token`.
    pub app: Option<super::github_app::FakeApp>,
    pub log: Log,
    root_url: String,
    path_prefix: String,
    next_comment_id: u64,
}

impl GitHubState {
    pub fn api_url(&self) -> String {
        format!("{}{}", self.root_url, self.path_prefix)
    }

    /// Where HTML pages live: the root for both github.com-style and
    /// Enterprise-style prefixes (`https://host/owner/repo/pull/1`).
    pub fn web_url(&self) -> String {
        self.root_url.clone()
    }

    fn graphql_path(&self) -> String {
        match self.path_prefix.strip_suffix("/v3") {
            Some(api) => format!("{api}/graphql"),
            None => format!("{}/graphql", self.path_prefix),
        }
    }

    fn is_collaborator(&self, login: &str) -> bool {
        self.collaborators
            .as_ref()
            .is_none_or(|c| c.iter().any(|x| x.eq_ignore_ascii_case(login)))
    }

    fn pull_index(&self, number: u64) -> Option<usize> {
        self.pulls.iter().position(|p| p.number == number)
    }

    fn open_duplicate(&self, head_owner: &str, head_ref: &str, base_ref: &str, not: u64) -> bool {
        self.pulls.iter().any(|p| {
            p.number != not
                && p.is_open()
                && p.head_owner.eq_ignore_ascii_case(head_owner)
                && p.head_ref == head_ref
                && p.base_ref == base_ref
        })
    }

    fn user_json(&self, login: &str) -> Value {
        let id = 1000 + fnv(&login.to_ascii_lowercase()) % 9_000_000;
        json!({
            "login": login,
            "id": id,
            "node_id": format!("U_fake{id}"),
            "url": format!("{}/users/{login}", self.api_url()),
            "html_url": format!("{}/{login}", self.web_url()),
            "type": "User",
            "site_admin": false,
        })
    }

    fn label_json(&self, name: &str) -> Value {
        let id = fnv(name) % 1_000_000_000;
        json!({
            "id": id,
            "node_id": format!("LA_fake{id}"),
            "url": format!("{}/repos/{}/{}/labels/{name}", self.api_url(), self.owner, self.repo),
            "name": name,
            "color": "ededed",
            "default": false,
            "description": null,
        })
    }

    fn repo_json(&self) -> Value {
        json!({
            "id": 4242,
            "node_id": "R_fake4242",
            "name": self.repo,
            "full_name": format!("{}/{}", self.owner, self.repo),
            "owner": self.user_json(&self.owner),
            "private": true,
            "html_url": format!("{}/{}/{}", self.web_url(), self.owner, self.repo),
            "url": format!("{}/repos/{}/{}", self.api_url(), self.owner, self.repo),
        })
    }

    fn html_url(&self, number: u64) -> String {
        format!(
            "{}/{}/{}/pull/{number}",
            self.web_url(),
            self.owner,
            self.repo
        )
    }

    fn pull_json(&self, p: &PullRequest) -> Value {
        let repo_api = format!("{}/repos/{}/{}", self.api_url(), self.owner, self.repo);
        let users =
            |list: &[String]| -> Vec<Value> { list.iter().map(|u| self.user_json(u)).collect() };
        json!({
            "url": format!("{repo_api}/pulls/{}", p.number),
            "id": 100_000 + p.number,
            "node_id": p.node_id,
            "html_url": self.html_url(p.number),
            "issue_url": format!("{repo_api}/issues/{}", p.number),
            "comments_url": format!("{repo_api}/issues/{}/comments", p.number),
            "number": p.number,
            "state": p.state,
            "locked": false,
            "title": p.title,
            "user": self.user_json(&p.author),
            "body": p.body,
            "labels": p.labels.iter().map(|l| self.label_json(l)).collect::<Vec<_>>(),
            "milestone": null,
            "draft": p.draft,
            "head": {
                "label": p.head_label(),
                "ref": p.head_ref,
                "sha": p.head_sha,
                "user": self.user_json(&p.head_owner),
                "repo": self.repo_json(),
            },
            "base": {
                "label": format!("{}:{}", self.owner, p.base_ref),
                "ref": p.base_ref,
                "sha": p.base_sha,
                "user": self.user_json(&self.owner),
                "repo": self.repo_json(),
            },
            "assignee": p.assignees.first().map(|a| self.user_json(a)),
            "assignees": users(&p.assignees),
            "requested_reviewers": users(&p.requested_reviewers),
            "requested_teams": p.requested_teams.iter().map(|t| json!({
                "id": fnv(t) % 1_000_000,
                "slug": t,
                "name": t,
            })).collect::<Vec<_>>(),
            "auto_merge": p.auto_merge.as_ref().map(|a| json!({
                "enabled_by": self.user_json(&a.enabled_by),
                "merge_method": a.merge_method.to_ascii_lowercase(),
                "commit_title": null,
                "commit_message": null,
            })),
            "merged": p.merged,
            "mergeable": null,
            "maintainer_can_modify": p.maintainer_can_modify,
            "author_association": "MEMBER",
            "created_at": p.created_at,
            "updated_at": p.updated_at,
            "closed_at": p.closed_at,
            "merged_at": if p.merged { json!(p.closed_at) } else { Value::Null },
        })
    }

    /// A PR seen through the issues API (the assignees endpoint answers so).
    fn issue_json(&self, p: &PullRequest) -> Value {
        let repo_api = format!("{}/repos/{}/{}", self.api_url(), self.owner, self.repo);
        json!({
            "url": format!("{repo_api}/issues/{}", p.number),
            "id": 200_000 + p.number,
            "node_id": format!("I_fake{}", p.number),
            "number": p.number,
            "html_url": self.html_url(p.number),
            "title": p.title,
            "state": p.state,
            "user": self.user_json(&p.author),
            "body": p.body,
            "labels": p.labels.iter().map(|l| self.label_json(l)).collect::<Vec<_>>(),
            "assignee": p.assignees.first().map(|a| self.user_json(a)),
            "assignees": p.assignees.iter().map(|a| self.user_json(a)).collect::<Vec<_>>(),
            "comments": p.comments.len(),
            "pull_request": {
                "url": format!("{repo_api}/pulls/{}", p.number),
                "html_url": self.html_url(p.number),
            },
            "created_at": p.created_at,
            "updated_at": p.updated_at,
            "closed_at": p.closed_at,
        })
    }

    fn comment_json(&self, number: u64, c: &Comment) -> Value {
        let repo_api = format!("{}/repos/{}/{}", self.api_url(), self.owner, self.repo);
        json!({
            "id": c.id,
            "node_id": format!("IC_fake{}", c.id),
            "url": format!("{repo_api}/issues/comments/{}", c.id),
            "html_url": format!("{}#issuecomment-{}", self.html_url(number), c.id),
            "issue_url": format!("{repo_api}/issues/{number}"),
            "body": c.body,
            "user": self.user_json(&c.author),
            "created_at": c.created_at,
            "updated_at": c.created_at,
            "author_association": "MEMBER",
        })
    }

    fn new_pull(
        &mut self,
        author: &str,
        title: &str,
        head_ref: &str,
        base_ref: &str,
        shas: (String, String),
    ) -> u64 {
        let number = self.pulls.iter().map(|p| p.number).max().unwrap_or(0) + 1;
        let now = now_rfc3339();
        self.pulls.push(PullRequest {
            number,
            node_id: format!("PR_kwDOfake{number:06}"),
            author: author.to_string(),
            title: title.to_string(),
            body: None,
            state: "open".to_string(),
            draft: false,
            merged: false,
            maintainer_can_modify: false,
            head_owner: self.owner.clone(),
            head_ref: head_ref.to_string(),
            head_sha: shas.0,
            base_ref: base_ref.to_string(),
            base_sha: shas.1,
            labels: Vec::new(),
            assignees: Vec::new(),
            requested_reviewers: Vec::new(),
            requested_teams: Vec::new(),
            auto_merge: None,
            comments: Vec::new(),
            created_at: now.clone(),
            updated_at: now,
            closed_at: None,
        });
        number
    }
}

/// A stateful fake of the GitHub REST API (and the auto-merge mutation).
pub type GitHubFake = Fake<GitHubState>;

impl GitHubFake {
    pub fn start(config: GitHubConfig) -> GitHubFake {
        let (listener, root_url) = bind();
        Fake::serve(
            listener,
            GitHubState {
                owner: config.owner,
                repo: config.repo,
                token: config.token,
                login: config.login,
                git_dir: config.git_dir,
                collaborators: None,
                auto_merge_error: None,
                pulls: Vec::new(),
                app: None,
                log: Log::default(),
                root_url,
                path_prefix: config.path_prefix,
                next_comment_id: 1,
            },
        )
    }

    /// The `api_url` to configure: `http://127.0.0.1:PORT` or
    /// `http://127.0.0.1:PORT/api/v3`.
    pub fn api_url(&self) -> String {
        self.state().api_url()
    }

    /// `…/graphql`, or `…/api/graphql` under the Enterprise prefix.
    pub fn graphql_url(&self) -> String {
        let s = self.state();
        format!("{}{}", s.root_url, s.graphql_path())
    }

    /// Accepts `app`'s installation tokens (minted at
    /// `/app/installations/{id}/access_tokens`) from now on.
    pub fn enable_app(&self, app: super::github_app::FakeApp) {
        self.state().app = Some(app);
    }

    pub fn set_token(&self, token: &str) {
        self.state().token = token.to_string();
    }

    pub fn set_git_dir(&self, dir: Option<&Path>) {
        self.state().git_dir = dir.map(Path::to_path_buf);
    }

    pub fn set_collaborators(&self, logins: Option<&[&str]>) {
        self.state().collaborators = logins.map(|l| l.iter().map(|s| s.to_string()).collect());
    }

    pub fn set_auto_merge_error(&self, message: Option<&str>) {
        self.state().auto_merge_error = message.map(str::to_string);
    }

    /// An open PR that someone else opened, from `head_ref` into `base_ref`.
    pub fn seed_pull(&self, author: &str, head_ref: &str, base_ref: &str, title: &str) -> u64 {
        let mut s = self.state();
        let shas = (fake_sha(head_ref), fake_sha(base_ref));
        s.new_pull(author, title, head_ref, base_ref, shas)
    }

    pub fn pulls(&self) -> Vec<PullRequest> {
        self.state().pulls.clone()
    }

    pub fn pull(&self, number: u64) -> Option<PullRequest> {
        self.state()
            .pulls
            .iter()
            .find(|p| p.number == number)
            .cloned()
    }

    pub fn open_pulls(&self) -> Vec<PullRequest> {
        self.state()
            .pulls
            .iter()
            .filter(|p| p.is_open())
            .cloned()
            .collect()
    }

    pub fn create_calls(&self) -> usize {
        self.count("pulls.create")
    }
}

fn gh_headers() -> Vec<(String, String)> {
    vec![
        (
            "x-github-api-version-selected".to_string(),
            GITHUB_API_VERSION.to_string(),
        ),
        ("x-ratelimit-limit".to_string(), "5000".to_string()),
        ("x-ratelimit-remaining".to_string(), "4999".to_string()),
        ("x-ratelimit-used".to_string(), "1".to_string()),
        ("x-ratelimit-reset".to_string(), epoch_in(3600).to_string()),
        ("x-ratelimit-resource".to_string(), "core".to_string()),
    ]
}

fn gh_json(status: u16, body: Value) -> Response {
    respond(
        status,
        gh_headers(),
        "application/json; charset=utf-8",
        body.to_string(),
    )
}

fn gh_error(status: u16, message: &str, docs: &str) -> Response {
    gh_json(
        status,
        json!({"message": message, "documentation_url": docs, "status": status.to_string()}),
    )
}

fn gh_validation(docs: &str, errors: Value) -> Response {
    gh_json(
        422,
        json!({
            "message": "Validation Failed",
            "errors": errors,
            "documentation_url": docs,
            "status": "422",
        }),
    )
}

fn gh_invalid(docs: &str, detail: &str) -> Response {
    gh_error(422, &format!("Invalid request.\n\n{detail}"), docs)
}

fn gh_field_error(docs: &str, e: FieldError) -> Response {
    match e {
        FieldError::Unknown(k) => gh_invalid(docs, &format!("\"{k}\" is not a permitted key.")),
        FieldError::Unsupported(k) => gh_invalid(
            docs,
            &format!("\"{k}\" is documented but not implemented by the fake."),
        ),
        FieldError::Missing(m) => gh_invalid(docs, &format!("\"{}\" wasn't supplied.", m[0])),
        FieldError::WrongType {
            field,
            value,
            expected,
        } => gh_invalid(
            docs,
            &format!("For 'properties/{field}', {value} is not {expected}."),
        ),
    }
}

fn gh_body_problem(docs: &str, p: BodyProblem) -> Response {
    match p {
        BodyProblem::ContentType(ct) => gh_error(
            415,
            &format!(
                "fake: a JSON body needs Content-Type: application/json (got {})",
                ct.as_deref().unwrap_or("none")
            ),
            docs,
        ),
        BodyProblem::NotJson => gh_error(400, "Problems parsing JSON", docs),
        BodyProblem::NotObject => gh_error(400, "Body should be a JSON object", docs),
    }
}

fn gh_fault(f: &Fault) -> Response {
    match f {
        Fault::RateLimit { reset_in_secs } => {
            let mut h = gh_headers();
            h.retain(|(k, _)| !k.starts_with("x-ratelimit"));
            h.extend([
                ("x-ratelimit-limit".to_string(), "5000".to_string()),
                ("x-ratelimit-remaining".to_string(), "0".to_string()),
                ("x-ratelimit-used".to_string(), "5000".to_string()),
                (
                    "x-ratelimit-reset".to_string(),
                    epoch_in(*reset_in_secs).to_string(),
                ),
                ("x-ratelimit-resource".to_string(), "core".to_string()),
            ]);
            let body = json!({
                "message": "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID FAKE:0000:0000.",
                "documentation_url": GH_DOC_RATE,
                "status": "403",
            });
            respond(403, h, "application/json; charset=utf-8", body.to_string())
        }
        Fault::SecondaryRateLimit {
            status,
            retry_after_secs,
        } => {
            let mut h = gh_headers();
            h.push(("retry-after".to_string(), retry_after_secs.to_string()));
            let body = json!({
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID FAKE:0000:0000.",
                "documentation_url": format!("{GH_DOC_RATE}#about-secondary-rate-limits"),
                "status": status.to_string(),
            });
            respond(
                *status,
                h,
                "application/json; charset=utf-8",
                body.to_string(),
            )
        }
        Fault::Status(status) => gh_error(*status, reason(*status), GH_DOCS),
        Fault::Response {
            status,
            headers,
            body,
        } => {
            let ct = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| "application/json; charset=utf-8".to_string());
            let rest = headers
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("content-type"))
                .cloned()
                .collect();
            respond(*status, rest, &ct, body.clone())
        }
        Fault::Delay(_) | Fault::Endless { .. } | Fault::LoseAnswer => {
            unreachable!("handled before answering")
        }
    }
}

const GH_PULLS: &[(&str, &str)] = &[("GET", "pulls.list"), ("POST", "pulls.create")];
const GH_PULL: &[(&str, &str)] = &[("GET", "pulls.get"), ("PATCH", "pulls.update")];
const GH_REVIEWERS: &[(&str, &str)] = &[("POST", "pulls.reviewers")];
const GH_COMMENTS: &[(&str, &str)] = &[("POST", "issues.comment")];
const GH_LABELS: &[(&str, &str)] = &[("POST", "issues.labels")];
const GH_ASSIGNEES: &[(&str, &str)] = &[("POST", "issues.assignees")];
const GH_GRAPHQL: &[(&str, &str)] = &[("POST", "graphql")];
const GH_APP_TOKEN: &[(&str, &str)] = &[("POST", "apps.token")];

/// Resolves a request to a route; returns the API path too.
fn github_resolve(
    prefix: &str,
    graphql_path: &str,
    method: &str,
    path: &str,
) -> (String, Resolved) {
    if path == graphql_path {
        return (path.to_string(), by_method(method, GH_GRAPHQL, Vec::new()));
    }
    let Some(api_path) = path.strip_prefix(prefix).filter(|r| r.starts_with('/')) else {
        return (path.to_string(), Resolved::NotFound);
    };
    let Some(segs) = segments(api_path) else {
        return (api_path.to_string(), Resolved::NotFound);
    };
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let p = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let resolved = match s.as_slice() {
        ["app", "installations", n, "access_tokens"] if is_number(n) => {
            by_method(method, GH_APP_TOKEN, p(&[n]))
        }
        ["repos", o, r, "pulls"] => by_method(method, GH_PULLS, p(&[o, r])),
        ["repos", o, r, "pulls", n] if is_number(n) => by_method(method, GH_PULL, p(&[o, r, n])),
        ["repos", o, r, "pulls", n, "requested_reviewers"] if is_number(n) => {
            by_method(method, GH_REVIEWERS, p(&[o, r, n]))
        }
        ["repos", o, r, "issues", n, "comments"] if is_number(n) => {
            by_method(method, GH_COMMENTS, p(&[o, r, n]))
        }
        ["repos", o, r, "issues", n, "labels"] if is_number(n) => {
            by_method(method, GH_LABELS, p(&[o, r, n]))
        }
        ["repos", o, r, "issues", n, "assignees"] if is_number(n) => {
            by_method(method, GH_ASSIGNEES, p(&[o, r, n]))
        }
        _ => Resolved::NotFound,
    };
    (api_path.to_string(), resolved)
}

impl Service for GitHubState {
    const THREAD: &'static str = "fake-github";

    fn log(&mut self) -> &mut Log {
        &mut self.log
    }

    fn resolve(&self, inc: &Incoming) -> (String, Resolved) {
        github_resolve(
            &self.path_prefix,
            &self.graphql_path(),
            &inc.method,
            &inc.path,
        )
    }

    fn fault(fault: &Fault) -> Response {
        gh_fault(fault)
    }

    fn serve<'a>(
        state: &'a Arc<Mutex<Self>>,
        inc: &'a Incoming,
        resolved: Resolved,
    ) -> Pin<Box<dyn Future<Output = Response> + Send + 'a>> {
        Box::pin(github_serve(state, inc, resolved))
    }
}

/// The token from `Authorization: Bearer …` or `token …`; `Some("")` for
/// another scheme.
fn bearer_or_token(inc: &Incoming) -> Option<String> {
    let v = inc.header("authorization")?.trim();
    let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
    if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token") {
        Some(rest.trim().to_string())
    } else {
        Some(String::new())
    }
}

async fn github_serve(
    state: &Arc<Mutex<GitHubState>>,
    inc: &Incoming,
    resolved: Resolved,
) -> Response {
    if inc.header("user-agent").is_none_or(|u| u.trim().is_empty()) {
        return respond(
            403,
            Vec::new(),
            "text/plain; charset=utf-8",
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.\n".to_string(),
        );
    }
    if let Resolved::Route {
        name: "apps.token",
        params,
    } = &resolved
    {
        return super::github_app::mint(state, inc, &params[0]);
    }
    let token = lock(state).token.clone();
    let app_token = |t: &str| lock(state).app.as_ref().is_some_and(|a| a.accepts(t));
    match bearer_or_token(inc) {
        None => return gh_error(401, "Requires authentication", GH_DOCS),
        Some(t) if t != token && !app_token(&t) => {
            return gh_error(401, "Bad credentials", GH_DOCS);
        }
        Some(_) => {}
    }
    let (name, params) = match resolved {
        Resolved::NotFound => return gh_error(404, "Not Found", GH_DOCS),
        Resolved::WrongMethod(allowed) => {
            let allow = allowed.join(", ");
            return respond(
                405,
                vec![("allow".to_string(), allow.clone())],
                "application/json; charset=utf-8",
                json!({
                    "message": format!("fake: {} is not allowed here; use {allow} (GitHub itself answers 404)", inc.method),
                    "documentation_url": GH_DOCS,
                    "status": "405",
                })
                .to_string(),
            );
        }
        Resolved::Route { name, params } => (name, params),
    };
    if name == "graphql" {
        return github_graphql(state, inc);
    }
    let docs = match name {
        "pulls.list" => GH_DOC_LIST,
        "pulls.create" => GH_DOC_CREATE,
        "pulls.get" => GH_DOC_GET,
        "pulls.update" => GH_DOC_UPDATE,
        "pulls.reviewers" => GH_DOC_REVIEWERS,
        "issues.comment" => GH_DOC_COMMENT,
        "issues.labels" => GH_DOC_LABELS,
        _ => GH_DOC_ASSIGNEES,
    };
    let accept_ok = inc.header("accept").is_some_and(|a| {
        a.split(',')
            .any(|m| m.split(';').next().unwrap_or("").trim() == "application/vnd.github+json")
    });
    if !accept_ok {
        return gh_error(
            415,
            &format!(
                "fake: send Accept: application/vnd.github+json (got {})",
                inc.header("accept").unwrap_or("none")
            ),
            docs,
        );
    }
    match inc.header("x-github-api-version") {
        Some(GITHUB_API_VERSION) => {}
        Some(other) => {
            return gh_error(
                400,
                &format!("Unsupported 'X-GitHub-Api-Version': {other}"),
                docs,
            );
        }
        None => {
            return gh_error(400, "fake: send X-GitHub-Api-Version: 2022-11-28", docs);
        }
    }
    {
        let s = lock(state);
        if !params[0].eq_ignore_ascii_case(&s.owner) || !params[1].eq_ignore_ascii_case(&s.repo) {
            return gh_error(404, "Not Found", docs);
        }
    }
    let number = params.get(2).and_then(|n| n.parse::<u64>().ok());
    if inc.is_write()
        && let Some((k, _)) = inc.query.first()
    {
        return gh_invalid(
            docs,
            &format!(
                "fake: \"{k}\" was sent in the query string; send the parameters of a write in the JSON body."
            ),
        );
    }
    let body = if inc.is_write() {
        match json_object(inc) {
            Ok(b) => b,
            Err(p) => return gh_body_problem(docs, p),
        }
    } else {
        Map::new()
    };
    if let Some(n) = number
        && lock(state).pull_index(n).is_none()
    {
        return gh_error(404, "Not Found", docs);
    }
    match (name, number) {
        ("pulls.list", _) => gh_list(state, inc),
        ("pulls.create", _) => gh_create(state, body).await,
        ("pulls.get", Some(n)) => {
            let s = lock(state);
            let p = &s.pulls[s.pull_index(n).expect("checked")];
            gh_json(200, s.pull_json(p))
        }
        ("pulls.update", Some(n)) => gh_update(state, n, body).await,
        ("issues.comment", Some(n)) => gh_comment(state, n, body),
        ("issues.labels", Some(n)) => gh_labels(state, n, body),
        ("issues.assignees", Some(n)) => gh_assignees(state, n, body),
        ("pulls.reviewers", Some(n)) => gh_reviewers(state, n, body),
        _ => gh_error(404, "Not Found", docs),
    }
}

fn gh_list(state: &Arc<Mutex<GitHubState>>, inc: &Incoming) -> Response {
    let docs = GH_DOC_LIST;
    if let Some(k) = unknown_query(
        &inc.query,
        &[
            "state",
            "head",
            "base",
            "sort",
            "direction",
            "per_page",
            "page",
        ],
    ) {
        return gh_invalid(docs, &format!("\"{k}\" is not a permitted key."));
    }
    let want_state = inc.query_param("state").unwrap_or("open");
    if !["open", "closed", "all"].contains(&want_state) {
        return gh_invalid(
            docs,
            &format!(
                "For 'state', \"{want_state}\" is not one of [\"open\", \"closed\", \"all\"]."
            ),
        );
    }
    let sort = inc.query_param("sort").unwrap_or("created");
    if !["created", "updated", "popularity", "long-running"].contains(&sort) {
        return gh_invalid(
            docs,
            &format!("For 'sort', \"{sort}\" is not a valid value."),
        );
    }
    let direction = inc.query_param("direction").unwrap_or("desc");
    if !["asc", "desc"].contains(&direction) {
        return gh_invalid(
            docs,
            &format!("For 'direction', \"{direction}\" is not a valid value."),
        );
    }
    let (page, per_page) = match page_params(inc, 30) {
        Ok(x) => x,
        Err(k) => return gh_invalid(docs, &format!("For '{k}', the value is not an integer.")),
    };
    // GitHub silently ignores a `head` without the `owner:` prefix.
    let head = inc.query_param("head").and_then(|h| h.split_once(':'));
    let base = inc.query_param("base");
    let s = lock(state);
    let mut pulls: Vec<&PullRequest> = s
        .pulls
        .iter()
        .filter(|p| want_state == "all" || p.state == want_state)
        .filter(|p| {
            head.is_none_or(|(o, r)| p.head_owner.eq_ignore_ascii_case(o) && p.head_ref == r)
        })
        .filter(|p| base.is_none_or(|b| p.base_ref == b))
        .collect();
    if sort == "updated" {
        pulls.sort_by(|a, b| {
            a.updated_at
                .cmp(&b.updated_at)
                .then(a.number.cmp(&b.number))
        });
    } else {
        pulls.sort_by_key(|p| p.number);
    }
    if direction == "desc" {
        pulls.reverse();
    }
    let (items, total_pages) = paginate(pulls, page, per_page);
    let body: Vec<Value> = items.iter().map(|p| s.pull_json(p)).collect();
    let mut headers = gh_headers();
    if page < total_pages {
        let base_url = format!("{}/repos/{}/{}/pulls", s.api_url(), s.owner, s.repo);
        let mut q: Vec<(String, String)> = inc
            .query
            .iter()
            .filter(|(k, _)| k != "page")
            .cloned()
            .collect();
        let link = |n: usize, q: &mut Vec<(String, String)>| {
            q.push(("page".to_string(), n.to_string()));
            let qs: Vec<String> = q
                .iter()
                .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
                .collect();
            q.pop();
            format!("{base_url}?{}", qs.join("&"))
        };
        let next = link(page + 1, &mut q);
        let last = link(total_pages, &mut q);
        headers.push((
            "link".to_string(),
            format!("<{next}>; rel=\"next\", <{last}>; rel=\"last\""),
        ));
    }
    respond(
        200,
        headers,
        "application/json; charset=utf-8",
        Value::Array(body).to_string(),
    )
}

async fn gh_create(state: &Arc<Mutex<GitHubState>>, body: Map<String, Value>) -> Response {
    let docs = GH_DOC_CREATE;
    let fields = [
        opt("title", Ty::Str),
        req("head", Ty::Str),
        req("base", Ty::Str),
        opt("body", Ty::Str),
        opt("draft", Ty::Bool),
        opt("maintainer_can_modify", Ty::Bool),
    ];
    if let Err(e) = check_fields(&body, &fields, &["head_repo", "issue"]) {
        return gh_field_error(docs, e);
    }
    let Some(title) = body.get("title").and_then(Value::as_str) else {
        return gh_validation(
            docs,
            json!([{"resource": "PullRequest", "code": "missing_field", "field": "title"}]),
        );
    };
    let head = body["head"].as_str().unwrap_or_default();
    let base = body["base"].as_str().unwrap_or_default().to_string();
    let (owner, git_dir) = {
        let s = lock(state);
        (s.owner.clone(), s.git_dir.clone())
    };
    let head_ref = match head.split_once(':') {
        Some((o, r)) if o.eq_ignore_ascii_case(&owner) => r.to_string(),
        Some(_) => {
            // A fork: the fake has one repository, so the head cannot exist.
            return gh_validation(
                docs,
                json!([{"resource": "PullRequest", "field": "head", "code": "invalid"}]),
            );
        }
        None => head.to_string(),
    };
    let branches = inspect_branches(git_dir, head_ref.clone(), base.clone()).await;
    let (Some(head_sha), Some(base_sha)) = (branches.head_sha.clone(), branches.base_sha.clone())
    else {
        let mut errors = Vec::new();
        if branches.base_sha.is_none() {
            errors.push(json!({"resource": "PullRequest", "field": "base", "code": "invalid"}));
        }
        if branches.head_sha.is_none() {
            errors.push(json!({"resource": "PullRequest", "field": "head", "code": "invalid"}));
        }
        return gh_validation(docs, Value::Array(errors));
    };
    let mut s = lock(state);
    if s.open_duplicate(&owner, &head_ref, &base, 0) {
        return gh_validation(
            docs,
            json!([{
                "resource": "PullRequest",
                "code": "custom",
                "message": format!("A pull request already exists for {owner}:{head_ref}."),
            }]),
        );
    }
    if !branches.ahead {
        return gh_validation(
            docs,
            json!([{
                "resource": "PullRequest",
                "code": "custom",
                "message": format!("No commits between {base} and {head_ref}"),
            }]),
        );
    }
    let login = s.login.clone();
    let number = s.new_pull(&login, title, &head_ref, &base, (head_sha, base_sha));
    let idx = s.pull_index(number).expect("just created");
    {
        let p = &mut s.pulls[idx];
        p.body = body.get("body").and_then(Value::as_str).map(str::to_string);
        p.draft = body.get("draft").and_then(Value::as_bool).unwrap_or(false);
        p.maintainer_can_modify = body
            .get("maintainer_can_modify")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    }
    let location = format!(
        "{}/repos/{}/{}/pulls/{number}",
        s.api_url(),
        s.owner,
        s.repo
    );
    let json = s.pull_json(&s.pulls[idx]);
    let mut headers = gh_headers();
    headers.push(("location".to_string(), location));
    respond(
        201,
        headers,
        "application/json; charset=utf-8",
        json.to_string(),
    )
}

async fn gh_update(
    state: &Arc<Mutex<GitHubState>>,
    number: u64,
    body: Map<String, Value>,
) -> Response {
    let docs = GH_DOC_UPDATE;
    let fields = [
        opt("title", Ty::Str),
        opt("body", Ty::Str),
        opt("state", Ty::Str),
        opt("base", Ty::Str),
        opt("maintainer_can_modify", Ty::Bool),
    ];
    if let Err(e) = check_fields(&body, &fields, &[]) {
        return gh_field_error(docs, e);
    }
    let new_state = body.get("state").and_then(Value::as_str);
    if let Some(st) = new_state
        && st != "open"
        && st != "closed"
    {
        return gh_invalid(
            docs,
            &format!("For 'properties/state', \"{st}\" is not one of [\"open\", \"closed\"]."),
        );
    }
    let new_base = body.get("base").and_then(Value::as_str).map(str::to_string);
    let mut base_sha = None;
    if let Some(b) = &new_base {
        let git_dir = lock(state).git_dir.clone();
        let found = inspect_branches(git_dir, b.clone(), b.clone()).await;
        match found.base_sha {
            Some(sha) => base_sha = Some(sha),
            None => {
                return gh_validation(
                    docs,
                    json!([{"resource": "PullRequest", "field": "base", "code": "invalid"}]),
                );
            }
        }
    }
    let mut s = lock(state);
    let idx = s.pull_index(number).expect("checked");
    let p = s.pulls[idx].clone();
    let target_base = new_base.clone().unwrap_or_else(|| p.base_ref.clone());
    let reopening = new_state == Some("open") && !p.is_open();
    if (reopening || (p.is_open() && new_base.is_some() && new_state != Some("closed")))
        && s.open_duplicate(&p.head_owner, &p.head_ref, &target_base, number)
    {
        return gh_validation(
            docs,
            json!([{
                "resource": "PullRequest",
                "code": "custom",
                "message": format!("A pull request already exists for {}.", p.head_label()),
            }]),
        );
    }
    let now = now_rfc3339();
    let p = &mut s.pulls[idx];
    if let Some(t) = body.get("title").and_then(Value::as_str) {
        p.title = t.to_string();
    }
    if let Some(b) = body.get("body").and_then(Value::as_str) {
        p.body = Some(b.to_string());
    }
    if let Some(m) = body.get("maintainer_can_modify").and_then(Value::as_bool) {
        p.maintainer_can_modify = m;
    }
    if let Some(b) = new_base {
        p.base_ref = b;
        p.base_sha = base_sha.unwrap_or_default();
    }
    match new_state {
        Some("closed") if p.is_open() => {
            p.state = "closed".to_string();
            p.closed_at = Some(now.clone());
            p.auto_merge = None;
        }
        Some("open") if !p.is_open() => {
            p.state = "open".to_string();
            p.closed_at = None;
        }
        _ => {}
    }
    p.updated_at = now;
    let json = s.pull_json(&s.pulls[idx]);
    gh_json(200, json)
}

fn gh_comment(state: &Arc<Mutex<GitHubState>>, number: u64, body: Map<String, Value>) -> Response {
    if let Err(e) = check_fields(&body, &[req("body", Ty::Str)], &[]) {
        return gh_field_error(GH_DOC_COMMENT, e);
    }
    let mut s = lock(state);
    let id = s.next_comment_id;
    s.next_comment_id += 1;
    let comment = Comment {
        id: 900_000 + id,
        author: s.login.clone(),
        body: body["body"].as_str().unwrap_or_default().to_string(),
        created_at: now_rfc3339(),
    };
    let idx = s.pull_index(number).expect("checked");
    s.pulls[idx].comments.push(comment.clone());
    let json = s.comment_json(number, &comment);
    gh_json(201, json)
}

fn gh_labels(state: &Arc<Mutex<GitHubState>>, number: u64, body: Map<String, Value>) -> Response {
    if let Err(e) = check_fields(&body, &[req("labels", Ty::StrList)], &[]) {
        return gh_field_error(GH_DOC_LABELS, e);
    }
    let labels = str_list(&body["labels"]);
    if labels.iter().any(|l| l.trim().is_empty()) {
        return gh_validation(
            GH_DOC_LABELS,
            json!([{"resource": "Label", "field": "name", "code": "missing_field"}]),
        );
    }
    let mut s = lock(state);
    let idx = s.pull_index(number).expect("checked");
    let p = &mut s.pulls[idx];
    if labels.is_empty() {
        p.labels.clear();
    } else {
        push_unique(&mut p.labels, labels);
    }
    p.updated_at = now_rfc3339();
    let json: Vec<Value> = s.pulls[idx]
        .labels
        .iter()
        .map(|l| s.label_json(l))
        .collect();
    gh_json(200, Value::Array(json))
}

fn gh_assignees(
    state: &Arc<Mutex<GitHubState>>,
    number: u64,
    body: Map<String, Value>,
) -> Response {
    if let Err(e) = check_fields(&body, &[opt("assignees", Ty::StrList)], &[]) {
        return gh_field_error(GH_DOC_ASSIGNEES, e);
    }
    let mut s = lock(state);
    // Users without push access are silently ignored, as on GitHub.
    let wanted: Vec<String> = body
        .get("assignees")
        .map(str_list)
        .unwrap_or_default()
        .into_iter()
        .filter(|a| s.is_collaborator(a))
        .collect();
    let idx = s.pull_index(number).expect("checked");
    let p = &mut s.pulls[idx];
    push_unique(&mut p.assignees, wanted);
    p.updated_at = now_rfc3339();
    let json = s.issue_json(&s.pulls[idx]);
    gh_json(201, json)
}

fn gh_reviewers(
    state: &Arc<Mutex<GitHubState>>,
    number: u64,
    body: Map<String, Value>,
) -> Response {
    let docs = GH_DOC_REVIEWERS;
    let fields = [
        opt("reviewers", Ty::StrList),
        opt("team_reviewers", Ty::StrList),
    ];
    if let Err(e) = check_fields(&body, &fields, &[]) {
        return gh_field_error(docs, e);
    }
    if !body.contains_key("reviewers") && !body.contains_key("team_reviewers") {
        return gh_invalid(docs, "\"reviewers\" or \"team_reviewers\" wasn't supplied.");
    }
    let reviewers = body.get("reviewers").map(str_list).unwrap_or_default();
    let teams = body.get("team_reviewers").map(str_list).unwrap_or_default();
    let mut s = lock(state);
    let idx = s.pull_index(number).expect("checked");
    let author = s.pulls[idx].author.clone();
    if reviewers.iter().any(|r| r.eq_ignore_ascii_case(&author)) {
        return gh_validation(
            docs,
            json!([{"resource": "PullRequest", "code": "custom", "message": "Review cannot be requested from pull request author."}]),
        );
    }
    if reviewers.iter().any(|r| !s.is_collaborator(r)) {
        let message = format!(
            "Reviews may only be requested from collaborators. One or more of the users or teams you specified is not a collaborator of the {}/{} repository.",
            s.owner, s.repo
        );
        return gh_error(422, &message, docs);
    }
    let p = &mut s.pulls[idx];
    push_unique(&mut p.requested_reviewers, reviewers);
    push_unique(&mut p.requested_teams, teams);
    p.updated_at = now_rfc3339();
    let json = s.pull_json(&s.pulls[idx]);
    gh_json(201, json)
}

fn graphql_error(kind: &str, message: &str) -> Response {
    gh_json(
        200,
        json!({
            "data": {"enablePullRequestAutoMerge": null},
            "errors": [{
                "type": kind,
                "path": ["enablePullRequestAutoMerge"],
                "locations": [{"line": 2, "column": 3}],
                "message": message,
            }],
        }),
    )
}

fn github_graphql(state: &Arc<Mutex<GitHubState>>, inc: &Incoming) -> Response {
    let body = match json_object(inc) {
        Ok(b) => b,
        Err(p) => return gh_body_problem(GH_DOC_GRAPHQL, p),
    };
    let fields = [
        req("query", Ty::Str),
        opt("variables", Ty::Object),
        opt("operationName", Ty::Str),
    ];
    if let Err(e) = check_fields(&body, &fields, &[]) {
        return gh_field_error(GH_DOC_GRAPHQL, e);
    }
    let query = body["query"].as_str().unwrap_or_default();
    if !query.contains("enablePullRequestAutoMerge") {
        return gh_json(
            200,
            json!({"errors": [{"message": "fake: only the enablePullRequestAutoMerge mutation is implemented"}]}),
        );
    }
    if !query.trim_start().starts_with("mutation") {
        return gh_json(
            200,
            json!({"errors": [{"message": "fake: enablePullRequestAutoMerge must be sent as a mutation"}]}),
        );
    }
    let vars = body
        .get("variables")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let Some(id) = vars.get("pullRequestId").and_then(Value::as_str) else {
        return graphql_error(
            "FAKE",
            "fake: pass the pull request's node_id as variables.pullRequestId",
        );
    };
    let method = match vars.get("mergeMethod") {
        Some(Value::String(m)) => m.clone(),
        Some(_) => return graphql_error("INVALID", "mergeMethod must be a string"),
        None => ["MERGE", "SQUASH", "REBASE"]
            .iter()
            .find(|m| {
                query.contains(&format!("mergeMethod: {m}"))
                    || query.contains(&format!("mergeMethod:{m}"))
            })
            .map_or_else(|| "MERGE".to_string(), |m| m.to_string()),
    };
    if !["MERGE", "SQUASH", "REBASE"].contains(&method.as_str()) {
        return graphql_error(
            "INVALID",
            &format!("Argument 'mergeMethod' has an invalid value ({method})."),
        );
    }
    let mut s = lock(state);
    let Some(idx) = s.pulls.iter().position(|p| p.node_id == id) else {
        return graphql_error(
            "NOT_FOUND",
            &format!("Could not resolve to a node with the global id of '{id}'"),
        );
    };
    if let Some(message) = s.auto_merge_error.clone() {
        return graphql_error("UNPROCESSABLE", &message);
    }
    if !s.pulls[idx].is_open() {
        return graphql_error(
            "UNPROCESSABLE",
            "Pull request is not in the correct state to enable auto-merge",
        );
    }
    let login = s.login.clone();
    let now = now_rfc3339();
    s.pulls[idx].auto_merge = Some(AutoMerge {
        merge_method: method.clone(),
        enabled_by: login.clone(),
        enabled_at: now.clone(),
    });
    let p = &s.pulls[idx];
    gh_json(
        200,
        json!({
            "data": {
                "enablePullRequestAutoMerge": {
                    "clientMutationId": vars.get("clientMutationId").cloned().unwrap_or(Value::Null),
                    "pullRequest": {
                        "id": p.node_id,
                        "number": p.number,
                        "url": s.html_url(p.number),
                        "autoMergeRequest": {
                            "enabledAt": now,
                            "mergeMethod": method,
                            "enabledBy": {"login": login},
                        },
                    },
                },
            },
        }),
    )
}
