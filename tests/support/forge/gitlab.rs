//! The GitLab fake: REST v4 merge requests, their notes and merge, and the
//! user lookup, for a project addressed by its encoded path or its id.
//! Logging, faults and serving are [`super::server`]'s; this file holds
//! GitLab's routes and answers.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::response::Response;
use serde_json::{Map, Value, json};

use super::server::*;

/// A GitLab user, as `GET /users` answers.
#[derive(Clone, Debug, PartialEq)]
pub struct GitLabUser {
    pub id: u64,
    pub username: String,
    pub name: String,
}

impl GitLabUser {
    pub fn new(id: u64, username: &str) -> GitLabUser {
        GitLabUser {
            id,
            username: username.to_string(),
            name: username.to_string(),
        }
    }
}

/// How a [`GitLabFake`] starts.
#[derive(Clone, Debug)]
pub struct GitLabConfig {
    /// The full path, e.g. `acme/platform/gitops`.
    pub project_path: String,
    pub project_id: u64,
    pub token: String,
    /// The user the token belongs to: the author of created MRs.
    pub me: GitLabUser,
    /// Every user `GET /users?username=` can find; `me` is added.
    pub users: Vec<GitLabUser>,
    pub git_dir: Option<PathBuf>,
}

impl GitLabConfig {
    pub fn new(project_path: &str) -> GitLabConfig {
        GitLabConfig {
            project_path: project_path.to_string(),
            project_id: 42,
            token: "glpat-faketoken".to_string(),
            me: GitLabUser::new(1, "tagwatch-bot"),
            users: Vec::new(),
            git_dir: None,
        }
    }

    pub fn token(mut self, token: &str) -> Self {
        self.token = token.to_string();
        self
    }

    pub fn project_id(mut self, id: u64) -> Self {
        self.project_id = id;
        self
    }

    pub fn user(mut self, id: u64, username: &str) -> Self {
        self.users.push(GitLabUser::new(id, username));
        self
    }

    pub fn git_dir(mut self, dir: &Path) -> Self {
        self.git_dir = Some(dir.to_path_buf());
        self
    }
}

/// A merge request in the GitLab fake, with everything done to it.
#[derive(Clone, Debug, PartialEq)]
pub struct MergeRequest {
    pub id: u64,
    pub iid: u64,
    pub author_id: u64,
    pub title: String,
    pub description: Option<String>,
    /// `opened`, `closed` or `merged`.
    pub state: String,
    pub source_branch: String,
    pub target_branch: String,
    pub sha: String,
    pub labels: Vec<String>,
    pub assignee_ids: Vec<u64>,
    pub reviewer_ids: Vec<u64>,
    pub remove_source_branch: Option<bool>,
    pub squash: bool,
    pub allow_collaboration: bool,
    pub discussion_locked: Option<bool>,
    /// Auto-merge (merge when the pipeline succeeds) was set.
    pub auto_merge: bool,
    /// Which parameter set it: `auto_merge` or `merge_when_pipeline_succeeds`.
    pub auto_merge_param: Option<String>,
    pub notes: Vec<Comment>,
    pub created_at: String,
    pub updated_at: String,
    pub closed_at: Option<String>,
    pub merged_at: Option<String>,
}

impl MergeRequest {
    /// GitLab's rule: the title starts with `Draft:`, `[Draft]` or `(Draft)`,
    /// in any case.
    pub fn draft(&self) -> bool {
        let t = self.title.trim_start().to_ascii_lowercase();
        t.starts_with("draft:") || t.starts_with("[draft]") || t.starts_with("(draft)")
    }

    pub fn is_open(&self) -> bool {
        self.state == "opened"
    }
}

/// Everything the GitLab fake holds; tests may read and change it.
pub struct GitLabState {
    pub project_path: String,
    pub project_id: u64,
    pub token: String,
    pub me: GitLabUser,
    pub users: Vec<GitLabUser>,
    pub git_dir: Option<PathBuf>,
    pub merge_requests: Vec<MergeRequest>,
    pub log: Log,
    root_url: String,
    next_note_id: u64,
}

impl GitLabState {
    pub fn api_url(&self) -> String {
        format!("{}/api/v4", self.root_url)
    }

    pub fn web_url(&self) -> String {
        self.root_url.clone()
    }

