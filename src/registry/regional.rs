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

    fn lifecycle_policy_at(&self, location: &Location, repository: &str) -> LifecycleFuture<'_> {
        match self.others.get(location) {
            Some(client) => client.lifecycle_policy(repository),
            None => self.primary.lifecycle_policy_at(location, repository),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::memory::MemoryRegistry;
    use crate::registry::{Image, Listing};

    fn image(tag: &str, digest: &str) -> Image {
        Image {
            tag: tag.into(),
            digest: digest.into(),
            pushed_at: None,
        }
    }

    /// A replica location is listed through its own client; anything else
    /// (the primary's listing, re-checks, lifecycle policies) through the
    /// primary; a location without a client is an error, not the primary.
    #[tokio::test]
    async fn each_location_is_listed_through_its_own_client() {
        let west = Location {
            region: Some("us-west-2".into()),
            ..Location::default()
        };
        let primary = Arc::new(MemoryRegistry::default());
        primary.set("web", vec![image("1.4.3", "sha256:b2")]);
        primary.set_lifecycle_policy("web", "{\"rules\":[]}");
        let replica = Arc::new(MemoryRegistry::default());
        replica.set("web", vec![image("1.4.2", "sha256:a1")]);
        let regional = Regional::new(
            primary,
            HashMap::from([(west.clone(), replica as Arc<dyn Registry>)]),
        );

        let tags = |l: Listing| l.images.into_iter().map(|i| i.tag).collect::<Vec<_>>();
        let here = regional.list_at(&Location::default(), "web").await.unwrap();
        assert_eq!(tags(here), ["1.4.3"]);
        let there = regional.list_at(&west, "web").await.unwrap();
        assert_eq!(tags(there), ["1.4.2"]);
        let east = Location {
            region: Some("us-east-2".into()),
            ..Location::default()
        };
        let none = regional.list_at(&east, "web").await.unwrap_err();
        assert!(none.message.contains("us-east-2"), "{none}");
        assert!(regional.lifecycle_policy("web").await.unwrap().is_some());
        assert!(!regional.tags_immutable("web").await);
    }

    /// The memory registry holds whole listings per location (charts,
    /// archived images) and IMMUTABLE repositories, for tests above it.
    #[tokio::test]
    async fn memory_holds_listings_per_location() {
        let west = Location {
            region: Some("us-west-2".into()),
            ..Location::default()
        };
        let memory = MemoryRegistry::default();
        memory.set_listing(
            &west,
            "web",
            Listing {
                repository: "web".into(),
                region: "us-west-2".into(),
                charts: vec![image("0.4.0", "sha256:c4")],
                ..Listing::default()
            },
        );
        memory.set_immutable("web");
        let listing = memory.list_at(&west, "web").await.unwrap();
        assert_eq!(listing.region, "us-west-2");
        let charts = listing.of_artifact(crate::image::Artifact::HelmChart);
        assert_eq!(charts.images[0].tag, "0.4.0");
        assert!(memory.list_at(&Location::default(), "web").await.is_err());
        assert!(memory.tags_immutable("web").await);
    }
}
