//! GitHub's REST API v3 (and GraphQL for auto-merge). `api_url` is
//! `https://api.github.com`, or `https://HOST/api/v3` for GitHub
//! Enterprise Server, whose GraphQL endpoint is `https://HOST/api/graphql`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tracing::warn;

use super::http::{Api, Auth};
use super::{ErrorKind, Forge, ForgeError, Proposal, PullRequest, Reply, State};
use crate::config::ForgeSettings;

/// The media type and API version GitHub's docs ask every client to send.
const HEADERS: &[(&str, &str)] = &[
    ("accept", "application/vnd.github+json"),
    ("x-github-api-version", "2022-11-28"),
];

pub struct GitHub {
    api: Api,
    /// `owner/repo`.
    repository: String,
    owner: String,
}

impl GitHub {
    pub fn new(settings: &ForgeSettings) -> Result<GitHub, ForgeError> {
        let api = Api::new(
            &settings.api_url,
            format!("github {}", settings.repository),
            super::credential(settings),
            Auth::Bearer,
            HEADERS,
        )?;
        let owner = settings
            .repository
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        Ok(GitHub {
            api,
            repository: settings.repository.clone(),
            owner,
        })
    }

    fn path(&self, rest: &str) -> String {
        format!("/repos/{}{rest}", self.repository)
    }

    /// GraphQL lives beside REST: `/graphql` on github.com, `/api/graphql`
    /// on Enterprise Server (whose REST base ends in `/api/v3`).
    fn graphql_url(&self) -> String {
        let base = self.api.base();
        match base.strip_suffix("/v3") {
            Some(api) => format!("{api}/graphql"),
            None => format!("{base}/graphql"),
        }
    }