    fn user(&self, id: u64) -> Option<&GitLabUser> {
        self.users.iter().find(|u| u.id == id)
    }

    fn user_json(&self, u: &GitLabUser) -> Value {
        json!({
            "id": u.id,
            "username": u.username,
            "name": u.name,
            "state": "active",
            "locked": false,
            "avatar_url": null,
            "web_url": format!("{}/{}", self.web_url(), u.username),
        })
    }

    fn mr_index(&self, iid: u64) -> Option<usize> {
        self.merge_requests.iter().position(|m| m.iid == iid)
    }

    fn open_duplicate(&self, source: &str, target: &str, not: u64) -> Option<u64> {
        self.merge_requests
            .iter()
            .find(|m| {
                m.iid != not
                    && m.is_open()
                    && m.source_branch == source
                    && m.target_branch == target
            })
            .map(|m| m.iid)
    }

    /// Known users among `ids`; `0` (or nothing) unassigns, as on GitLab.
    fn known_ids(&self, ids: &[u64]) -> Vec<u64> {
        let mut out = Vec::new();
        for id in ids {
            if *id != 0 && self.user(*id).is_some() && !out.contains(id) {
                out.push(*id);
            }
        }
        out
    }

    fn mr_json(&self, m: &MergeRequest) -> Value {
        let users = |ids: &[u64]| -> Vec<Value> {
            ids.iter()
                .filter_map(|id| self.user(*id))
                .map(|u| self.user_json(u))
                .collect()
        };
        let author = self
            .user(m.author_id)
            .map(|u| self.user_json(u))
            .unwrap_or(Value::Null);
        let head = json!({
            "id": m.id,
            "iid": m.iid,
            "project_id": self.project_id,
            "title": m.title,
            "description": m.description,
            "state": m.state,
            "created_at": m.created_at,
            "updated_at": m.updated_at,
            "merged_at": m.merged_at,
            "closed_at": m.closed_at,
            "target_branch": m.target_branch,
            "source_branch": m.source_branch,
            "source_project_id": self.project_id,
            "target_project_id": self.project_id,
            "upvotes": 0,
            "downvotes": 0,
        });
        // Two halves: one `json!` this large exceeds the macro recursion limit.
        let rest = json!({
            "author": author,
            "assignee": users(&m.assignee_ids).into_iter().next(),
            "assignees": users(&m.assignee_ids),
            "reviewers": users(&m.reviewer_ids),
            "labels": m.labels,
            "draft": m.draft(),
            "work_in_progress": m.draft(),
            "milestone": null,
            "merge_when_pipeline_succeeds": m.auto_merge,
            "merge_status": "can_be_merged",
            "detailed_merge_status": if m.draft() { "draft_status" } else { "mergeable" },
            "sha": m.sha,
            "merge_commit_sha": null,
            "squash_commit_sha": null,
            "user_notes_count": m.notes.len(),
            "discussion_locked": m.discussion_locked,
            "should_remove_source_branch": null,
            "force_remove_source_branch": m.remove_source_branch,
            "allow_collaboration": m.allow_collaboration,
            "squash": m.squash,
            "has_conflicts": false,
            "blocking_discussions_resolved": true,
            "web_url": format!("{}/{}/-/merge_requests/{}", self.web_url(), self.project_path, m.iid),
            "references": {
                "short": format!("!{}", m.iid),
                "relative": format!("!{}", m.iid),
                "full": format!("{}!{}", self.project_path, m.iid),
            },
        });
        merge_objects(head, rest)
    }

    fn note_json(&self, m: &MergeRequest, n: &Comment) -> Value {
        let author = self
            .users
            .iter()
            .find(|u| u.username == n.author)
            .map(|u| self.user_json(u))
            .unwrap_or(Value::Null);
        json!({
            "id": n.id,
            "type": null,
            "body": n.body,
            "author": author,
            "created_at": n.created_at,
            "updated_at": n.created_at,
            "system": false,
            "noteable_id": m.id,
            "noteable_type": "MergeRequest",
            "noteable_iid": m.iid,
            "project_id": self.project_id,
            "resolvable": false,
            "confidential": false,
            "internal": false,
        })
    }

