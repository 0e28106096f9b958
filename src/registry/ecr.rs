//! Amazon ECR through its native API.
//!
//! One paginated `DescribeImages` call per repository gives every tag with
//! its digest and push time. The Docker Registry v2 API would need a
//! manifest and a config blob per tag to learn the same (what Argo CD Image
//! Updater does), so it is not used for ECR.
//!
//! The gates read `DescribeImageScanFindings` (every page) and
//! `ListImageReferrers`, each for one digest, only for the images a gate
//! considers; verifying a cosign signature reads its `.sig` image
//! (`BatchGetImage`) and signature layers (`GetDownloadUrlForLayer`).
//!
//! Credentials come from the SDK's default chain (environment, profile, IRSA
//! web identity), optionally through an assumed role. The SDK refreshes
//! them itself, so nothing here shells out or caches tokens.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, timeout::TimeoutConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_ecr::config::http::HttpResponse;
use aws_sdk_ecr::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::types::{
    DescribeImagesFilter, ImageDetail, ImageIdentifier, ImageStatus, ImageTagMutability, TagStatus,
};
use time::OffsetDateTime;

use super::{
    CosignFuture, CosignSignature, DescribeFuture, ErrorKind, Image, ImmutableFuture,
    LifecycleFuture, ListFuture, Listing, Referrers, ReferrersFuture, Registry, RegistryError,
    ScanFindings, ScanFuture,
};
use crate::aws::AwsSettings;
use crate::gate::{ScanStatus, Severity};

/// ECR's largest page; fewer pages means fewer round trips and less
/// throttling pressure on accounts with thousands of images.
const PAGE_SIZE: i32 = 1000;
/// A connection that does not open in this time will not open at all.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One page of 1000 images is well under a second; this bounds a stalled
/// response so one repository cannot hold up the whole cycle. SQS's long
/// poll (at most 20 s) must fit inside it, with room for the answer;
/// src/events.rs checks that at compile time.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on one page including the SDK's own retries with backoff.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(120);

/// The SDK configuration every AWS client of tagwatch loads from: the
/// default chain (credentials, region) with the timeouts above. ECR and
/// SQS (src/events.rs) both start here, so a stalled peer is cut off the
/// same way for both and their timeouts cannot drift apart. Without them
/// the SDK waits on a stalled response for ever.
pub fn sdk_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .operation_timeout(OPERATION_TIMEOUT)
            .build(),
    )
}

/// Lists repositories through `aws-sdk-ecr`.
#[derive(Clone, Debug)]
pub struct EcrRegistry {
    client: aws_sdk_ecr::Client,
    /// Throttled attempts so far, counted by [`CountAttempts`].
    throttled: Arc<AtomicU64>,
    /// Set for cross-account reads; `None` means the caller's own registry.
    registry_id: Option<String>,
    region: String,
    /// Each repository's `imageTagMutability`, read once with
    /// `DescribeRepositories` and kept for the life of the client (a
    /// reload builds a new one): true for `IMMUTABLE`. One cell per
    /// repository, so concurrent re-checks of one repository ask once.
    immutable: Arc<std::sync::Mutex<ImmutableCells>>,
}

type ImmutableCells = std::collections::HashMap<String, Arc<tokio::sync::OnceCell<bool>>>;

/// Why the client could not be built. Raised before any request is sent.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no AWS region: set aws.region in the config, or AWS_REGION in the environment")]
    NoRegion,
}