    fn parse(&self, value: &Value) -> Result<PullRequest, ForgeError> {
        let number = value["number"].as_u64().ok_or_else(|| {
            self.api.error(
                ErrorKind::Protocol,
                format!("a pull request without a number: {value}"),
            )
        })?;
        let merged = value["merged"].as_bool() == Some(true) || value["merged_at"].is_string();
        let state = match (value["state"].as_str(), merged) {
            (Some("open"), _) => State::Open,
            (_, true) => State::Merged,
            _ => State::Closed,
        };
        Ok(PullRequest {
            number,
            url: value["html_url"].as_str().unwrap_or_default().to_string(),
            state,
            title: value["title"].as_str().unwrap_or_default().to_string(),
            head_sha: value["head"]["sha"].as_str().map(str::to_string),
            node_id: value["node_id"].as_str().map(str::to_string),
            labels: value["labels"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .filter_map(|l| l["name"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// Labels, assignees, reviewers and auto-merge. Each is best effort: the
    /// request exists and is the point; a missing label permission must not
    /// make the next cycle open another one.
    async fn apply_options(&self, pr: &PullRequest, proposal: &Proposal) {
        let o = &proposal.options;
        let n = pr.number;
        let mut steps: Vec<(String, String, Value)> = Vec::new();
        if !o.labels.is_empty() {
            steps.push((
                "labels".into(),
                self.path(&format!("/issues/{n}/labels")),
                json!({ "labels": o.labels }),
            ));
        }
        if !o.assignees.is_empty() {
            steps.push((
                "assignees".into(),
                self.path(&format!("/issues/{n}/assignees")),
                json!({ "assignees": o.assignees }),
            ));
        }
        if !o.reviewers.is_empty() {
            // `org/team` is a team; GitHub wants its slug alone.
            let (teams, users): (Vec<&String>, Vec<&String>) =
                o.reviewers.iter().partition(|r| r.contains('/'));
            let teams: Vec<&str> = teams.iter().filter_map(|t| t.split('/').nth(1)).collect();
            steps.push((
                "reviewers".into(),
                self.path(&format!("/pulls/{n}/requested_reviewers")),
                json!({ "reviewers": users, "team_reviewers": teams }),
            ));
        }
        for (what, path, body) in steps {
            let result = self.api.call(Method::POST, &path, &[], Some(&body)).await;
            if let Err(e) = result.and_then(|r| r.ok(&self.api, &what)) {
                warn!(pr = %pr.url, error = %e, "could not set {what}");
            }
        }
        if o.auto_merge {
            let Some(id) = &pr.node_id else {
                warn!(pr = %pr.url, "no node_id; cannot enable auto-merge");
                return;
            };
            let body = json!({
                "query": "mutation($pullRequestId: ID!) { enablePullRequestAutoMerge(input: {pullRequestId: $pullRequestId}) { clientMutationId } }",
                "variables": { "pullRequestId": id },
            });
            let url = self.graphql_url();
            let result = self.api.call(Method::POST, &url, &[], Some(&body)).await;
            match result.and_then(|r| r.ok(&self.api, "auto-merge")) {
                Ok(v) if v.get("errors").is_some() => {
                    warn!(pr = %pr.url, errors = %v["errors"], "could not enable auto-merge");
                }
                Ok(_) => {}
                Err(e) => warn!(pr = %pr.url, error = %e, "could not enable auto-merge"),
            }
        }
    }
}

impl Forge for GitHub {
    fn pull_state<'a>(&'a self, repository: Option<&'a str>, number: u64) -> Reply<'a, State> {
        Box::pin(async move {
            let repository = repository.unwrap_or(&self.repository);
            let path = format!("/repos/{repository}/pulls/{number}");
            let value = self
                .api
                .call(Method::GET, &path, &[], None)
                .await?
                .ok(&self.api, "get pull request")?;
            Ok(self.parse(&value)?.state)
        })
    }

    fn find<'a>(&'a self, branch: &'a str, base: &'a str) -> Reply<'a, Option<PullRequest>> {
        Box::pin(async move {
            let head = format!("{}:{branch}", self.owner);
            let query = [
                ("state", "all"),
                ("head", head.as_str()),
                ("base", base),
                ("sort", "created"),
                ("direction", "desc"),
                ("per_page", "10"),
            ];
            let list = self
                .api
                .call(Method::GET, &self.path("/pulls"), &query, None)
                .await?
                .ok(&self.api, "list pull requests")?;
            let list = list.as_array().ok_or_else(|| {
                self.api
                    .error(ErrorKind::Protocol, format!("pulls is not a list: {list}"))
            })?;
            let parsed = list
                .iter()
                .map(|v| self.parse(v))
                .collect::<Result<_, _>>()?;
            Ok(super::pick(parsed))
        })
    }

    fn open<'a>(&'a self, proposal: &'a Proposal) -> Reply<'a, PullRequest> {
        Box::pin(async move {
            let body = json!({
                "title": proposal.title,
                "head": proposal.branch,
                "base": proposal.base,
                "body": proposal.body,
                "draft": proposal.options.draft,
                "maintainer_can_modify": false,
            });
            let response = self
                .api
                .call(Method::POST, &self.path("/pulls"), &[], Some(&body))
                .await?;
            if response.status == StatusCode::UNPROCESSABLE_ENTITY
                && response.body.to_string().contains("already exists")
            {
                // Another replica opened it between our look and now, or
                // our own earlier attempt did and its answer was lost.
                if let Some(pr) = self.find(&proposal.branch, &proposal.base).await?
                    && pr.state == State::Open
                {
                    self.apply_options(&pr, proposal).await;
                    return Ok(pr);
                }
            }
            let pr = self.parse(&response.ok(&self.api, "open pull request")?)?;
            self.apply_options(&pr, proposal).await;
            Ok(pr)
        })
    }

    fn decorate<'a>(&'a self, pr: &'a PullRequest, proposal: &'a Proposal) -> Reply<'a, ()> {
        Box::pin(async move {
            self.apply_options(pr, proposal).await;
            Ok(())
        })
    }

    fn update<'a>(&'a self, pr: &'a PullRequest, proposal: &'a Proposal) -> Reply<'a, ()> {
        Box::pin(async move {
            let body = json!({ "title": proposal.title, "body": proposal.body });
            let path = self.path(&format!("/pulls/{}", pr.number));
            self.api
                .send(Method::PATCH, &path, &body, "update pull request")
                .await?;
            Ok(())
        })
    }

    fn close<'a>(&'a self, pr: &'a PullRequest, comment: &'a str) -> Reply<'a, ()> {
        Box::pin(async move {
            let path = self.path(&format!("/issues/{}/comments", pr.number));
            let body = json!({ "body": comment });
            self.api.send(Method::POST, &path, &body, "comment").await?;
            let path = self.path(&format!("/pulls/{}", pr.number));
            let body = json!({ "state": "closed" });
            self.api
                .send(Method::PATCH, &path, &body, "close pull request")
                .await?;
            Ok(())
        })
    }
}