    fn new_mr(
        &mut self,
        author_id: u64,
        title: &str,
        source: &str,
        target: &str,
        sha: String,
    ) -> u64 {
        let iid = self.merge_requests.iter().map(|m| m.iid).max().unwrap_or(0) + 1;
        let now = now_rfc3339();
        self.merge_requests.push(MergeRequest {
            id: 50_000 + iid,
            iid,
            author_id,
            title: title.to_string(),
            description: None,
            state: "opened".to_string(),
            source_branch: source.to_string(),
            target_branch: target.to_string(),
            sha,
            labels: Vec::new(),
            assignee_ids: Vec::new(),
            reviewer_ids: Vec::new(),
            remove_source_branch: None,
            squash: false,
            allow_collaboration: false,
            discussion_locked: None,
            auto_merge: false,
            auto_merge_param: None,
            notes: Vec::new(),
            created_at: now.clone(),
            updated_at: now,
            closed_at: None,
            merged_at: None,
        });
        iid
    }
}

/// A stateful fake of the GitLab REST API v4.
pub type GitLabFake = Fake<GitLabState>;

impl GitLabFake {
    pub fn start(config: GitLabConfig) -> GitLabFake {
        let (listener, root_url) = bind();
        let mut users = vec![config.me.clone()];
        for u in config.users {
            if !users.iter().any(|x| x.id == u.id) {
                users.push(u);
            }
        }
        Fake::serve(
            listener,
            GitLabState {
                project_path: config.project_path,
                project_id: config.project_id,
                token: config.token,
                me: config.me,
                users,
                git_dir: config.git_dir,
                merge_requests: Vec::new(),
                log: Log::default(),
                root_url,
                next_note_id: 1,
            },
        )
    }

    /// The `api_url` to configure: `http://127.0.0.1:PORT/api/v4`.
    pub fn api_url(&self) -> String {
        self.state().api_url()
    }

    pub fn set_token(&self, token: &str) {
        self.state().token = token.to_string();
    }

    pub fn set_git_dir(&self, dir: Option<&Path>) {
        self.state().git_dir = dir.map(Path::to_path_buf);
    }

    /// Adds (or renames) a user `GET /users?username=` can find.
    pub fn add_user(&self, id: u64, username: &str) {
        let mut s = self.state();
        s.users.retain(|u| u.id != id);
        s.users.push(GitLabUser::new(id, username));
    }

    /// An open MR that someone else opened.
    pub fn seed_merge_request(
        &self,
        author_id: u64,
        source: &str,
        target: &str,
        title: &str,
    ) -> u64 {
        let mut s = self.state();
        s.new_mr(author_id, title, source, target, fake_sha(source))
    }

    pub fn merge_requests(&self) -> Vec<MergeRequest> {
        self.state().merge_requests.clone()
    }

    pub fn merge_request(&self, iid: u64) -> Option<MergeRequest> {
        self.state()
            .merge_requests
            .iter()
            .find(|m| m.iid == iid)
            .cloned()
    }

    pub fn open_merge_requests(&self) -> Vec<MergeRequest> {
        self.state()
            .merge_requests
            .iter()
            .filter(|m| m.is_open())
            .cloned()
            .collect()
    }

    pub fn create_calls(&self) -> usize {
        self.count("mr.create")
    }
}

fn gl_json(status: u16, body: Value) -> Response {
    respond(status, Vec::new(), "application/json", body.to_string())
}

/// Grape's parameter errors: `{"error": "..."}`.
fn gl_param_error(status: u16, error: &str) -> Response {
    gl_json(status, json!({ "error": error }))
}

fn gl_field_error(e: FieldError) -> Response {
    match e {
        FieldError::Unknown(k) => gl_param_error(
            422,
            &format!(
                "{k} is not a parameter of this endpoint (fake: unknown fields are rejected; GitLab ignores them)"
            ),
        ),
        FieldError::Unsupported(k) => gl_param_error(
            422,
            &format!("{k} is documented by GitLab but not implemented by the fake"),
        ),
        FieldError::Missing(m) => {
            let list: Vec<String> = m.iter().map(|f| format!("{f} is missing")).collect();
            gl_param_error(400, &list.join(", "))
        }
        FieldError::WrongType { field, .. } => gl_param_error(400, &format!("{field} is invalid")),
    }
}

