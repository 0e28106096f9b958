//! The GitHub and GitLab fakes in `tests/support/forge/`, driven with
//! hand-written HTTP/1.1 requests, so that the fakes themselves are known to
//! answer as the public API documentation says before tagwatch's forge
//! client is tested against them. A scenario both services share is one
//! function run on each (`both!`: `scenario::github`, `scenario::gitlab`);
//! tests of one service's own surface (GraphQL, Enterprise prefixes,
//! project ids) stay under its name.

#[path = "support/forge/mod.rs"]
mod forge;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use forge::{Fault, ForgeFake, GitHubConfig, GitHubFake, GitLabConfig, GitLabFake, Match};
use serde_json::{Value, json};
use support::{commit, git};

// ---------------------------------------------------------------------------
// A minimal HTTP/1.1 client
// ---------------------------------------------------------------------------

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// Sends one request; `body` is sent as is, with the headers given.
fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Resp {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = TcpStream::connect(host).expect("connect to the fake");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let body = body.unwrap_or("");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

const GH_TOKEN: &str = "ghp_test";
const GL_TOKEN: &str = "glpat-test";

/// A GitHub request with the headers tagwatch will send.
fn gh(method: &str, url: &str, body: Option<Value>) -> Resp {
    gh_with(method, url, body, &[])
}

fn gh_with(method: &str, url: &str, body: Option<Value>, extra: &[(&str, &str)]) -> Resp {
    let auth = format!("Bearer {GH_TOKEN}");
    let mut headers = vec![
        ("Authorization", auth.as_str()),
        ("Accept", "application/vnd.github+json"),
        ("X-GitHub-Api-Version", "2022-11-28"),
        ("User-Agent", "tagwatch-test"),
    ];
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    for (k, v) in extra {
        headers.retain(|(h, _)| !h.eq_ignore_ascii_case(k));
        if !v.is_empty() {
            headers.push((k, v));
        }
    }
    let text = body.map(|b| b.to_string());
    send(method, url, &headers, text.as_deref())
}

/// A GitLab request with `PRIVATE-TOKEN`.
fn gl(method: &str, url: &str, body: Option<Value>) -> Resp {
    let mut headers = vec![("PRIVATE-TOKEN", GL_TOKEN)];
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    let text = body.map(|b| b.to_string());
    send(method, url, &headers, text.as_deref())
}

// ---------------------------------------------------------------------------
// A bare repository with branches
// ---------------------------------------------------------------------------

/// A bare repository with `main` and each of `branches` one commit ahead.
fn repo_with_branches(root: &Path, branches: &[&str]) -> PathBuf {
    let bare = root.join("gitops.git");
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(
        root,
        &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
    );
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("values.yaml"), "image:\n  tag: 1.4.2\n").unwrap();
    git(&work, &["add", "."]);
    commit(&work, "initial");
    git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
    for b in branches {
        git(&work, &["checkout", "-q", "-B", b, "main"]);
        std::fs::write(work.join("values.yaml"), format!("image:\n  tag: {b}\n")).unwrap();
        git(&work, &["add", "."]);
        commit(&work, b);
        git(&work, &["push", "-q", bare.to_str().unwrap(), b]);
    }
    bare
}

const BRANCH: &str = "tagwatch/prod/payments";

fn github(git_dir: Option<&Path>) -> GitHubFake {
    let mut config = GitHubConfig::new("acme", "gitops").token(GH_TOKEN);
    if let Some(d) = git_dir {
        config = config.git_dir(d);
    }
    GitHubFake::start(config)
}

fn gitlab(git_dir: Option<&Path>) -> GitLabFake {
    let mut config = GitLabConfig::new("acme/platform/gitops")
        .token(GL_TOKEN)
        .user(7, "alice")
        .user(8, "bob");
    if let Some(d) = git_dir {
        config = config.git_dir(d);
    }
    GitLabFake::start(config)
}

// ---------------------------------------------------------------------------
// GitHub
// ---------------------------------------------------------------------------

