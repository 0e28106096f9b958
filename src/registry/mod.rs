//! The image registry boundary: what a repository holds right now.
//!
//! [`Registry`] is the trait the cycle talks to. [`ecr::EcrRegistry`] is the
//! real one (ECR's native `DescribeImages`, paginated, and for the gates
//! `DescribeImageScanFindings` and `ListImageReferrers`); [`memory`] holds a
//! fixed set of images for unit tests of the layers above. This module owns
//! the shape of a listing and the classification of failures; it knows
//! nothing of policies or files.

pub mod ecr;
pub mod memory;
pub mod regional;
pub mod scan_cache;

use std::future::Future;
use std::pin::Pin;

pub use crate::aws::Location;
pub use crate::gate::{CosignSignature, Referrers, ScanFindings};
pub use crate::image::{Artifact, Image, ListKey, Listing};

/// Why a listing failed, in the fixed set that logs and metrics use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    ImageNotFound,
    AccessDenied,
    Throttled,
    Timeout,
    Other,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::ImageNotFound => "image_not_found",
            ErrorKind::AccessDenied => "access_denied",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Other => "other",
        }
    }
}

/// A failed listing of one repository. It fails the apps that use that
/// repository and no others.
#[derive(Clone, Debug, thiserror::Error)]
#[error("repository {repository:?}: {message}")]
pub struct RegistryError {
    pub repository: String,
    pub kind: ErrorKind,
    pub message: String,
}

impl RegistryError {
    pub fn kind(&self) -> &'static str {
        self.kind.as_str()
    }
}

pub type ListFuture<'a> = Pin<Box<dyn Future<Output = Result<Listing, RegistryError>> + Send + 'a>>;
pub type DescribeFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Image>, RegistryError>> + Send + 'a>>;

pub type ScanFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ScanFindings, RegistryError>> + Send + 'a>>;
pub type ReferrersFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Referrers, RegistryError>> + Send + 'a>>;

pub type CosignFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<CosignSignature>, RegistryError>> + Send + 'a>>;

/// A repository's lifecycle policy as ECR holds it (its JSON text);
/// `None` when the repository has none.
pub type LifecycleFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<String>, RegistryError>> + Send + 'a>>;

/// Whether a repository's tags are `IMMUTABLE`.
pub type ImmutableFuture<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// A source of image listings.
pub trait Registry: Send + Sync {
    /// Lists every tagged image of `repository`, following pagination to the
    /// end. Called once per repository per cycle, however many apps use it.
    fn list(&self, repository: &str) -> ListFuture<'_>;

    /// Lists `repository` in the registry at `location` (another region's
    /// replica, another account). The default serves only the primary
    /// location; [`regional::Regional`] holds one client per location.
    fn list_at(&self, location: &Location, repository: &str) -> ListFuture<'_> {
        if location.is_primary() {
            return self.list(repository);
        }
        let error = unsupported(
            repository,
            &format!("{} (no client for it)", location.label()),
        );
        Box::pin(async move { Err(error) })
    }

    /// The repository's lifecycle policy (`GetLifecyclePolicy`), for
    /// `tagwatch lifecycle-check`.
    fn lifecycle_policy(&self, repository: &str) -> LifecycleFuture<'_> {
        let error = unsupported(repository, "lifecycle policies");
        Box::pin(async move { Err(error) })
    }

    /// Whether `repository`'s tags cannot move (`imageTagMutability =
    /// IMMUTABLE`): then a choice needs no re-check before it is written.
    /// Asked only when a re-check is due, so a quiet cycle makes no call;
    /// `false` when the registry cannot tell.
    fn tags_immutable(&self, _repository: &str) -> ImmutableFuture<'_> {
        Box::pin(async { false })
    }

    /// [`Registry::lifecycle_policy`] of the repository at `location`.
    fn lifecycle_policy_at(&self, location: &Location, repository: &str) -> LifecycleFuture<'_> {
        if location.is_primary() {
            return self.lifecycle_policy(repository);
        }
        let error = unsupported(
            repository,
            &format!("{} (no client for it)", location.label()),
        );
        Box::pin(async move { Err(error) })
    }

    /// Reads one tag as the registry holds it right now; `None` when the
    /// tag does not exist. Used to re-check a choice just before writing.
    fn describe(&self, repository: &str, tag: &str) -> DescribeFuture<'_>;

    /// One image's scan findings (every page counted); a scan that does
    /// not exist is [`crate::gate::ScanStatus::Missing`], not an error.
    /// Asked only for the images a scan gate considers.
    /// A registry that cannot tell (a fixed listing) says so, and the gate
    /// keeps the image out rather than letting it through unchecked.
    fn scan_findings(&self, repository: &str, _digest: &str) -> ScanFuture<'_> {
        let error = unsupported(repository, "scan findings");
        Box::pin(async move { Err(error) })
    }

    /// The artifact types of the OCI referrers of one image (signatures,
    /// attestations). Asked only for the images a signature gate considers.
    fn referrers(&self, repository: &str, _digest: &str) -> ReferrersFuture<'_> {
        let error = unsupported(repository, "referrers");
        Box::pin(async move { Err(error) })
    }

    /// The signatures in cosign's legacy `sha256-<hex>.sig` image for
    /// `digest` (its layers' payloads and signature annotations), for
    /// verifying them against `cosign_public_key_file`.
    fn cosign_signatures(&self, repository: &str, _digest: &str) -> CosignFuture<'_> {
        let error = unsupported(repository, "cosign signatures");
        Box::pin(async move { Err(error) })
    }

    /// How many attempts the registry has refused as throttled since the
    /// client was built, counting those the client retried away. The
    /// daemon slows its cycles down while this grows.
    fn throttled(&self) -> u64 {
        0
    }
}

fn unsupported(repository: &str, what: &str) -> RegistryError {
    RegistryError {
        repository: repository.to_string(),
        kind: ErrorKind::Other,
        message: format!("this registry cannot read {what}"),
    }
}
