//! The Prometheus HTTP API, for the `analysis` gate: one instant query
//! (`GET /api/v1/query`) and its vector of samples.
//!
//! Behind [`Prometheus`], so the cycle never knows it is HTTP. The real
//! client ([`HttpPrometheus`]) sends the bearer token from `token_file`
//! (read on every query, so a rotated Secret is picked up), trusts
//! `ca_file` besides the system roots, never follows a redirect (it would
//! carry the token elsewhere), gives up after [`TIMEOUT`], and reads at
//! most [`MAX_BODY`]. What the answer means is `gate::analysis_verdict`'s.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use crate::config::PrometheusSettings;
use crate::gate::Sample;

/// A whole query, connecting included. An analysis that Prometheus cannot
/// answer in this long is an error, and the target waits a cycle.
pub const TIMEOUT: Duration = Duration::from_secs(15);
/// The largest answer read. A gate query returns a few samples; a body
/// near this is not an answer to one, and holding it would let whoever
/// answers `url` grow the daemon's memory.
pub const MAX_BODY: usize = 1 << 20;

/// A query being answered.
pub type QueryFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<Sample>, PrometheusError>> + Send + 'a>>;

/// Evaluates PromQL.
pub trait Prometheus: Send + Sync {
    /// The instant vector `promql` returns now.
    fn query<'a>(&'a self, promql: &'a str) -> QueryFuture<'a>;
}

/// Why a query has no answer. Cloned into every decision that waits on it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrometheusError {
    #[error("Prometheus at {url} is unreachable: {message}")]
    Unreachable { url: String, message: String },
    #[error("Prometheus refused the query: {message}")]
    Query { message: String },
    #[error("Prometheus answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("Prometheus's answer is not an instant vector: {message}")]
    Answer { message: String },
    #[error("cannot read token_file {path}: {message}")]
    Token { path: PathBuf, message: String },
    #[error("cannot set up the Prometheus client: {message}")]
    Setup { message: String },
    #[error("no [prometheus] is configured")]
    NotConfigured,
}

impl PrometheusError {
    /// A fixed name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            PrometheusError::Unreachable { .. } => "unreachable",
            PrometheusError::Query { .. } => "query",
            PrometheusError::Status { .. } => "status",
            PrometheusError::Answer { .. } => "answer",
            PrometheusError::Token { .. } => "token",
            PrometheusError::Setup { .. } => "setup",
            PrometheusError::NotConfigured => "not_configured",
        }
    }
}

/// The real client.
pub struct HttpPrometheus {
    client: reqwest::Client,
    /// `url` without a trailing slash.
    base: String,
    token_file: Option<PathBuf>,
}