impl EcrRegistry {
    /// Builds a client from the settings and the default credential chain.
    /// `credentials` replaces the chain; the demo uses it to talk to its
    /// local endpoint without touching the process environment.
    pub async fn connect(
        settings: &AwsSettings,
        credentials: Option<SharedCredentialsProvider>,
    ) -> Result<EcrRegistry, ConnectError> {
        let mut loader = sdk_loader();
        if let Some(region) = &settings.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(credentials) = credentials {
            loader = loader.credentials_provider(credentials);
        }
        let base = loader.load().await;
        let region = base.region().ok_or(ConnectError::NoRegion)?.to_string();
        let sdk = match &settings.assume_role_arn {
            Some(arn) => {
                let provider = aws_config::sts::AssumeRoleProvider::builder(arn)
                    .session_name("tagwatch")
                    .configure(&base)
                    .build()
                    .await;
                base.to_builder()
                    .credentials_provider(SharedCredentialsProvider::new(provider))
                    .build()
            }
            None => base,
        };
        // The endpoint applies to ECR only: an assumed role still comes from
        // the real STS (or from AWS_ENDPOINT_URL_STS, which the SDK reads).
        let throttled = Arc::new(AtomicU64::new(0));
        let mut ecr = aws_sdk_ecr::config::Builder::from(&sdk).interceptor(CountAttempts {
            throttled: Arc::clone(&throttled),
        });
        if let Some(url) = &settings.endpoint_url {
            ecr = ecr.endpoint_url(url);
        }
        Ok(EcrRegistry {
            client: aws_sdk_ecr::Client::from_conf(ecr.build()),
            throttled,
            registry_id: settings.registry_id.clone(),
            region,
            immutable: Arc::default(),
        })
    }

    async fn list_all(&self, repository: &str) -> Result<Listing, RegistryError> {
        let mut pages = self
            .client
            .describe_images()
            .repository_name(repository)
            .set_registry_id(self.registry_id.clone())
            .max_results(PAGE_SIZE)
            .filter(
                DescribeImagesFilter::builder()
                    .tag_status(TagStatus::Tagged)
                    .build(),
            )
            .into_paginator()
            .send();

        let mut listing = Listing {
            repository: repository.to_string(),
            registry_id: self.registry_id.clone().unwrap_or_default(),
            region: self.region.clone(),
            images: Vec::new(),
            pages: 0,
            ..Listing::default()
        };
        loop {
            let started = std::time::Instant::now();
            let Some(page) = pages.next().await else {
                break;
            };
            let page = page.map_err(|e| classify(repository, e));
            observe("DescribeImages", started);
            let page = page?;
            listing.pages += 1;
            for detail in page.image_details() {
                if listing.registry_id.is_empty()
                    && let Some(id) = detail.registry_id()
                {
                    listing.registry_id = id.to_string();
                }
                // Only ACTIVE images are served; an ARCHIVED one (or one
                // still ACTIVATING out of the archive) fails a pull, so it
                // is kept apart and never becomes a candidate. No status at
                // all is an ECR that predates archiving: active.
                let bucket = if detail
                    .image_status()
                    .is_some_and(|s| *s != ImageStatus::Active)
                {
                    &mut listing.archived
                } else if detail.artifact_media_type() == Some(crate::image::HELM_CHART_CONFIG) {
                    &mut listing.charts
                } else {
                    &mut listing.images
                };
                bucket.extend(images_of(detail));
            }
        }
        Ok(listing)
    }

    /// Whether `repository`'s tags are `IMMUTABLE`, from the cache or one
    /// `DescribeRepositories`. A failed read (no IAM grant, say) counts as
    /// mutable, so the re-check stays on, and is not asked again.
    async fn is_immutable(&self, repository: &str) -> bool {
        let cell = {
            let mut cells = self.immutable.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(cells.entry(repository.to_string()).or_default())
        };
        *cell.get_or_init(|| self.read_mutability(repository)).await
    }

    async fn read_mutability(&self, repository: &str) -> bool {
        let started = std::time::Instant::now();
        let out = self
            .client
            .describe_repositories()
            .set_registry_id(self.registry_id.clone())
            .repository_names(repository)
            .send()
            .await;
        observe("DescribeRepositories", started);
        match out {
            Ok(out) => out.repositories().iter().any(|r| {
                r.repository_name() == Some(repository)
                    && r.image_tag_mutability() == Some(&ImageTagMutability::Immutable)
            }),
            Err(e) => {
                let e = classify(repository, e);
                tracing::debug!(kind = e.kind(), error = %e, "DescribeRepositories failed; taken as mutable");
                false
            }
        }
    }

    /// `GetLifecyclePolicy`; a repository without one is `None`.
    async fn lifecycle_of(&self, repository: &str) -> Result<Option<String>, RegistryError> {
        let started = std::time::Instant::now();
        let out = self
            .client
            .get_lifecycle_policy()
            .repository_name(repository)
            .set_registry_id(self.registry_id.clone())
            .send()
            .await;
        observe("GetLifecyclePolicy", started);
        match out {
            Ok(out) => Ok(out.lifecycle_policy_text().map(str::to_string)),
            Err(SdkError::ServiceError(e)) if e.err().is_lifecycle_policy_not_found_exception() => {
                Ok(None)
            }
            Err(e) => Err(classify(repository, e)),
        }
    }