#[test]
fn github_pull_request_lifecycle_create_find_update_label_review_automerge_close() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = repo_with_branches(tmp.path(), &[BRANCH]);
    let fake = github(Some(&bare));
    let api = fake.api_url();

    let created = gh(
        "POST",
        &format!("{api}/repos/acme/gitops/pulls"),
        Some(json!({
            "title": "Promote payments to 1.4.3 in prod",
            "head": BRANCH,
            "base": "main",
            "body": "tagwatch promotion",
            "draft": false,
            "maintainer_can_modify": false,
        })),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let pr = created.json();
    assert_eq!(pr["number"], 1);
    assert_eq!(pr["state"], "open");
    assert_eq!(pr["head"]["ref"], BRANCH);
    assert_eq!(pr["head"]["label"], format!("acme:{BRANCH}"));
    assert_eq!(pr["base"]["ref"], "main");
    assert_eq!(pr["user"]["login"], "tagwatch-bot");
    assert_eq!(
        pr["html_url"],
        format!("{}/acme/gitops/pull/1", fake.state().web_url())
    );
    let head_sha = git(&bare, &["rev-parse", &format!("refs/heads/{BRANCH}")]);
    assert_eq!(pr["head"]["sha"], head_sha.trim());
    assert!(created.header("location").unwrap().ends_with("/pulls/1"));
    let node_id = pr["node_id"].as_str().unwrap().to_string();

    // Find it again the way tagwatch will: open, head as owner:branch, base.
    let head = BRANCH.replace('/', "%2F");
    let found = gh(
        "GET",
        &format!(
            "{api}/repos/acme/gitops/pulls?state=open&head=acme:{head}&base=main&per_page=100"
        ),
        None,
    );
    assert_eq!(found.status, 200, "{}", found.body);
    let list = found.json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["number"], 1);
    let other = gh(
        "GET",
        &format!("{api}/repos/acme/gitops/pulls?state=open&head=acme:other&base=main"),
        None,
    );
    assert_eq!(other.json(), json!([]));

    let updated = gh(
        "PATCH",
        &format!("{api}/repos/acme/gitops/pulls/1"),
        Some(json!({"title": "Promote payments to 1.4.4 in prod", "body": "now 1.4.4"})),
    );
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.json()["title"], "Promote payments to 1.4.4 in prod");

    let labels = gh(
        "POST",
        &format!("{api}/repos/acme/gitops/issues/1/labels"),
        Some(json!({"labels": ["tagwatch", "prod"]})),
    );
    assert_eq!(labels.status, 200, "{}", labels.body);
    let names: Vec<String> = labels
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["tagwatch", "prod"]);

    let assignees = gh(
        "POST",
        &format!("{api}/repos/acme/gitops/issues/1/assignees"),
        Some(json!({"assignees": ["alice"]})),
    );
    assert_eq!(assignees.status, 201, "{}", assignees.body);
    assert_eq!(assignees.json()["assignees"][0]["login"], "alice");

    let reviewers = gh(
        "POST",
        &format!("{api}/repos/acme/gitops/pulls/1/requested_reviewers"),
        Some(json!({"reviewers": ["bob"], "team_reviewers": ["sre"]})),
    );
    assert_eq!(reviewers.status, 201, "{}", reviewers.body);
    assert_eq!(reviewers.json()["requested_reviewers"][0]["login"], "bob");
    assert_eq!(reviewers.json()["requested_teams"][0]["slug"], "sre");

    let automerge = gh_with(
        "POST",
        &fake.graphql_url(),
        Some(json!({
            "query": "mutation($pullRequestId: ID!, $mergeMethod: PullRequestMergeMethod) { enablePullRequestAutoMerge(input: {pullRequestId: $pullRequestId, mergeMethod: $mergeMethod}) { pullRequest { number autoMergeRequest { enabledAt } } } }",
            "variables": {"pullRequestId": node_id, "mergeMethod": "SQUASH"},
        })),
        &[("Accept", "application/json"), ("X-GitHub-Api-Version", "")],
    );
    assert_eq!(automerge.status, 200, "{}", automerge.body);
    let am = automerge.json();
    assert!(am.get("errors").is_none(), "{am}");
    assert_eq!(
        am["data"]["enablePullRequestAutoMerge"]["pullRequest"]["number"],
        1
    );

    let comment = gh(
        "POST",
        &format!("{api}/repos/acme/gitops/issues/1/comments"),
        Some(json!({"body": "Superseded by a newer promotion."})),
    );
    assert_eq!(comment.status, 201, "{}", comment.body);
    let closed = gh(
        "PATCH",
        &format!("{api}/repos/acme/gitops/pulls/1"),
        Some(json!({"state": "closed"})),
    );
    assert_eq!(closed.status, 200, "{}", closed.body);
    assert_eq!(closed.json()["state"], "closed");
    let none_open = gh(
        "GET",
        &format!("{api}/repos/acme/gitops/pulls?state=open&head=acme:{head}&base=main"),
        None,
    );
    assert_eq!(none_open.json(), json!([]));

    let pr = fake.pull(1).unwrap();
    assert_eq!(pr.state, "closed");
    assert_eq!(pr.title, "Promote payments to 1.4.4 in prod");
    assert_eq!(pr.body.as_deref(), Some("now 1.4.4"));
    assert_eq!(pr.labels, ["tagwatch", "prod"]);
    assert_eq!(pr.assignees, ["alice"]);
    assert_eq!(pr.requested_reviewers, ["bob"]);
    assert_eq!(pr.requested_teams, ["sre"]);
    assert_eq!(pr.comments.len(), 1);
    assert_eq!(pr.comments[0].body, "Superseded by a newer promotion.");
    // Closing cancels auto-merge, as on GitHub; it was recorded before.
    assert!(pr.auto_merge.is_none());
    let graphql = fake
        .requests()
        .into_iter()
        .find(|r| r.route == "graphql")
        .unwrap();
    assert_eq!(graphql.status, 200);
    assert_eq!(fake.create_calls(), 1);
    assert_eq!(fake.count("pulls.update"), 2);
}

