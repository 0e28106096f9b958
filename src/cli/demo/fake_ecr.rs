//! A tiny ECR-compatible endpoint for `tagwatch demo`: `DescribeImages` only,
//! paginated as ECR does, over the AWS JSON 1.1 protocol on loopback.
//!
//! It exists so the demo runs with no AWS account and no Python. The daemon
//! talks to it through the same `aws-sdk-ecr` client it uses in production;
//! nothing in the production path knows this endpoint exists. The test
//! suite uses moto, a full implementation, instead.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The demo's account, so image names look like real ECR ones.
pub const ACCOUNT: &str = "123456789012";

/// One pushed image: a tag and its digest and push time (epoch seconds).
#[derive(Clone, Debug)]
struct Pushed {
    tag: String,
    digest: String,
    pushed_at: i64,
}

/// Repositories and their images, shared with the demo script that
/// "pushes" new tags while the endpoint runs.
#[derive(Clone, Default)]
pub struct FakeEcr {
    repositories: Arc<Mutex<BTreeMap<String, Vec<Pushed>>>>,
}

impl FakeEcr {
    /// Records a push of `tag` to `repository`, as CI would.
    pub fn push(&self, repository: &str, tag: &str) {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let digest: String = (0..4u8)
            .map(|part| format!("{:016x}", fnv(repository, tag, part)))
            .collect();
        let digest = format!("sha256:{digest}");
        let mut repos = self.repositories.lock().unwrap_or_else(|e| e.into_inner());
        repos
            .entry(repository.to_string())
            .or_default()
            .push(Pushed {
                tag: tag.to_string(),
                digest,
                pushed_at: now,
            });
    }

    /// Serves on a free loopback port until `stop` is cancelled.
    pub async fn serve(&self, stop: CancellationToken) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/", axum::routing::post(handle))
            .with_state(self.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        Ok(addr)
    }
}

/// FNV-1a over `repository:tag` and a part number: a stable fake digest,
/// so the same tag always shows the same digest.
fn fnv(repository: &str, tag: &str, part: u8) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in repository
        .bytes()
        .chain([b':'])
        .chain(tag.bytes())
        .chain([part])
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

async fn handle(State(ecr): State<FakeEcr>, headers: HeaderMap, body: String) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if target != "AmazonEC2ContainerRegistry_V20150921.DescribeImages" {
        return error(
            "UnsupportedOperationException",
            &format!("the demo endpoint serves only DescribeImages, not {target:?}"),
        );
    }
    let Ok(request) = serde_json::from_str::<Value>(&body) else {
        return error("InvalidParameterException", "request body is not JSON");
    };
    let name = request["repositoryName"].as_str().unwrap_or_default();
    let page_size = request["maxResults"].as_u64().unwrap_or(100).clamp(1, 1000) as usize;
    let start: usize = match request["nextToken"].as_str() {
        Some(token) => match token.parse() {
            Ok(n) => n,
            Err(_) => return error("InvalidParameterException", "invalid nextToken"),
        },
        None => 0,
    };
    let repos = ecr.repositories.lock().unwrap_or_else(|e| e.into_inner());
    let Some(images) = repos.get(name) else {
        return error(
            "RepositoryNotFoundException",
            &format!(
                "The repository with name '{name}' does not exist in the registry with id '{ACCOUNT}'"
            ),
        );
    };
    let details: Vec<Value> = images
        .iter()
        .skip(start)
        .take(page_size)
        .map(|i| {
            json!({
                "registryId": ACCOUNT,
                "repositoryName": name,
                "imageDigest": i.digest,
                "imageTags": [i.tag],
                "imagePushedAt": i.pushed_at,
                "imageSizeInBytes": 31_337_000,
                "imageManifestMediaType": "application/vnd.oci.image.manifest.v1+json",
            })
        })
        .collect();
    let mut out = json!({ "imageDetails": details });
    if start + page_size < images.len() {
        out["nextToken"] = json!((start + page_size).to_string());
    }
    (
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.1")],
        out.to_string(),
    )
        .into_response()
}

fn error(kind: &str, message: &str) -> Response {
    let body = json!({ "__type": kind, "message": message }).to_string();
    (
        StatusCode::BAD_REQUEST,
        [("content-type", "application/x-amz-json-1.1")],
        body,
    )
        .into_response()
}