fn gl_body_problem(p: BodyProblem) -> Response {
    match p {
        BodyProblem::ContentType(ct) => gl_param_error(
            415,
            &format!(
                "fake: a JSON body needs Content-Type: application/json (got {})",
                ct.as_deref().unwrap_or("none")
            ),
        ),
        BodyProblem::NotJson => gl_json(
            400,
            json!({"message": "400 Bad request - body is not valid JSON"}),
        ),
        BodyProblem::NotObject => gl_json(
            400,
            json!({"message": "400 Bad request - body should be a JSON object"}),
        ),
    }
}

fn gl_fault(f: &Fault) -> Response {
    match f {
        Fault::RateLimit { reset_in_secs } => {
            let reset = epoch_in(*reset_in_secs);
            respond(
                429,
                vec![
                    ("retry-after".to_string(), reset_in_secs.to_string()),
                    (
                        "ratelimit-name".to_string(),
                        "throttle_authenticated_api".to_string(),
                    ),
                    ("ratelimit-limit".to_string(), "2000".to_string()),
                    ("ratelimit-observed".to_string(), "2001".to_string()),
                    ("ratelimit-remaining".to_string(), "0".to_string()),
                    ("ratelimit-reset".to_string(), reset.to_string()),
                    ("ratelimit-resettime".to_string(), http_date(reset)),
                ],
                "text/plain",
                "Retry later\n".to_string(),
            )
        }
        Fault::SecondaryRateLimit {
            status,
            retry_after_secs,
        } => respond(
            *status,
            vec![("retry-after".to_string(), retry_after_secs.to_string())],
            "text/plain",
            "Retry later\n".to_string(),
        ),
        Fault::Status(status) => gl_json(
            *status,
            json!({"message": format!("{status} {}", reason(*status))}),
        ),
        Fault::Response {
            status,
            headers,
            body,
        } => {
            let ct = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| "application/json".to_string());
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

const GL_MRS: &[(&str, &str)] = &[("GET", "mr.list"), ("POST", "mr.create")];
const GL_MR: &[(&str, &str)] = &[("GET", "mr.get"), ("PUT", "mr.update")];
const GL_NOTES: &[(&str, &str)] = &[("POST", "mr.note")];
const GL_MERGE: &[(&str, &str)] = &[("PUT", "mr.merge")];
const GL_USERS: &[(&str, &str)] = &[("GET", "users.list")];

fn gitlab_resolve(method: &str, path: &str) -> (String, Resolved) {
    let Some(api_path) = path.strip_prefix("/api/v4").filter(|r| r.starts_with('/')) else {
        return (path.to_string(), Resolved::NotFound);
    };
    let Some(segs) = segments(api_path) else {
        return (api_path.to_string(), Resolved::NotFound);
    };
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let p = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let resolved = match s.as_slice() {
        ["projects", id, "merge_requests"] if !id.is_empty() => by_method(method, GL_MRS, p(&[id])),
        ["projects", id, "merge_requests", iid] if is_number(iid) => {
            by_method(method, GL_MR, p(&[id, iid]))
        }
        ["projects", id, "merge_requests", iid, "notes"] if is_number(iid) => {
            by_method(method, GL_NOTES, p(&[id, iid]))
        }
        ["projects", id, "merge_requests", iid, "merge"] if is_number(iid) => {
            by_method(method, GL_MERGE, p(&[id, iid]))
        }
        ["users"] => by_method(method, GL_USERS, Vec::new()),
        _ => Resolved::NotFound,
    };
    (api_path.to_string(), resolved)
}

impl Service for GitLabState {
    const THREAD: &'static str = "fake-gitlab";

    fn log(&mut self) -> &mut Log {
        &mut self.log
    }

    fn resolve(&self, inc: &Incoming) -> (String, Resolved) {
        gitlab_resolve(&inc.method, &inc.path)
    }

    fn fault(fault: &Fault) -> Response {
        gl_fault(fault)
    }

    fn serve<'a>(
        state: &'a Arc<Mutex<Self>>,
        inc: &'a Incoming,
        resolved: Resolved,
    ) -> Pin<Box<dyn Future<Output = Response> + Send + 'a>> {
        Box::pin(gitlab_serve(state, inc, resolved))
    }
}