#[test]
fn github_auto_merge_is_recorded_on_the_open_pull_request() {
    let fake = github(None);
    let pr = gh(
        "POST",
        &format!("{}/repos/acme/gitops/pulls", fake.api_url()),
        Some(json!({"title": "t", "head": BRANCH, "base": "main"})),
    )
    .json();
    let resp = gh(
        "POST",
        &fake.graphql_url(),
        Some(json!({
            "query": "mutation($pullRequestId: ID!) { enablePullRequestAutoMerge(input: {pullRequestId: $pullRequestId, mergeMethod: REBASE}) { clientMutationId } }",
            "variables": {"pullRequestId": pr["node_id"]},
        })),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let auto = fake.pull(1).unwrap().auto_merge.unwrap();
    assert_eq!(auto.merge_method, "REBASE");

    // GitHub refuses when the PR could merge at once: HTTP 200, `errors`.
    fake.set_auto_merge_error(Some("Pull request Pull request is in clean status"));
    let refused = gh(
        "POST",
        &fake.graphql_url(),
        Some(json!({
            "query": "mutation($pullRequestId: ID!) { enablePullRequestAutoMerge(input: {pullRequestId: $pullRequestId}) { clientMutationId } }",
            "variables": {"pullRequestId": pr["node_id"]},
        })),
    );
    assert_eq!(refused.status, 200);
    assert_eq!(
        refused.json()["errors"][0]["message"],
        "Pull request Pull request is in clean status"
    );
    let unknown = gh(
        "POST",
        &fake.graphql_url(),
        Some(json!({
            "query": "mutation($pullRequestId: ID!) { enablePullRequestAutoMerge(input: {pullRequestId: $pullRequestId}) { clientMutationId } }",
            "variables": {"pullRequestId": "PR_nope"},
        })),
    );
    assert_eq!(unknown.json()["errors"][0]["type"], "NOT_FOUND");
}

#[test]
fn github_head_branch_without_new_commits_is_422() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = repo_with_branches(tmp.path(), &[]);
    git(&bare, &["branch", "stale", "main"]);
    let fake = github(Some(&bare));
    let resp = gh(
        "POST",
        &format!("{}/repos/acme/gitops/pulls", fake.api_url()),
        Some(json!({"title": "t", "head": "stale", "base": "main"})),
    );
    assert_eq!(resp.status, 422, "{}", resp.body);
    assert_eq!(
        resp.json()["errors"][0]["message"],
        "No commits between main and stale"
    );
}

#[test]
fn github_unknown_field_missing_field_wrong_type_and_bad_json_are_rejected() {
    let fake = github(None);
    let url = format!("{}/repos/acme/gitops/pulls", fake.api_url());
    let typo = gh(
        "POST",
        &url,
        Some(json!({"titel": "t", "head": BRANCH, "base": "main"})),
    );
    assert_eq!(typo.status, 422, "{}", typo.body);
    assert!(
        typo.json()["message"]
            .as_str()
            .unwrap()
            .contains("\"titel\"")
    );

    let no_head = gh("POST", &url, Some(json!({"title": "t", "base": "main"})));
    assert_eq!(no_head.status, 422);
    assert!(
        no_head.json()["message"]
            .as_str()
            .unwrap()
            .contains("\"head\" wasn't supplied")
    );

    let no_title = gh("POST", &url, Some(json!({"head": BRANCH, "base": "main"})));
    assert_eq!(no_title.status, 422);
    assert_eq!(no_title.json()["errors"][0]["code"], "missing_field");

    let wrong = gh(
        "POST",
        &url,
        Some(json!({"title": "t", "head": BRANCH, "base": "main", "draft": "yes"})),
    );
    assert_eq!(wrong.status, 422);
    assert!(
        wrong.json()["message"]
            .as_str()
            .unwrap()
            .contains("properties/draft")
    );

    let auth = format!("Bearer {GH_TOKEN}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Accept", "application/vnd.github+json"),
        ("X-GitHub-Api-Version", "2022-11-28"),
        ("User-Agent", "t"),
        ("Content-Type", "application/json"),
    ];
    let garbage = send("POST", &url, &headers, Some("{not json"));
    assert_eq!(garbage.status, 400);
    assert_eq!(garbage.json()["message"], "Problems parsing JSON");
    let array = send("POST", &url, &headers, Some("[1]"));
    assert_eq!(array.status, 400);
    assert_eq!(array.json()["message"], "Body should be a JSON object");
    let no_content_type = send("POST", &url, &headers[..4], Some("{}"));
    assert_eq!(no_content_type.status, 415);

    assert!(fake.pulls().is_empty());
    assert_eq!(
        gh(
            "POST",
            &url,
            Some(json!({"title": "t", "head": BRANCH, "base": "main"}))
        )
        .status,
        201
    );
    let bad_state = gh(
        "PATCH",
        &format!("{}/repos/acme/gitops/pulls/1", fake.api_url()),
        Some(json!({"state": "merged"})),
    );
    assert_eq!(bad_state.status, 422, "{}", bad_state.body);
    assert!(
        bad_state.json()["message"]
            .as_str()
            .unwrap()
            .contains("properties/state")
    );
    assert!(fake.pull(1).unwrap().is_open());
}