    async fn describe_tag(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<Option<Image>, RegistryError> {
        let started = std::time::Instant::now();
        let result = self
            .client
            .describe_images()
            .repository_name(repository)
            .set_registry_id(self.registry_id.clone())
            .image_ids(ImageIdentifier::builder().image_tag(tag).build())
            .send()
            .await
            .map_err(|e| classify(repository, e));
        observe("DescribeImages", started);
        match result {
            // An archived image is not served: as good as gone.
            Ok(out) => Ok(out
                .image_details()
                .iter()
                .filter(|d| d.image_status().is_none_or(|s| *s == ImageStatus::Active))
                .flat_map(images_of)
                .find(|image| image.tag == tag)),
            Err(e) => {
                // ECR answers a missing tag with ImageNotFoundException.
                if e.kind == ErrorKind::ImageNotFound {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }
}

impl EcrRegistry {
    async fn scan_of(&self, repository: &str, digest: &str) -> Result<ScanFindings, RegistryError> {
        let mut pages = self
            .client
            .describe_image_scan_findings()
            .repository_name(repository)
            .set_registry_id(self.registry_id.clone())
            .image_id(ImageIdentifier::builder().image_digest(digest).build())
            .max_results(PAGE_SIZE)
            .into_paginator()
            .send();
        let mut scan = ScanFindings::with_status(ScanStatus::Missing);
        // The summary's counts cover every finding; counting the findings
        // themselves is the fallback for a page that has none.
        let mut summary = None;
        let mut counted = ScanFindings::with_status(ScanStatus::Missing);
        loop {
            let started = std::time::Instant::now();
            let Some(page) = pages.next().await else {
                break;
            };
            observe("DescribeImageScanFindings", started);
            let page = match page {
                Ok(page) => page,
                Err(SdkError::ServiceError(e)) if e.err().is_scan_not_found_exception() => {
                    return Ok(ScanFindings::with_status(ScanStatus::Missing));
                }
                Err(e) => return Err(classify(repository, e)),
            };
            if let Some(status) = page.image_scan_status().and_then(|s| s.status()) {
                scan.status = ScanStatus::parse(status.as_str());
            }
            let Some(findings) = page.image_scan_findings() else {
                continue;
            };
            if summary.is_none()
                && let Some(counts) = findings.finding_severity_counts()
            {
                let mut by = ScanFindings::with_status(ScanStatus::Complete);
                for (severity, n) in counts {
                    add(&mut by, severity.as_str(), u32::try_from(*n).unwrap_or(0));
                }
                summary = Some(by);
            }
            for f in findings.findings() {
                add(
                    &mut counted,
                    f.severity().map_or("UNDEFINED", |s| s.as_str()),
                    1,
                );
            }
            for f in findings.enhanced_findings() {
                scan.enhanced = true;
                add(&mut counted, f.severity().unwrap_or("UNDEFINED"), 1);
            }
        }
        let totals = summary.unwrap_or(counted);
        scan.counts = totals.counts;
        scan.undefined = totals.undefined;
        Ok(scan)
    }

    async fn referrers_of(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Referrers, RegistryError> {
        let mut types = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let started = std::time::Instant::now();
            let page = self
                .client
                .list_image_referrers()
                .repository_name(repository)
                .set_registry_id(self.registry_id.clone())
                .subject_id(
                    aws_sdk_ecr::types::SubjectIdentifier::builder()
                        .image_digest(digest)
                        .build()
                        .map_err(|e| RegistryError {
                            repository: repository.to_string(),
                            kind: ErrorKind::Other,
                            message: e.to_string(),
                        })?,
                )
                .set_next_token(token.take())
                .send()
                .await;
            observe("ListImageReferrers", started);
            let page = page.map_err(|e| classify(repository, e))?;
            types.extend(
                page.referrers()
                    .iter()
                    .filter_map(|r| r.artifact_type().map(str::to_string)),
            );
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => return Ok(types),
            }
        }
    }
}

/// The largest cosign signature layer read (a simple-signing payload is a
/// few hundred bytes).
const MAX_SIGNATURE_LAYER: usize = 1 << 20;
/// cosign's annotation on each signature layer.
const COSIGN_SIGNATURE: &str = "dev.cosignproject.cosign/signature";

impl EcrRegistry {
    /// cosign's legacy `.sig` image for `digest`: `BatchGetImage` for its
    /// manifest, then each signature layer through `GetDownloadUrlForLayer`.
    /// No `.sig` image is no signatures, not an error.
    async fn cosign_of(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Vec<CosignSignature>, RegistryError> {
        let failed = |message: String| RegistryError {
            repository: repository.to_string(),
            kind: ErrorKind::Other,
            message,
        };
        let tag = crate::gate::cosign_tag(digest);
        let started = std::time::Instant::now();
        let out = self
            .client
            .batch_get_image()
            .repository_name(repository)
            .set_registry_id(self.registry_id.clone())
            .image_ids(ImageIdentifier::builder().image_tag(&tag).build())
            .accepted_media_types("application/vnd.oci.image.manifest.v1+json")
            .accepted_media_types("application/vnd.docker.distribution.manifest.v2+json")
            .send()
            .await;
        observe("BatchGetImage", started);
        let out = out.map_err(|e| classify(repository, e))?;
        let Some(manifest) = out.images().first().and_then(|i| i.image_manifest()) else {
            return Ok(Vec::new());
        };
        let manifest: serde_json::Value = serde_json::from_str(manifest)
            .map_err(|e| failed(format!("{tag}: the manifest is not JSON: {e}")))?;
        let mut found = Vec::new();
        let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
        for layer in layers {
            let (Some(layer_digest), Some(signature)) = (
                layer["digest"].as_str(),
                layer["annotations"][COSIGN_SIGNATURE].as_str(),
            ) else {
                continue;
            };
            let started = std::time::Instant::now();
            let url = self
                .client
                .get_download_url_for_layer()
                .repository_name(repository)
                .set_registry_id(self.registry_id.clone())
                .layer_digest(layer_digest)
                .send()
                .await;
            observe("GetDownloadUrlForLayer", started);
            let url = url.map_err(|e| classify(repository, e))?;
            let Some(url) = url.download_url() else {
                continue;
            };
            let payload = download(url)
                .await
                .map_err(|e| failed(format!("{tag}: layer {layer_digest}: {e}")))?;
            // The layer is what its digest says, or it is not read at all.
            let sha = openssl::sha::sha256(&payload);
            let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
            if layer_digest != format!("sha256:{hex}") {
                return Err(failed(format!(
                    "{tag}: layer {layer_digest} does not match its digest"
                )));
            }
            found.push(CosignSignature {
                payload,
                signature: signature.to_string(),
            });
        }
        Ok(found)
    }
}

/// One layer from its pre-signed URL, at most [`MAX_SIGNATURE_LAYER`].
async fn download(url: &str) -> Result<Vec<u8>, String> {
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(ATTEMPT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .map_err(|e| e.to_string())?;
    let mut response = client
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| crate::telemetry::error_chain(&e))?;
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| crate::telemetry::error_chain(&e))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_SIGNATURE_LAYER {
            return Err(format!("larger than {MAX_SIGNATURE_LAYER} bytes"));
        }
    }
    Ok(body)
}

/// Counts `n` findings of ECR's (or Inspector's) severity `name`; anything
/// without a known severity (`UNDEFINED`, `UNTRIAGED`) is undefined.
fn add(scan: &mut ScanFindings, name: &str, n: u32) {
    match Severity::parse(name) {
        Some(severity) => *scan.counts.entry(severity).or_default() += n,
        None => scan.undefined += n,
    }
}

/// Times one API call, the SDK's own retries included.
fn observe(operation: &str, started: std::time::Instant) {
    crate::metrics::get()
        .registry_request_duration
        .with_label_values(&[operation])
        .observe(started.elapsed().as_secs_f64());
}

/// Counts every attempt the SDK makes, retries included, by outcome: a
/// throttle the SDK absorbed with a retry still shows up as `throttled`,
/// which is the signal an operator needs before it becomes a failure.
#[derive(Debug)]
struct CountAttempts {
    throttled: Arc<AtomicU64>,
}

impl aws_sdk_ecr::config::Intercept for CountAttempts {
    fn name(&self) -> &'static str {
        "tagwatch::CountAttempts"
    }

    fn read_after_attempt(
        &self,
        context: &aws_sdk_ecr::config::interceptors::FinalizerInterceptorContextRef<'_>,
        _components: &aws_sdk_ecr::config::RuntimeComponents,
        _cfg: &mut aws_sdk_ecr::config::ConfigBag,
    ) -> Result<(), aws_sdk_ecr::error::BoxError> {
        use aws_sdk_ecr::operation::{
            describe_image_scan_findings as scans, describe_images as images,
            describe_repositories as repositories, get_lifecycle_policy as lifecycle,
            list_image_referrers as referrers,
        };
        // The operation, told by the type of its answer: one interceptor
        // serves every call of the client.
        let (operation, outcome) = match context.output_or_error() {
            Some(Ok(out)) => {
                let operation = if out
                    .downcast_ref::<scans::DescribeImageScanFindingsOutput>()
                    .is_some()
                {
                    "DescribeImageScanFindings"
                } else if out
                    .downcast_ref::<referrers::ListImageReferrersOutput>()
                    .is_some()
                {
                    "ListImageReferrers"
                } else if out
                    .downcast_ref::<repositories::DescribeRepositoriesOutput>()
                    .is_some()
                {
                    "DescribeRepositories"
                } else if out
                    .downcast_ref::<lifecycle::GetLifecyclePolicyOutput>()
                    .is_some()
                {
                    "GetLifecyclePolicy"
                } else {
                    "DescribeImages"
                };
                (operation, "success")
            }
            Some(Err(e)) => {
                let op = e.as_operation_error();
                let code = |c: Option<&str>| kind_of(c).as_str();
                if let Some(e) = op.and_then(|e| e.downcast_ref::<images::DescribeImagesError>()) {
                    ("DescribeImages", code(e.code()))
                } else if let Some(e) =
                    op.and_then(|e| e.downcast_ref::<scans::DescribeImageScanFindingsError>())
                {
                    ("DescribeImageScanFindings", code(e.code()))
                } else if let Some(e) =
                    op.and_then(|e| e.downcast_ref::<referrers::ListImageReferrersError>())
                {
                    ("ListImageReferrers", code(e.code()))
                } else if let Some(e) =
                    op.and_then(|e| e.downcast_ref::<repositories::DescribeRepositoriesError>())
                {
                    ("DescribeRepositories", code(e.code()))
                } else if let Some(e) =
                    op.and_then(|e| e.downcast_ref::<lifecycle::GetLifecyclePolicyError>())
                {
                    ("GetLifecyclePolicy", code(e.code()))
                } else if e.is_timeout_error() {
                    ("DescribeImages", "timeout")
                } else {
                    ("DescribeImages", "other")
                }
            }
            None => ("DescribeImages", "other"),
        };
        if outcome == ErrorKind::Throttled.as_str() {
            self.throttled.fetch_add(1, Ordering::Relaxed);
        }
        crate::metrics::get()
            .registry_requests
            .with_label_values(&[operation, outcome])
            .inc();
        Ok(())
    }
}

/// One image's tags as [`Image`]s; an image without a digest is skipped
/// (ECR always sends one; a peer that does not is not trusted with a write).
fn images_of(detail: &ImageDetail) -> impl Iterator<Item = Image> + '_ {
    let digest = detail.image_digest();
    let pushed_at = detail
        .image_pushed_at()
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok());
    detail.image_tags().iter().filter_map(move |tag| {
        Some(Image {
            tag: tag.clone(),
            digest: digest?.to_string(),
            pushed_at,
        })
    })
}