async fn gitlab_serve(
    state: &Arc<Mutex<GitLabState>>,
    inc: &Incoming,
    resolved: Resolved,
) -> Response {
    let token = lock(state).token.clone();
    let sent = inc.header("private-token").map(str::to_string).or_else(|| {
        let v = inc.header("authorization")?.trim();
        let (scheme, rest) = v.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| rest.trim().to_string())
    });
    if sent.as_deref() != Some(token.as_str()) {
        return gl_json(401, json!({"message": "401 Unauthorized"}));
    }
    let (name, params) = match resolved {
        Resolved::NotFound => return gl_json(404, json!({"error": "404 Not Found"})),
        Resolved::WrongMethod(allowed) => {
            let allow = allowed.join(", ");
            return respond(
                405,
                vec![("allow".to_string(), allow.clone())],
                "application/json",
                json!({"error": format!("405 Not Allowed (fake: use {allow})")}).to_string(),
            );
        }
        Resolved::Route { name, params } => (name, params),
    };
    if name == "users.list" {
        return gl_users(state, inc);
    }
    {
        let s = lock(state);
        let id = &params[0];
        let ours = id.eq_ignore_ascii_case(&s.project_path) || *id == s.project_id.to_string();
        if !ours {
            return gl_json(404, json!({"message": "404 Project Not Found"}));
        }
    }
    if inc.is_write()
        && let Some((k, _)) = inc.query.first()
    {
        return gl_param_error(
            422,
            &format!(
                "fake: {k} was sent in the query string; send the parameters of a write in the JSON body"
            ),
        );
    }
    let body = if inc.is_write() {
        match json_object(inc) {
            Ok(b) => b,
            Err(p) => return gl_body_problem(p),
        }
    } else {
        Map::new()
    };
    let iid = params.get(1).and_then(|n| n.parse::<u64>().ok());
    if let Some(iid) = iid
        && lock(state).mr_index(iid).is_none()
    {
        return gl_json(404, json!({"message": "404 Not found"}));
    }
    match (name, iid) {
        ("mr.list", _) => gl_list(state, inc),
        ("mr.create", _) => gl_create(state, body).await,
        ("mr.get", Some(iid)) => {
            let s = lock(state);
            let m = &s.merge_requests[s.mr_index(iid).expect("checked")];
            gl_json(200, s.mr_json(m))
        }
        ("mr.update", Some(iid)) => gl_update(state, iid, body).await,
        ("mr.note", Some(iid)) => gl_note(state, iid, body),
        ("mr.merge", Some(iid)) => gl_merge(state, iid, body).await,
        _ => gl_json(404, json!({"error": "404 Not Found"})),
    }
}

fn gl_users(state: &Arc<Mutex<GitLabState>>, inc: &Incoming) -> Response {
    if let Some(k) = unknown_query(&inc.query, &["username", "page", "per_page"]) {
        return gl_param_error(
            422,
            &format!("{k} is not implemented by the fake (use username)"),
        );
    }
    let s = lock(state);
    let found: Vec<Value> = match inc.query_param("username") {
        Some(name) => s
            .users
            .iter()
            .filter(|u| u.username.eq_ignore_ascii_case(name))
            .map(|u| s.user_json(u))
            .collect(),
        None => s.users.iter().map(|u| s.user_json(u)).collect(),
    };
    gl_json(200, Value::Array(found))
}