#[test]
fn dropping_a_fake_with_an_open_keep_alive_connection_is_prompt() {
    let fake = github(None);
    let host = fake.api_url().trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&host).unwrap();
    let auth = format!("Bearer {GH_TOKEN}");
    write!(
        stream,
        "GET /repos/acme/gitops/pulls HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\nAccept: application/vnd.github+json\r\nX-GitHub-Api-Version: 2022-11-28\r\nUser-Agent: t\r\n\r\n"
    )
    .unwrap();
    let mut buf = [0u8; 512];
    let n = stream.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let started = std::time::Instant::now();
    drop(fake);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    drop(stream);
}

#[test]
fn github_list_ignores_head_without_owner_prefix_as_github_does() {
    let fake = github(None);
    fake.seed_pull("octocat", "feature-x", "main", "someone else's work");
    let url = format!("{}/repos/acme/gitops/pulls", fake.api_url());
    assert_eq!(
        gh(
            "POST",
            &url,
            Some(json!({"title": "t", "head": BRANCH, "base": "main"}))
        )
        .status,
        201
    );
    let bare = gh("GET", &format!("{url}?state=open&head={BRANCH}"), None);
    assert_eq!(
        bare.json().as_array().unwrap().len(),
        2,
        "head without owner is ignored"
    );
    let prefixed = gh("GET", &format!("{url}?state=open&head=acme:{BRANCH}"), None);
    assert_eq!(prefixed.json().as_array().unwrap().len(), 1);
    let typo = gh("GET", &format!("{url}?state=open&branch={BRANCH}"), None);
    assert_eq!(typo.status, 422, "unknown query parameters are named");
}

#[test]
fn github_enterprise_prefix_serves_rest_under_api_v3_and_graphql_under_api() {
    let fake = GitHubFake::start(
        GitHubConfig::new("acme", "gitops")
            .token(GH_TOKEN)
            .enterprise(),
    );
    assert!(fake.api_url().ends_with("/api/v3"));
    assert!(fake.graphql_url().ends_with("/api/graphql"));
    let created = gh(
        "POST",
        &format!("{}/repos/acme/gitops/pulls", fake.api_url()),
        Some(json!({"title": "t", "head": BRANCH, "base": "main"})),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(
        created.json()["url"]
            .as_str()
            .unwrap()
            .contains("/api/v3/repos/acme/gitops/pulls/1")
    );
    let root = fake.api_url().trim_end_matches("/api/v3").to_string();
    let unprefixed = gh("GET", &format!("{root}/repos/acme/gitops/pulls"), None);
    assert_eq!(unprefixed.status, 404);
}

#[test]
fn github_unknown_route_is_404_and_wrong_method_is_405() {
    let fake = github(None);
    let api = fake.api_url();
    assert_eq!(
        gh("GET", &format!("{api}/repos/acme/gitops/pullz"), None).status,
        404
    );
    assert_eq!(
        gh("GET", &format!("{api}/repos/acme/other/pulls"), None).status,
        404
    );
    let wrong = gh(
        "PUT",
        &format!("{api}/repos/acme/gitops/pulls"),
        Some(json!({})),
    );
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.header("allow"), Some("GET, POST"));
}

#[test]
fn github_review_from_the_author_or_an_outsider_is_422() {
    let fake = github(None);
    let api = fake.api_url();
    gh(
        "POST",
        &format!("{api}/repos/acme/gitops/pulls"),
        Some(json!({"title": "t", "head": BRANCH, "base": "main"})),
    );
    let own = gh(
        "POST",
        &format!("{api}/repos/acme/gitops/pulls/1/requested_reviewers"),
        Some(json!({"reviewers": ["tagwatch-bot"]})),
    );
    assert_eq!(own.status, 422);
    assert_eq!(
        own.json()["errors"][0]["message"],
        "Review cannot be requested from pull request author."
    );
    fake.set_collaborators(Some(&["alice"]));
    let outsider = gh(
        "POST",
        &format!("{api}/repos/acme/gitops/pulls/1/requested_reviewers"),
        Some(json!({"reviewers": ["mallory"]})),
    );
    assert_eq!(outsider.status, 422);
    // Assignees without push access are dropped silently.
    let assigned = gh(
        "POST",
        &format!("{api}/repos/acme/gitops/issues/1/assignees"),
        Some(json!({"assignees": ["alice", "mallory"]})),
    );
    assert_eq!(assigned.status, 201);
    assert_eq!(fake.pull(1).unwrap().assignees, ["alice"]);
}

// ---------------------------------------------------------------------------
// GitLab
// ---------------------------------------------------------------------------

const PROJECT: &str = "acme%2Fplatform%2Fgitops";

