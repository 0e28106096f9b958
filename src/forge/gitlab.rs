//! GitLab's REST API v4 merge requests. `api_url` is
//! `https://gitlab.com/api/v4`, or the same path on a self-hosted instance.
//! The project is addressed by its full path, URL-encoded (`group%2Fsub%2Fproject`).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tracing::warn;

use super::http::{Api, Auth};
use super::{ErrorKind, Forge, ForgeError, Proposal, PullRequest, Reply, State};
use crate::config::ForgeSettings;

pub struct GitLab {
    api: Api,
    /// The project path, percent-encoded for use as `:id`.
    project: String,
}

impl GitLab {
    pub fn new(settings: &ForgeSettings) -> Result<GitLab, ForgeError> {
        let api = Api::new(
            &settings.api_url,
            format!("gitlab {}", settings.repository),
            super::credential(settings),
            Auth::PrivateToken,
            &[],
        )?;
        Ok(GitLab {
            api,
            project: encode(&settings.repository),
        })
    }

    fn path(&self, rest: &str) -> String {
        format!("/projects/{}{rest}", self.project)
    }

    fn parse(&self, value: &Value) -> Result<PullRequest, ForgeError> {
        let number = value["iid"].as_u64().ok_or_else(|| {
            self.api.error(
                ErrorKind::Protocol,
                format!("a merge request without an iid: {value}"),
            )
        })?;
        let state = match value["state"].as_str() {
            Some("opened") => State::Open,
            Some("merged") => State::Merged,
            _ => State::Closed,
        };
        Ok(PullRequest {
            number,
            url: value["web_url"].as_str().unwrap_or_default().to_string(),
            state,
            // A draft's title carries the prefix `title()` adds; compare
            // without it, or every cycle would retitle it.
            title: {
                let title = value["title"].as_str().unwrap_or_default();
                title.strip_prefix("Draft: ").unwrap_or(title).to_string()
            },
            head_sha: value["sha"].as_str().map(str::to_string),
            node_id: None,
            labels: value["labels"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .filter_map(|l| l.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// GitLab takes user ids; the config names people. Unknown names are
    /// logged and skipped rather than failing the merge request.
    async fn user_ids(&self, names: &[String]) -> Vec<u64> {
        let mut ids = Vec::new();
        for name in names {
            let found = self
                .api
                .call(Method::GET, "/users", &[("username", name)], None)
                .await
                .and_then(|r| r.ok(&self.api, "look up user"));
            match found.as_ref().map(|v| v[0]["id"].as_u64()) {
                Ok(Some(id)) => ids.push(id),
                Ok(None) => warn!(user = %name, "no such GitLab user; skipped"),
                Err(e) => warn!(user = %name, error = %e, "could not look up GitLab user"),
            }
        }
        ids
    }
}

impl GitLab {
    async fn auto_merge(&self, pr: &PullRequest, proposal: &Proposal) {
        if !proposal.options.auto_merge {
            return;
        }
        let path = self.path(&format!("/merge_requests/{}/merge", pr.number));
        let body = json!({ "merge_when_pipeline_succeeds": true });
        if let Err(e) = self.api.send(Method::PUT, &path, &body, "auto-merge").await {
            warn!(mr = %pr.url, error = %e, "could not set merge when pipeline succeeds");
        }
    }
}

/// Percent-encodes a project path for the `:id` segment.
fn encode(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// GitLab marks a draft by the title's prefix.
fn title(proposal: &Proposal) -> String {
    if proposal.options.draft {
        format!("Draft: {}", proposal.title)
    } else {
        proposal.title.clone()
    }
}

impl Forge for GitLab {
    fn pull_state<'a>(&'a self, repository: Option<&'a str>, number: u64) -> Reply<'a, State> {
        Box::pin(async move {
            let project = repository.map_or_else(|| self.project.clone(), encode);
            let path = format!("/projects/{project}/merge_requests/{number}");
            let value = self
                .api
                .call(Method::GET, &path, &[], None)
                .await?
                .ok(&self.api, "get merge request")?;
            // `locked` is GitLab's brief state while a merge is under way:
            // not closed, so a preview must not be removed for it.
            if value["state"] == "locked" {
                return Ok(State::Open);
            }
            Ok(self.parse(&value)?.state)
        })
    }

    fn find<'a>(&'a self, branch: &'a str, base: &'a str) -> Reply<'a, Option<PullRequest>> {
        Box::pin(async move {
            let query = [
                ("state", "all"),
                ("source_branch", branch),
                ("target_branch", base),
                ("order_by", "created_at"),
                ("sort", "desc"),
                ("per_page", "10"),
            ];
            let list = self
                .api
                .call(Method::GET, &self.path("/merge_requests"), &query, None)
                .await?
                .ok(&self.api, "list merge requests")?;
            let list = list.as_array().ok_or_else(|| {
                self.api.error(
                    ErrorKind::Protocol,
                    format!("merge_requests is not a list: {list}"),
                )
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
            let o = &proposal.options;
            let mut body = json!({
                "source_branch": proposal.branch,
                "target_branch": proposal.base,
                "title": title(proposal),
                "description": proposal.body,
                "remove_source_branch": true,
            });
            if !o.labels.is_empty() {
                body["labels"] = json!(o.labels.join(","));
            }
            if !o.assignees.is_empty() {
                body["assignee_ids"] = json!(self.user_ids(&o.assignees).await);
            }
            if !o.reviewers.is_empty() {
                body["reviewer_ids"] = json!(self.user_ids(&o.reviewers).await);
            }
            let response = self
                .api
                .call(
                    Method::POST,
                    &self.path("/merge_requests"),
                    &[],
                    Some(&body),
                )
                .await?;
            if response.status == StatusCode::CONFLICT
                && let Some(pr) = self.find(&proposal.branch, &proposal.base).await?
                && pr.state == State::Open
            {
                // Another replica opened it between our look and now, or
                // our own earlier attempt did and its answer was lost.
                self.decorate(&pr, proposal).await?;
                return Ok(pr);
            }
            let pr = self.parse(&response.ok(&self.api, "open merge request")?)?;
            self.auto_merge(&pr, proposal).await;
            Ok(pr)
        })
    }

    fn decorate<'a>(&'a self, pr: &'a PullRequest, proposal: &'a Proposal) -> Reply<'a, ()> {
        Box::pin(async move {
            let o = &proposal.options;
            let mut body = json!({});
            if !o.labels.is_empty() {
                body["add_labels"] = json!(o.labels.join(","));
            }
            if !o.assignees.is_empty() {
                body["assignee_ids"] = json!(self.user_ids(&o.assignees).await);
            }
            if !o.reviewers.is_empty() {
                body["reviewer_ids"] = json!(self.user_ids(&o.reviewers).await);
            }
            // GitLab refuses an update without any attribute.
            if body.as_object().is_some_and(|b| !b.is_empty()) {
                let path = self.path(&format!("/merge_requests/{}", pr.number));
                if let Err(e) = self.api.send(Method::PUT, &path, &body, "decorate").await {
                    warn!(mr = %pr.url, error = %e, "could not set labels, assignees or reviewers");
                }
            }
            self.auto_merge(pr, proposal).await;
            Ok(())
        })
    }

    fn update<'a>(&'a self, pr: &'a PullRequest, proposal: &'a Proposal) -> Reply<'a, ()> {
        Box::pin(async move {
            let body = json!({ "title": title(proposal), "description": proposal.body });
            let path = self.path(&format!("/merge_requests/{}", pr.number));
            self.api
                .send(Method::PUT, &path, &body, "update merge request")
                .await?;
            Ok(())
        })
    }

    fn close<'a>(&'a self, pr: &'a PullRequest, comment: &'a str) -> Reply<'a, ()> {
        Box::pin(async move {
            let path = self.path(&format!("/merge_requests/{}/notes", pr.number));
            let body = json!({ "body": comment });
            self.api.send(Method::POST, &path, &body, "comment").await?;
            let path = self.path(&format!("/merge_requests/{}", pr.number));
            let body = json!({ "state_event": "close" });
            self.api
                .send(Method::PUT, &path, &body, "close merge request")
                .await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn project_paths_are_encoded_as_one_segment() {
        assert_eq!(super::encode("group/sub/project"), "group%2Fsub%2Fproject");
        assert_eq!(super::encode("a.b/c-d_e"), "a.b%2Fc-d_e");
    }
}