fn gl_list(state: &Arc<Mutex<GitLabState>>, inc: &Incoming) -> Response {
    let allowed = [
        "state",
        "source_branch",
        "target_branch",
        "labels",
        "order_by",
        "sort",
        "page",
        "per_page",
    ];
    if let Some(k) = unknown_query(&inc.query, &allowed) {
        return gl_param_error(
            422,
            &format!("{k} is not a parameter the fake implements for this endpoint"),
        );
    }
    // GitLab's default is `all`, not `opened`.
    let want = inc.query_param("state").unwrap_or("all");
    if !["opened", "closed", "locked", "merged", "all"].contains(&want) {
        return gl_param_error(400, "state does not have a valid value");
    }
    let order_by = inc.query_param("order_by").unwrap_or("created_at");
    if !["created_at", "updated_at"].contains(&order_by) {
        return gl_param_error(400, "order_by does not have a valid value");
    }
    let sort = inc.query_param("sort").unwrap_or("desc");
    if !["asc", "desc"].contains(&sort) {
        return gl_param_error(400, "sort does not have a valid value");
    }
    let (page, per_page) = match page_params(inc, 20) {
        Ok(x) => x,
        Err(k) => return gl_param_error(400, &format!("{k} is invalid")),
    };
    let labels: Vec<String> = inc
        .query_param("labels")
        .map(|l| str_list(&Value::String(l.to_string())))
        .unwrap_or_default();
    let s = lock(state);
    let mut mrs: Vec<&MergeRequest> = s
        .merge_requests
        .iter()
        .filter(|m| want == "all" || m.state == want)
        .filter(|m| {
            inc.query_param("source_branch")
                .is_none_or(|b| m.source_branch == b)
        })
        .filter(|m| {
            inc.query_param("target_branch")
                .is_none_or(|b| m.target_branch == b)
        })
        .filter(|m| labels.iter().all(|l| m.labels.contains(l)))
        .collect();
    if order_by == "updated_at" {
        mrs.sort_by(|a, b| a.updated_at.cmp(&b.updated_at).then(a.iid.cmp(&b.iid)));
    } else {
        mrs.sort_by_key(|m| m.iid);
    }
    if sort == "desc" {
        mrs.reverse();
    }
    let total = mrs.len();
    let (items, total_pages) = paginate(mrs, page, per_page);
    let body: Vec<Value> = items.iter().map(|m| s.mr_json(m)).collect();
    let mut headers = vec![
        ("x-page".to_string(), page.to_string()),
        ("x-per-page".to_string(), per_page.to_string()),
        ("x-total".to_string(), total.to_string()),
        ("x-total-pages".to_string(), total_pages.to_string()),
    ];
    headers.push((
        "x-next-page".to_string(),
        if page < total_pages {
            (page + 1).to_string()
        } else {
            String::new()
        },
    ));
    respond(
        200,
        headers,
        "application/json",
        Value::Array(body).to_string(),
    )
}

/// The user ids in `list`, or the single id in `single`.
fn id_list(body: &Map<String, Value>, list: &str, single: Option<&str>) -> Option<Vec<u64>> {
    if let Some(v) = body.get(list).and_then(Value::as_array) {
        return Some(v.iter().filter_map(Value::as_u64).collect());
    }
    single
        .and_then(|k| body.get(k))
        .and_then(Value::as_u64)
        .map(|id| vec![id])
}