#[test]
fn gitlab_merge_request_lifecycle_in_a_nested_group() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = repo_with_branches(tmp.path(), &[BRANCH]);
    let fake = gitlab(Some(&bare));
    let api = fake.api_url();
    assert!(api.ends_with("/api/v4"));
    let mrs = format!("{api}/projects/{PROJECT}/merge_requests");

    let alice = gl("GET", &format!("{api}/users?username=alice"), None);
    assert_eq!(alice.status, 200);
    assert_eq!(alice.json()[0]["id"], 7);

    let created = gl(
        "POST",
        &mrs,
        Some(json!({
            "source_branch": BRANCH,
            "target_branch": "main",
            "title": "Draft: Promote payments to 1.4.3 in prod",
            "description": "tagwatch promotion",
            "labels": "tagwatch,prod",
            "assignee_ids": [7],
            "reviewer_ids": [8, 999],
            "remove_source_branch": true,
            "squash": false,
        })),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let mr = created.json();
    assert_eq!(mr["iid"], 1);
    assert_eq!(mr["state"], "opened");
    assert_eq!(mr["draft"], true);
    assert_eq!(mr["labels"], json!(["tagwatch", "prod"]));
    assert_eq!(mr["assignees"][0]["username"], "alice");
    assert_eq!(
        mr["reviewers"].as_array().unwrap().len(),
        1,
        "unknown ids are dropped"
    );
    assert_eq!(mr["reviewers"][0]["username"], "bob");
    assert_eq!(mr["source_branch"], BRANCH);
    assert_eq!(
        mr["web_url"],
        format!(
            "{}/acme/platform/gitops/-/merge_requests/1",
            fake.state().web_url()
        )
    );

    let source = BRANCH.replace('/', "%2F");
    let found = gl(
        "GET",
        &format!("{mrs}?state=opened&source_branch={source}&target_branch=main"),
        None,
    );
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.json().as_array().unwrap().len(), 1);
    assert_eq!(found.header("x-total"), Some("1"));

    let updated = gl(
        "PUT",
        &format!("{mrs}/1"),
        Some(json!({"title": "Promote payments to 1.4.4 in prod", "add_labels": "auto"})),
    );
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.json()["draft"], false);
    assert_eq!(
        updated.json()["labels"],
        json!(["tagwatch", "prod", "auto"])
    );

    let merge = gl(
        "PUT",
        &format!("{mrs}/1/merge"),
        Some(json!({"auto_merge": true})),
    );
    assert_eq!(merge.status, 200, "{}", merge.body);
    assert_eq!(merge.json()["merge_when_pipeline_succeeds"], true);
    assert_eq!(merge.json()["state"], "opened");

    let note = gl(
        "POST",
        &format!("{mrs}/1/notes"),
        Some(json!({"body": "Superseded."})),
    );
    assert_eq!(note.status, 201, "{}", note.body);
    assert_eq!(note.json()["noteable_iid"], 1);
    let closed = gl(
        "PUT",
        &format!("{mrs}/1"),
        Some(json!({"state_event": "close"})),
    );
    assert_eq!(closed.status, 200);
    assert_eq!(closed.json()["state"], "closed");
    let open = gl(
        "GET",
        &format!("{mrs}?state=opened&source_branch={source}"),
        None,
    );
    assert_eq!(open.json(), json!([]));
    // GitLab lists every state unless asked.
    let all = gl("GET", &format!("{mrs}?source_branch={source}"), None);
    assert_eq!(all.json().as_array().unwrap().len(), 1);

    let mr = fake.merge_request(1).unwrap();
    assert_eq!(mr.state, "closed");
    assert_eq!(mr.labels, ["tagwatch", "prod", "auto"]);
    assert_eq!(mr.assignee_ids, [7]);
    assert_eq!(mr.reviewer_ids, [8]);
    assert_eq!(mr.remove_source_branch, Some(true));
    assert_eq!(mr.auto_merge_param.as_deref(), Some("auto_merge"));
    assert_eq!(mr.notes[0].body, "Superseded.");
    assert_eq!(fake.create_calls(), 1);
}

#[test]
fn gitlab_project_by_numeric_id_works_and_an_unencoded_path_is_404() {
    let fake = gitlab(None);
    let api = fake.api_url();
    let by_id = gl(
        "POST",
        &format!("{api}/projects/42/merge_requests"),
        Some(json!({"source_branch": BRANCH, "target_branch": "main", "title": "t"})),
    );
    assert_eq!(by_id.status, 201, "{}", by_id.body);
    let unencoded = gl(
        "GET",
        &format!("{api}/projects/acme/platform/gitops/merge_requests"),
        None,
    );
    assert_eq!(unencoded.status, 404);
    let other = gl(
        "GET",
        &format!("{api}/projects/acme%2Fother/merge_requests"),
        None,
    );
    assert_eq!(other.status, 404);
    assert_eq!(other.json()["message"], "404 Project Not Found");
    let lower = gl(
        "GET",
        &format!("{api}/projects/ACME%2fPlatform%2fGitops/merge_requests"),
        None,
    );
    assert_eq!(lower.status, 200, "lower-case %2f and any case of the path");
}