impl Registry for EcrRegistry {
    fn list(&self, repository: &str) -> ListFuture<'_> {
        let repository = repository.to_string();
        Box::pin(async move { self.list_all(&repository).await })
    }

    fn describe(&self, repository: &str, tag: &str) -> DescribeFuture<'_> {
        let (repository, tag) = (repository.to_string(), tag.to_string());
        Box::pin(async move { self.describe_tag(&repository, &tag).await })
    }

    fn lifecycle_policy(&self, repository: &str) -> LifecycleFuture<'_> {
        let repository = repository.to_string();
        Box::pin(async move { self.lifecycle_of(&repository).await })
    }

    fn tags_immutable(&self, repository: &str) -> ImmutableFuture<'_> {
        let repository = repository.to_string();
        Box::pin(async move { self.is_immutable(&repository).await })
    }

    fn scan_findings(&self, repository: &str, digest: &str) -> ScanFuture<'_> {
        let (repository, digest) = (repository.to_string(), digest.to_string());
        Box::pin(async move { self.scan_of(&repository, &digest).await })
    }

    fn referrers(&self, repository: &str, digest: &str) -> ReferrersFuture<'_> {
        let (repository, digest) = (repository.to_string(), digest.to_string());
        Box::pin(async move { self.referrers_of(&repository, &digest).await })
    }

    fn cosign_signatures(&self, repository: &str, digest: &str) -> CosignFuture<'_> {
        let (repository, digest) = (repository.to_string(), digest.to_string());
        Box::pin(async move { self.cosign_of(&repository, &digest).await })
    }

    fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }
}

