//! An in-memory [`Registry`] for tests of the layers above the registry.
//! Tests of the registry itself run against a real ECR API server instead.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{
    DescribeFuture, ErrorKind, Image, ImmutableFuture, LifecycleFuture, ListFuture, Listing,
    Location, Referrers, ReferrersFuture, Registry, RegistryError, ScanFindings, ScanFuture,
};
use crate::gate::ScanStatus;

/// Repositories and their images, changeable while a test runs.
#[derive(Default)]
pub struct MemoryRegistry {
    repositories: Mutex<HashMap<String, Vec<Image>>>,
    /// Scan findings by digest; a digest not here has no scan.
    scans: Mutex<HashMap<String, ScanFindings>>,
    /// Referrers' artifact types by digest.
    referrers: Mutex<HashMap<String, Referrers>>,
    /// Whole listings by location and repository: another region's
    /// replica, charts, archived images. Asked before `repositories`.
    located: Mutex<HashMap<(Location, String), Listing>>,
    /// Lifecycle policies (ECR's JSON text) by repository.
    lifecycle: Mutex<HashMap<String, String>>,
    /// Repositories whose tags are IMMUTABLE.
    immutable: Mutex<std::collections::HashSet<String>>,
}

impl MemoryRegistry {
    /// Adds or replaces `repository`'s images.
    pub fn set(&self, repository: &str, images: Vec<Image>) {
        self.lock().insert(repository.to_string(), images);
    }

    /// Sets the scan findings of the image `digest`.
    pub fn set_scan(&self, digest: &str, scan: ScanFindings) {
        let mut scans = self.scans.lock().unwrap_or_else(|e| e.into_inner());
        scans.insert(digest.to_string(), scan);
    }

    /// Sets the artifact types that refer to the image `digest`.
    pub fn set_referrers(&self, digest: &str, types: Referrers) {
        let mut referrers = self.referrers.lock().unwrap_or_else(|e| e.into_inner());
        referrers.insert(digest.to_string(), types);
    }

    /// Sets the whole listing of `repository` at `location` (the primary
    /// one too, when `location` is the default): charts, archived images,
    /// immutability and all.
    pub fn set_listing(&self, location: &Location, repository: &str, listing: Listing) {
        let mut located = self.located.lock().unwrap_or_else(|e| e.into_inner());
        located.insert((location.clone(), repository.to_string()), listing);
    }

    /// Sets the lifecycle policy of `repository`.
    pub fn set_lifecycle_policy(&self, repository: &str, policy: &str) {
        let mut lifecycle = self.lifecycle.lock().unwrap_or_else(|e| e.into_inner());
        lifecycle.insert(repository.to_string(), policy.to_string());
    }

    /// Makes `repository`'s tags IMMUTABLE.
    pub fn set_immutable(&self, repository: &str) {
        let mut immutable = self.immutable.lock().unwrap_or_else(|e| e.into_inner());
        immutable.insert(repository.to_string());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Image>>> {
        // A panic in another test thread must not cascade into this one.
        self.repositories.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Registry for MemoryRegistry {
    fn list_at(&self, location: &Location, repository: &str) -> ListFuture<'_> {
        let located = self.located.lock().unwrap_or_else(|e| e.into_inner());
        match located.get(&(location.clone(), repository.to_string())) {
            Some(listing) => {
                let listing = listing.clone();
                Box::pin(async move { Ok(listing) })
            }
            None if location.is_primary() => self.list(repository),
            None => {
                let error = RegistryError {
                    repository: repository.to_string(),
                    kind: ErrorKind::NotFound,
                    message: format!("repository does not exist in {}", location.label()),
                };
                Box::pin(async move { Err(error) })
            }
        }
    }

    fn lifecycle_policy(&self, repository: &str) -> LifecycleFuture<'_> {
        let lifecycle = self.lifecycle.lock().unwrap_or_else(|e| e.into_inner());
        let policy = lifecycle.get(repository).cloned();
        Box::pin(async move { Ok(policy) })
    }

    fn tags_immutable(&self, repository: &str) -> ImmutableFuture<'_> {
        let immutable = self.immutable.lock().unwrap_or_else(|e| e.into_inner());
        let answer = immutable.contains(repository);
        Box::pin(async move { answer })
    }

    fn list(&self, repository: &str) -> ListFuture<'_> {
        let result = match self.lock().get(repository) {
            Some(images) => Ok(Listing {
                repository: repository.to_string(),
                registry_id: "000000000000".into(),
                region: "test-region-1".into(),
                images: images.clone(),
                pages: 1,
                ..Listing::default()
            }),
            None => Err(RegistryError {
                repository: repository.to_string(),
                kind: ErrorKind::NotFound,
                message: "repository does not exist".into(),
            }),
        };
        Box::pin(async move { result })
    }

    fn describe(&self, repository: &str, tag: &str) -> DescribeFuture<'_> {
        let image = self
            .lock()
            .get(repository)
            .and_then(|images| images.iter().find(|i| i.tag == tag).cloned());
        Box::pin(async move { Ok(image) })
    }

    fn scan_findings(&self, _repository: &str, digest: &str) -> ScanFuture<'_> {
        let scans = self.scans.lock().unwrap_or_else(|e| e.into_inner());
        let scan = scans
            .get(digest)
            .cloned()
            .unwrap_or_else(|| ScanFindings::with_status(ScanStatus::Missing));
        Box::pin(async move { Ok(scan) })
    }

    fn referrers(&self, _repository: &str, digest: &str) -> ReferrersFuture<'_> {
        let referrers = self.referrers.lock().unwrap_or_else(|e| e.into_inner());
        let types = referrers.get(digest).cloned().unwrap_or_default();
        Box::pin(async move { Ok(types) })
    }
}