#[test]
fn gitlab_unknown_field_missing_field_and_wrong_type_are_rejected() {
    let fake = gitlab(None);
    let mrs = format!("{}/projects/{PROJECT}/merge_requests", fake.api_url());
    let typo = gl(
        "POST",
        &mrs,
        Some(
            json!({"source_branch": BRANCH, "target_branch": "main", "title": "t", "reviewers": [8]}),
        ),
    );
    assert_eq!(typo.status, 422, "{}", typo.body);
    assert!(
        typo.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("reviewers ")
    );
    let missing = gl("POST", &mrs, Some(json!({"source_branch": BRANCH})));
    assert_eq!(missing.status, 400);
    assert_eq!(
        missing.json()["error"],
        "target_branch is missing, title is missing"
    );
    let wrong = gl(
        "POST",
        &mrs,
        Some(
            json!({"source_branch": BRANCH, "target_branch": "main", "title": "t", "assignee_ids": ["7"]}),
        ),
    );
    assert_eq!(wrong.status, 400);
    assert_eq!(wrong.json()["error"], "assignee_ids is invalid");
    let nothing = gl("PUT", &format!("{mrs}/1"), Some(json!({})));
    assert_eq!(nothing.status, 404, "no MR 1 yet");
    gl(
        "POST",
        &mrs,
        Some(json!({"source_branch": BRANCH, "target_branch": "main", "title": "t"})),
    );
    let nothing = gl("PUT", &format!("{mrs}/1"), Some(json!({})));
    assert_eq!(nothing.status, 400);
    let bad_event = gl(
        "PUT",
        &format!("{mrs}/1"),
        Some(json!({"state_event": "merge"})),
    );
    assert_eq!(bad_event.status, 400);
    let wrong_method = gl("PATCH", &format!("{mrs}/1"), Some(json!({"title": "x"})));
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.header("allow"), Some("GET, PUT"));
    let query_write = gl(
        "PUT",
        &format!("{mrs}/1?title=x"),
        Some(json!({"title": "x"})),
    );
    assert_eq!(query_write.status, 422);
}

#[test]
fn gitlab_user_lookup_is_exact_and_answers_an_array() {
    let fake = gitlab(None);
    fake.add_user(9, "carol");
    let api = fake.api_url();
    let carol = gl("GET", &format!("{api}/users?username=carol"), None);
    assert_eq!(carol.status, 200);
    assert_eq!(carol.json()[0]["id"], 9);
    assert_eq!(carol.json()[0]["username"], "carol");
    let nobody = gl("GET", &format!("{api}/users?username=car"), None);
    assert_eq!(nobody.json(), json!([]));
    let me = gl("GET", &format!("{api}/users?username=tagwatch-bot"), None);
    assert_eq!(me.json()[0]["id"], 1);
}

#[test]
fn gitlab_merge_without_auto_merge_merges_and_a_closed_mr_cannot_merge() {
    let fake = gitlab(None);
    let mrs = format!("{}/projects/{PROJECT}/merge_requests", fake.api_url());
    gl(
        "POST",
        &mrs,
        Some(json!({"source_branch": "a", "target_branch": "main", "title": "t"})),
    );
    gl(
        "POST",
        &mrs,
        Some(json!({"source_branch": "b", "target_branch": "main", "title": "t"})),
    );
    let old_style = gl(
        "PUT",
        &format!("{mrs}/1/merge"),
        Some(json!({"merge_when_pipeline_succeeds": true})),
    );
    assert_eq!(old_style.status, 200);
    assert_eq!(
        fake.merge_request(1).unwrap().auto_merge_param.as_deref(),
        Some("merge_when_pipeline_succeeds")
    );
    let now = gl("PUT", &format!("{mrs}/2/merge"), None);
    assert_eq!(now.status, 200, "{}", now.body);
    assert_eq!(now.json()["state"], "merged");
    let again = gl("PUT", &format!("{mrs}/2/merge"), None);
    assert_eq!(again.status, 405);
}

// ---------------------------------------------------------------------------
// The same scenarios on both forges
// ---------------------------------------------------------------------------

/// Either fake with its own wire: the scenarios below are written once and
/// run on each (`scenario::github`, `scenario::gitlab`); what differs is
/// in the `match` on the forge, side by side.
enum Wire {
    Hub(GitHubFake),
    Lab(GitLabFake),
}

#[derive(Clone, Copy)]
enum Kind {
    GitHub,
    GitLab,
}

impl Wire {
    fn start(kind: Kind, git_dir: Option<&Path>) -> Wire {
        match kind {
            Kind::GitHub => Wire::Hub(github(git_dir)),
            Kind::GitLab => Wire::Lab(gitlab(git_dir)),
        }
    }

    fn fake(&self) -> &dyn ForgeFake {
        match self {
            Wire::Hub(f) => f,
            Wire::Lab(f) => f,
        }
    }

    /// The collection of pull or merge requests.
    fn collection(&self) -> String {
        match self {
            Wire::Hub(f) => format!("{}/repos/acme/gitops/pulls", f.api_url()),
            Wire::Lab(f) => format!("{}/projects/{PROJECT}/merge_requests", f.api_url()),
        }
    }

    /// A request with the headers tagwatch sends to this forge.
    fn call(&self, method: &str, url: &str, body: Option<Value>) -> Resp {
        match self {
            Wire::Hub(_) => gh(method, url, body),
            Wire::Lab(_) => gl(method, url, body),
        }
    }