/// An error answer without an AWS error code, in one line: its status and
/// the start of its body.
fn status_only(raw: &HttpResponse) -> String {
    let status = raw.status().as_u16();
    let body = raw
        .body()
        .bytes()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    let body: String = body
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(120)
        .collect();
    if body.is_empty() {
        format!("HTTP {status} from the registry, with no error code")
    } else {
        format!("HTTP {status} from the registry, with no error code: {body:?}")
    }
}

/// No credentials, or credentials that would not load, summarised in one
/// line. The SDK's own text lists every provider of its chain on a line of
/// its own (six lines, repeated for every repository and target), when all
/// a person needs is what to set.
fn credentials_error(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    use aws_credential_types::provider::error::CredentialsError;
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(credentials) = e.downcast_ref::<CredentialsError>() {
            return Some(match credentials {
                CredentialsError::CredentialsNotLoaded(_) => NO_CREDENTIALS.to_string(),
                other => format!(
                    "cannot load AWS credentials: {}",
                    one_line(&crate::telemetry::error_chain(other))
                ),
            });
        }
        source = e.source();
    }
    None
}

/// What to do when the default chain found nothing.
const NO_CREDENTIALS: &str = "no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile with AWS_PROFILE, or IRSA on EKS; against a local endpoint any values will do)";