async fn gl_create(state: &Arc<Mutex<GitLabState>>, body: Map<String, Value>) -> Response {
    let fields = [
        req("source_branch", Ty::Str),
        req("target_branch", Ty::Str),
        req("title", Ty::Str),
        opt("description", Ty::Str),
        opt("labels", Ty::StrOrStrList),
        opt("assignee_id", Ty::Int),
        opt("assignee_ids", Ty::IntList),
        opt("reviewer_ids", Ty::IntList),
        opt("remove_source_branch", Ty::Bool),
        opt("squash", Ty::Bool),
        opt("allow_collaboration", Ty::Bool),
    ];
    let unsupported = [
        "target_project_id",
        "milestone_id",
        "merge_after",
        "approvals_before_merge",
        "allow_maintainer_to_push",
    ];
    if let Err(e) = check_fields(&body, &fields, &unsupported) {
        return gl_field_error(e);
    }
    let source = body["source_branch"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let target = body["target_branch"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let title = body["title"].as_str().unwrap_or_default().to_string();
    if title.trim().is_empty() {
        return gl_param_error(400, "title is empty");
    }
    if source == target {
        return gl_json(
            422,
            json!({"message": ["You can't use same project/branch for source and target"]}),
        );
    }
    let git_dir = lock(state).git_dir.clone();
    let branches = inspect_branches(git_dir, source.clone(), target.clone()).await;
    if branches.head_sha.is_none() {
        return gl_json(
            400,
            json!({"message": {"source_branch": ["does not exist"]}}),
        );
    }
    if branches.base_sha.is_none() {
        return gl_json(
            400,
            json!({"message": {"target_branch": ["does not exist"]}}),
        );
    }
    let mut s = lock(state);
    if let Some(other) = s.open_duplicate(&source, &target, 0) {
        return gl_json(
            409,
            json!({"message": [format!("Another open merge request already exists for this source branch: !{other}")]}),
        );
    }
    let assignees = id_list(&body, "assignee_ids", Some("assignee_id"))
        .map(|ids| s.known_ids(&ids))
        .unwrap_or_default();
    let reviewers = id_list(&body, "reviewer_ids", None)
        .map(|ids| s.known_ids(&ids))
        .unwrap_or_default();
    let me = s.me.id;
    let iid = s.new_mr(
        me,
        &title,
        &source,
        &target,
        branches.head_sha.unwrap_or_default(),
    );
    let idx = s.mr_index(iid).expect("just created");
    let m = &mut s.merge_requests[idx];
    m.description = body
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(l) = body.get("labels") {
        push_unique(&mut m.labels, str_list(l));
    }
    m.assignee_ids = assignees;
    m.reviewer_ids = reviewers;
    m.remove_source_branch = body.get("remove_source_branch").and_then(Value::as_bool);
    m.squash = body.get("squash").and_then(Value::as_bool).unwrap_or(false);
    m.allow_collaboration = body
        .get("allow_collaboration")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let json = s.mr_json(&s.merge_requests[idx]);
    gl_json(201, json)
}

async fn gl_update(
    state: &Arc<Mutex<GitLabState>>,
    iid: u64,
    body: Map<String, Value>,
) -> Response {
    let fields = [
        opt("title", Ty::Str),
        opt("description", Ty::Str),
        opt("state_event", Ty::Str),
        opt("labels", Ty::StrOrStrList),
        opt("add_labels", Ty::StrOrStrList),
        opt("remove_labels", Ty::StrOrStrList),
        opt("assignee_id", Ty::Int),
        opt("assignee_ids", Ty::IntList),
        opt("reviewer_ids", Ty::IntList),
        opt("remove_source_branch", Ty::Bool),
        opt("squash", Ty::Bool),
        opt("target_branch", Ty::Str),
        opt("discussion_locked", Ty::Bool),
        opt("allow_collaboration", Ty::Bool),
    ];
    let unsupported = ["milestone_id", "merge_after", "allow_maintainer_to_push"];
    if let Err(e) = check_fields(&body, &fields, &unsupported) {
        return gl_field_error(e);
    }
    if body.is_empty() {
        let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
        return gl_param_error(
            400,
            &format!(
                "{} are missing, at least one parameter must be provided",
                names.join(", ")
            ),
        );
    }
    let state_event = body.get("state_event").and_then(Value::as_str);
    if state_event.is_some_and(|e| e != "close" && e != "reopen") {
        return gl_param_error(400, "state_event does not have a valid value");
    }
    if body
        .get("title")
        .and_then(Value::as_str)
        .is_some_and(|t| t.trim().is_empty())
    {
        return gl_param_error(400, "title is empty");
    }
    let new_target = body
        .get("target_branch")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(t) = &new_target {
        let git_dir = lock(state).git_dir.clone();
        if inspect_branches(git_dir, t.clone(), t.clone())
            .await
            .base_sha
            .is_none()
        {
            return gl_json(
                400,
                json!({"message": {"target_branch": ["does not exist"]}}),
            );
        }
    }
    let mut s = lock(state);
    let idx = s.mr_index(iid).expect("checked");
    let current = s.merge_requests[idx].clone();
    let target = new_target
        .clone()
        .unwrap_or_else(|| current.target_branch.clone());
    let will_be_open = match state_event {
        Some("reopen") => current.state != "merged",
        Some("close") => false,
        _ => current.is_open(),
    };
    if will_be_open && let Some(other) = s.open_duplicate(&current.source_branch, &target, iid) {
        return gl_json(
            409,
            json!({"message": [format!("Another open merge request already exists for this source branch: !{other}")]}),
        );
    }
    let assignees =
        id_list(&body, "assignee_ids", Some("assignee_id")).map(|ids| s.known_ids(&ids));
    let reviewers = id_list(&body, "reviewer_ids", None).map(|ids| s.known_ids(&ids));
    let now = now_rfc3339();
    let m = &mut s.merge_requests[idx];
    if let Some(t) = body.get("title").and_then(Value::as_str) {
        m.title = t.to_string();
    }
    if let Some(d) = body.get("description").and_then(Value::as_str) {
        m.description = Some(d.to_string());
    }
    if let Some(l) = body.get("labels") {
        m.labels.clear();
        push_unique(&mut m.labels, str_list(l));
    }
    if let Some(l) = body.get("add_labels") {
        push_unique(&mut m.labels, str_list(l));
    }
    if let Some(l) = body.get("remove_labels") {
        let gone = str_list(l);
        m.labels.retain(|x| !gone.contains(x));
    }
    if let Some(a) = assignees {
        m.assignee_ids = a;
    }
    if let Some(r) = reviewers {
        m.reviewer_ids = r;
    }
    if let Some(b) = body.get("remove_source_branch").and_then(Value::as_bool) {
        m.remove_source_branch = Some(b);
    }
    if let Some(b) = body.get("squash").and_then(Value::as_bool) {
        m.squash = b;
    }
    if let Some(b) = body.get("discussion_locked").and_then(Value::as_bool) {
        m.discussion_locked = Some(b);
    }
    if let Some(b) = body.get("allow_collaboration").and_then(Value::as_bool) {
        m.allow_collaboration = b;
    }
    if let Some(t) = new_target {
        m.target_branch = t;
    }
    match state_event {
        Some("close") if m.is_open() => {
            m.state = "closed".to_string();
            m.closed_at = Some(now.clone());
            m.auto_merge = false;
        }
        Some("reopen") if m.state == "closed" => {
            m.state = "opened".to_string();
            m.closed_at = None;
        }
        _ => {}
    }
    m.updated_at = now;
    let json = s.mr_json(&s.merge_requests[idx]);
    gl_json(200, json)
}

fn gl_note(state: &Arc<Mutex<GitLabState>>, iid: u64, body: Map<String, Value>) -> Response {
    let fields = [req("body", Ty::Str), opt("internal", Ty::Bool)];
    if let Err(e) = check_fields(
        &body,
        &fields,
        &["created_at", "merge_request_diff_head_sha"],
    ) {
        return gl_field_error(e);
    }
    let text = body["body"].as_str().unwrap_or_default().to_string();
    if text.trim().is_empty() {
        return gl_param_error(400, "body is empty");
    }
    let mut s = lock(state);
    let id = s.next_note_id;
    s.next_note_id += 1;
    let note = Comment {
        id: 700_000 + id,
        author: s.me.username.clone(),
        body: text,
        created_at: now_rfc3339(),
    };
    let idx = s.mr_index(iid).expect("checked");
    s.merge_requests[idx].notes.push(note.clone());
    let json = s.note_json(&s.merge_requests[idx], &note);
    gl_json(201, json)
}

async fn gl_merge(state: &Arc<Mutex<GitLabState>>, iid: u64, body: Map<String, Value>) -> Response {
    let fields = [
        opt("merge_commit_message", Ty::Str),
        opt("squash_commit_message", Ty::Str),
        opt("squash", Ty::Bool),
        opt("should_remove_source_branch", Ty::Bool),
        opt("merge_when_pipeline_succeeds", Ty::Bool),
        opt("auto_merge", Ty::Bool),
        opt("sha", Ty::Str),
    ];
    if let Err(e) = check_fields(&body, &fields, &[]) {
        return gl_field_error(e);
    }
    let (source, git_dir, open) = {
        let s = lock(state);
        let m = &s.merge_requests[s.mr_index(iid).expect("checked")];
        (m.source_branch.clone(), s.git_dir.clone(), m.is_open())
    };
    if !open {
        return gl_json(405, json!({"message": "405 Method Not Allowed"}));
    }
    if let (Some(sha), Some(_)) = (body.get("sha").and_then(Value::as_str), &git_dir) {
        let head = inspect_branches(git_dir, source.clone(), source)
            .await
            .head_sha
            .unwrap_or_default();
        if head != sha {
            return gl_json(
                409,
                json!({"message": format!("SHA does not match HEAD of source branch: {head}")}),
            );
        }
    }
    let param = ["auto_merge", "merge_when_pipeline_succeeds"]
        .into_iter()
        .find(|k| body.get(*k).and_then(Value::as_bool) == Some(true));
    let mut s = lock(state);
    let idx = s.mr_index(iid).expect("checked");
    let now = now_rfc3339();
    let m = &mut s.merge_requests[idx];
    if let Some(b) = body.get("squash").and_then(Value::as_bool) {
        m.squash = b;
    }
    match param {
        Some(p) => {
            m.auto_merge = true;
            m.auto_merge_param = Some(p.to_string());
        }
        None => {
            m.state = "merged".to_string();
            m.merged_at = Some(now.clone());
        }
    }
    m.updated_at = now;
    let json = s.mr_json(&s.merge_requests[idx]);
    gl_json(200, json)
}