/// The client `settings` describe.
pub fn connect(settings: &PrometheusSettings) -> Result<HttpPrometheus, PrometheusError> {
    let setup = |message: String| PrometheusError::Setup { message };
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("tagwatch/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(ca) = &settings.ca_file {
        let pem = std::fs::read(ca).map_err(|e| setup(format!("{}: {e}", ca.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| setup(format!("{}: {e}", ca.display())))?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    let client = builder.build().map_err(|e| setup(e.to_string()))?;
    Ok(HttpPrometheus {
        client,
        base: settings.url.trim_end_matches('/').to_string(),
        token_file: settings.token_file.clone(),
    })
}

impl Prometheus for HttpPrometheus {
    fn query<'a>(&'a self, promql: &'a str) -> QueryFuture<'a> {
        Box::pin(self.query_now(promql))
    }
}

impl HttpPrometheus {
    async fn query_now(&self, promql: &str) -> Result<Vec<Sample>, PrometheusError> {
        let url = format!("{}/api/v1/query", self.base);
        let unreachable = |e: &dyn std::fmt::Display| PrometheusError::Unreachable {
            url: self.base.clone(),
            message: e.to_string(),
        };
        let mut request = self.client.get(&url).query(&[("query", promql)]);
        if let Some(path) = &self.token_file {
            let token = std::fs::read_to_string(path).map_err(|e| PrometheusError::Token {
                path: path.clone(),
                message: e.to_string(),
            })?;
            request = request.bearer_auth(token.trim());
        }
        let mut response = request.send().await.map_err(|e| unreachable(&e))?;
        let status = response.status();
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY as u64)
        {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| unreachable(&e))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        parse_answer(status.as_u16(), &body)
    }
}

fn too_big() -> PrometheusError {
    PrometheusError::Answer {
        message: format!("larger than {} KiB", MAX_BODY >> 10),
    }
}

/// The samples of an `/api/v1/query` answer; its `error` when it has one.
pub fn parse_answer(status: u16, body: &[u8]) -> Result<Vec<Sample>, PrometheusError> {
    let json: serde_json::Value = match serde_json::from_slice(body) {
        Ok(json) => json,
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let message = text
                .chars()
                .take(200)
                .collect::<String>()
                .trim()
                .to_string();
            return Err(PrometheusError::Status { status, message });
        }
    };
    if json["status"] != "success" {
        let message = format!(
            "{}: {}",
            json["errorType"].as_str().unwrap_or("error"),
            json["error"].as_str().unwrap_or("no message")
        );
        return Err(PrometheusError::Query { message });
    }
    let data = &json["data"];
    if data["resultType"] != "vector" {
        return Err(PrometheusError::Answer {
            message: format!("resultType is {}", data["resultType"]),
        });
    }
    let Some(result) = data["result"].as_array() else {
        return Err(PrometheusError::Answer {
            message: "no result array".into(),
        });
    };
    let mut samples = Vec::with_capacity(result.len());
    for r in result {
        let labels = r["metric"].as_object().map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v))
                .collect::<Vec<_>>()
                .join(",")
        });
        let value = r["value"][1]
            .as_str()
            .ok_or_else(|| PrometheusError::Answer {
                message: "a sample without a value".into(),
            })?;
        samples.push(Sample {
            metric: format!("{{{}}}", labels.unwrap_or_default()),
            value: value.to_string(),
        });
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let ok = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"api"},"value":[1.5,"0.002"]}]}}"#;
        assert_eq!(
            parse_answer(200, ok).unwrap(),
            vec![Sample {
                metric: r#"{job="api"}"#.into(),
                value: "0.002".into()
            }]
        );
        let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(parse_answer(200, empty).unwrap(), vec![]);
        let bad = br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert_eq!(parse_answer(400, bad).unwrap_err().kind(), "query");
        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}"#;
        assert_eq!(parse_answer(200, scalar).unwrap_err().kind(), "answer");
        assert_eq!(
            parse_answer(502, b"bad gateway").unwrap_err().kind(),
            "status"
        );
    }

    /// One canned HTTP answer on loopback; returns the URL and what was asked.
    fn serve(answer: String) -> (String, std::sync::mpsc::Receiver<String>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 8192];
            let n = stream.read(&mut buf).unwrap();
            tx.send(String::from_utf8_lossy(&buf[..n]).into_owned())
                .unwrap();
            stream.write_all(answer.as_bytes()).unwrap();
        });
        (url, rx)
    }

    #[tokio::test]
    async fn the_query_carries_the_token_and_a_redirect_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        let (url, asked) = serve(format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ));
        let settings = PrometheusSettings {
            url,
            token_file: Some(token),
            ca_file: None,
        };
        let client = connect(&settings).unwrap();
        assert_eq!(client.query(r#"up{a="b"} < 1"#).await.unwrap(), vec![]);
        let request = asked.recv().unwrap();
        assert!(
            request.starts_with("GET /api/v1/query?query=up%7Ba%3D%22b%22%7D+%3C+1 "),
            "{request}"
        );
        assert!(
            request.contains("authorization: Bearer s3cret\r\n"),
            "{request}"
        );

        let (url, _asked) = serve(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://evil.example/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
        );
        let settings = PrometheusSettings { url, ..settings };
        let err = connect(&settings).unwrap().query("up").await.unwrap_err();
        assert_eq!(err.kind(), "status", "{err}");
    }
}