    /// The create body for a request from `head` into `base`.
    fn open_body(&self, head: &str, base: &str) -> Value {
        match self {
            Wire::Hub(_) => json!({"title": "t", "head": head, "base": base}),
            Wire::Lab(_) => json!({"source_branch": head, "target_branch": base, "title": "t"}),
        }
    }

    /// How many requests the fake holds.
    fn stored(&self) -> usize {
        match self {
            Wire::Hub(f) => f.pulls().len(),
            Wire::Lab(f) => f.merge_requests().len(),
        }
    }
}

/// Runs a scenario `fn(Kind)` on each forge.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[test]
            fn github() {
                super::$name(super::Kind::GitHub);
            }

            #[test]
            fn gitlab() {
                super::$name(super::Kind::GitLab);
            }
        }
    };
}

/// GitHub: 422 `custom` "A pull request already exists"; GitLab: 409 with
/// the message array (and 422 for the same source and target).
fn second_request_for_the_same_branches_is_refused(kind: Kind) {
    let w = Wire::start(kind, None);
    let url = w.collection();
    assert_eq!(
        w.call("POST", &url, Some(w.open_body(BRANCH, "main")))
            .status,
        201
    );
    match &w {
        Wire::Hub(fake) => {
            let dup = gh(
                "POST",
                &url,
                Some(json!({"title": "t", "head": format!("acme:{BRANCH}"), "base": "main"})),
            );
            assert_eq!(dup.status, 422, "{}", dup.body);
            let err = dup.json();
            assert_eq!(err["message"], "Validation Failed");
            assert_eq!(err["errors"][0]["code"], "custom");
            assert_eq!(
                err["errors"][0]["message"],
                format!("A pull request already exists for acme:{BRANCH}.")
            );
            assert_eq!(fake.pulls().len(), 1);
            assert_eq!(fake.create_calls(), 2);
        }
        Wire::Lab(_) => {
            let dup = gl("POST", &url, Some(w.open_body(BRANCH, "main")));
            assert_eq!(dup.status, 409, "{}", dup.body);
            assert_eq!(
                dup.json()["message"],
                json!(["Another open merge request already exists for this source branch: !1"])
            );
            let same = gl("POST", &url, Some(w.open_body("main", "main")));
            assert_eq!(same.status, 422);
        }
    }
}
both!(second_request_for_the_same_branches_is_refused);

/// A head (source) branch the repository lacks: GitHub 422 `head invalid`,
/// GitLab 400 `source_branch does not exist`; nothing is stored.
fn missing_source_branch_is_refused(kind: Kind) {
    let tmp = tempfile::tempdir().unwrap();
    let bare = repo_with_branches(tmp.path(), &[]);
    let w = Wire::start(kind, Some(&bare));
    let resp = w.call("POST", &w.collection(), Some(w.open_body(BRANCH, "main")));
    match kind {
        Kind::GitHub => {
            assert_eq!(resp.status, 422, "{}", resp.body);
            assert_eq!(
                resp.json()["errors"],
                json!([{"resource": "PullRequest", "field": "head", "code": "invalid"}])
            );
        }
        Kind::GitLab => {
            assert_eq!(resp.status, 400, "{}", resp.body);
            assert_eq!(
                resp.json()["message"]["source_branch"],
                json!(["does not exist"])
            );
        }
    }
    assert_eq!(w.stored(), 0);
}
both!(missing_source_branch_is_refused);

/// A wrong or missing token is 401 with the service's body; the other
/// accepted schemes work.
fn bad_token_is_401(kind: Kind) {
    let w = Wire::start(kind, None);
    let url = w.collection();
    match &w {
        Wire::Hub(_) => {
            let bad = gh_with("GET", &url, None, &[("Authorization", "Bearer wrong")]);
            assert_eq!(bad.status, 401);
            assert_eq!(bad.json()["message"], "Bad credentials");
            assert!(bad.json()["documentation_url"].is_string());
            let token_scheme = gh_with(
                "GET",
                &url,
                None,
                &[("Authorization", &format!("token {GH_TOKEN}"))],
            );
            assert_eq!(token_scheme.status, 200);
            let none = gh_with("GET", &url, None, &[("Authorization", "")]);
            assert_eq!(none.status, 401);
            assert_eq!(none.json()["message"], "Requires authentication");
            // And what GitHub asks of every client besides the token.
            let no_agent = gh_with("GET", &url, None, &[("User-Agent", "")]);
            assert_eq!(no_agent.status, 403);
            let no_version = gh_with("GET", &url, None, &[("X-GitHub-Api-Version", "")]);
            assert_eq!(no_version.status, 400);
            let wrong_accept = gh_with("GET", &url, None, &[("Accept", "application/json")]);
            assert_eq!(wrong_accept.status, 415);
        }
        Wire::Lab(_) => {
            let bad = send("GET", &url, &[("PRIVATE-TOKEN", "nope")], None);
            assert_eq!(bad.status, 401);
            assert_eq!(bad.json(), json!({"message": "401 Unauthorized"}));
            let none = send("GET", &url, &[], None);
            assert_eq!(none.status, 401);
            let bearer = format!("Bearer {GL_TOKEN}");
            let ok = send("GET", &url, &[("Authorization", &bearer)], None);
            assert_eq!(ok.status, 200, "{}", ok.body);
        }
    }
}
both!(bad_token_is_401);

