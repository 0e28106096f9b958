//! One [`Registry`] over several locations: the `[aws]` registry and each
//! DR target's (another region, another account, another role).
//!
//! The cycle keeps talking to one `Arc<dyn Registry>`; this type sends a
//! [`Registry::list_at`] to the client built for that location (once, at
//! connect time, by `app::connect`) and everything else to the primary.
//! It owns the routing only, not the clients' settings.

use std::collections::HashMap;
use std::sync::Arc;

use super::{
    CosignFuture, DescribeFuture, ImmutableFuture, LifecycleFuture, ListFuture, Location,
    ReferrersFuture, Registry, ScanFuture,
};

/// The primary registry and one client per other location.
pub struct Regional {
    primary: Arc<dyn Registry>,
    others: HashMap<Location, Arc<dyn Registry>>,
}

impl Regional {
    pub fn new(primary: Arc<dyn Registry>, others: HashMap<Location, Arc<dyn Registry>>) -> Self {
        Regional { primary, others }
    }
}

impl Registry for Regional {
    fn list(&self, repository: &str) -> ListFuture<'_> {
        self.primary.list(repository)
    }

    fn list_at(&self, location: &Location, repository: &str) -> ListFuture<'_> {
        match self.others.get(location) {
            // Each client is already pointed at its location.
            Some(client) => client.list(repository),
            None => self.primary.list_at(location, repository),
        }
    }

    fn lifecycle_policy(&self, repository: &str) -> LifecycleFuture<'_> {
        self.primary.lifecycle_policy(repository)
    }

    fn tags_immutable(&self, repository: &str) -> ImmutableFuture<'_> {
        self.primary.tags_immutable(repository)
    }

    fn describe(&self, repository: &str, tag: &str) -> DescribeFuture<'_> {
        self.primary.describe(repository, tag)
    }

    fn scan_findings(&self, repository: &str, digest: &str) -> ScanFuture<'_> {
        self.primary.scan_findings(repository, digest)
    }

    fn referrers(&self, repository: &str, digest: &str) -> ReferrersFuture<'_> {
        self.primary.referrers(repository, digest)
    }

    fn cosign_signatures(&self, repository: &str, digest: &str) -> CosignFuture<'_> {
        self.primary.cosign_signatures(repository, digest)
    }

    fn throttled(&self) -> u64 {
        self.primary.throttled() + self.others.values().map(|c| c.throttled()).sum::<u64>()
    }
}