/// A message's lines joined into one: a log line or a `/status` field is
/// one line, whatever a peer's error text holds.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The fixed kind of an ECR error code.
fn kind_of(code: Option<&str>) -> ErrorKind {
    match code {
        Some("RepositoryNotFoundException") => ErrorKind::NotFound,
        Some("ImageNotFoundException") => ErrorKind::ImageNotFound,
        Some(
            "AccessDeniedException"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "ExpiredTokenException",
        ) => ErrorKind::AccessDenied,
        Some("ThrottlingException" | "ThrottledException" | "TooManyRequestsException") => {
            ErrorKind::Throttled
        }
        _ => ErrorKind::Other,
    }
}

fn classify<E>(repository: &str, err: SdkError<E, HttpResponse>) -> RegistryError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let kind = match &err {
        SdkError::TimeoutError(_) => ErrorKind::Timeout,
        SdkError::ServiceError(service) => kind_of(service.err().code()),
        _ => ErrorKind::Other,
    };
    let message = match (&err, kind) {
        (_, ErrorKind::NotFound) => "repository does not exist in the registry".to_string(),
        // An answer with no AWS error code (a proxy's 503, a load
        // balancer's HTML page): the SDK's own text for it is a debug dump
        // of the whole response, so say what came back instead.
        (SdkError::ServiceError(service), _) if service.err().code().is_none() => {
            status_only(service.raw())
        }
        _ => match credentials_error(&err) {
            Some(message) => message,
            None => one_line(&crate::telemetry::error_chain(&err)),
        },
    };
    RegistryError {
        repository: repository.to_string(),
        kind,
        message,
    }
}
