//! An in-memory [`Registry`] for tests of the layers above the registry.
//! Tests of the registry itself run against a real ECR API server instead.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{DescribeFuture, ErrorKind, Image, ListFuture, Listing, Registry, RegistryError};

/// Repositories and their images, changeable while a test runs.
#[derive(Default)]
pub struct MemoryRegistry {
    repositories: Mutex<HashMap<String, Vec<Image>>>,
}

impl MemoryRegistry {
    /// Adds or replaces `repository`'s images.
    pub fn set(&self, repository: &str, images: Vec<Image>) {
        self.lock().insert(repository.to_string(), images);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Image>>> {
        // A panic in another test thread must not cascade into this one.
        self.repositories.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Registry for MemoryRegistry {
    fn list(&self, repository: &str) -> ListFuture<'_> {
        let result = match self.lock().get(repository) {
            Some(images) => Ok(Listing {
                repository: repository.to_string(),
                registry_id: "000000000000".into(),
                region: "test-region-1".into(),
                images: images.clone(),
                pages: 1,
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
}