/// Rate limits answer with each service's status and headers, create
/// nothing, and the log shows a client that waited as told.
fn rate_limits_carry_their_headers(kind: Kind) {
    let w = Wire::start(kind, None);
    match &w {
        Wire::Hub(fake) => {
            let url = format!("{}?state=open", w.collection());
            fake.fail_next(
                Match::route("pulls.list"),
                1,
                Fault::RateLimit { reset_in_secs: 60 },
            );
            let limited = gh("GET", &url, None);
            assert_eq!(limited.status, 403);
            assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
            let reset: u64 = limited
                .header("x-ratelimit-reset")
                .unwrap()
                .parse()
                .unwrap();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            assert!(
                (now + 59..=now + 62).contains(&reset),
                "reset {reset}, now {now}"
            );
            assert!(
                limited.json()["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("API rate limit exceeded")
            );

            fake.fail_next(
                Match::request("GET", "/repos/acme/gitops/pulls"),
                1,
                Fault::SecondaryRateLimit {
                    status: 429,
                    retry_after_secs: 1,
                },
            );
            let secondary = gh("GET", &url, None);
            assert_eq!(secondary.status, 429);
            assert_eq!(secondary.header("retry-after"), Some("1"));
            assert!(
                secondary.json()["message"]
                    .as_str()
                    .unwrap()
                    .contains("secondary rate limit")
            );

            // A client that obeys retry-after: the fake's log shows the wait.
            std::thread::sleep(Duration::from_secs(1));
            let ok = gh("GET", &url, None);
            assert_eq!(ok.status, 200);
            let log = fake.requests();
            assert_eq!(log.len(), 3);
            assert!(log[0].injected && log[1].injected && !log[2].injected);
            assert!(log[2].since(&log[1]) >= Duration::from_secs(1));

            fake.fail_next(Match::any(), 2, Fault::Status(502));
            assert_eq!(gh("GET", &url, None).status, 502);
            assert_eq!(gh("GET", &url, None).status, 502);
            assert_eq!(gh("GET", &url, None).status, 200);
        }
        Wire::Lab(fake) => {
            let url = w.collection();
            fake.fail_next(
                Match::route("mr.create"),
                1,
                Fault::RateLimit { reset_in_secs: 1 },
            );
            let body = w.open_body(BRANCH, "main");
            let limited = gl("POST", &url, Some(body.clone()));
            assert_eq!(limited.status, 429);
            assert_eq!(limited.header("retry-after"), Some("1"));
            assert_eq!(limited.header("ratelimit-remaining"), Some("0"));
            assert!(
                limited
                    .header("ratelimit-reset")
                    .unwrap()
                    .parse::<u64>()
                    .is_ok()
            );
            assert!(
                limited
                    .header("ratelimit-resettime")
                    .unwrap()
                    .ends_with(" GMT")
            );
            assert_eq!(limited.body, "Retry later\n");
            assert!(
                fake.merge_requests().is_empty(),
                "a throttled create creates nothing"
            );
            std::thread::sleep(Duration::from_secs(1));
            assert_eq!(gl("POST", &url, Some(body)).status, 201);
            let log = fake.requests();
            assert!(log[1].since(&log[0]) >= Duration::from_secs(1));
            assert_eq!(fake.create_calls(), 2);
        }
    }
}
both!(rate_limits_carry_their_headers);

/// Lists page: GitHub with `link: <…page=2>; rel="next"`, newest first;
/// GitLab with `x-next-page` and `x-total`.
fn lists_paginate(kind: Kind) {
    let w = Wire::start(kind, None);
    let url = w.collection();
    match &w {
        Wire::Hub(hub) => {
            for n in 0..3 {
                hub.seed_pull("octocat", &format!("feature-{n}"), "main", "t");
            }
            let first = gh("GET", &format!("{url}?state=open&per_page=2"), None);
            assert_eq!(first.json().as_array().unwrap().len(), 2);
            assert_eq!(first.json()[0]["number"], 3, "newest first");
            let link = first.header("link").unwrap();
            assert!(link.contains("page=2>; rel=\"next\""), "{link}");
            let second = gh("GET", &format!("{url}?state=open&per_page=2&page=2"), None);
            assert_eq!(second.json().as_array().unwrap().len(), 1);
            assert!(second.header("link").is_none());
        }
        Wire::Lab(lab) => {
            for n in 0..3 {
                lab.seed_merge_request(7, &format!("feature-{n}"), "main", "t");
            }
            let first = gl("GET", &format!("{url}?per_page=2"), None);
            assert_eq!(first.json().as_array().unwrap().len(), 2);
            assert_eq!(first.header("x-next-page"), Some("2"));
            assert_eq!(first.header("x-total"), Some("3"));
        }
    }
    w.fake().assert_no_client_errors();
}
both!(lists_paginate);
