//! How tagwatch reaches AWS: the validated `[aws]` and `[aws.events]`
//! settings that the ECR registry client (`registry::ecr`) and the SQS event
//! listener (`events`) are built from.
//!
//! A leaf on purpose: it imports nothing from the crate, so those peers
//! depend on these few fields and not on `config`, which itself depends on
//! `policy`, `manifest` and `format`. `config` validates these values and
//! re-exports the types under their old paths (`config::AwsSettings`).

use std::time::Duration;

/// The `[aws]` section.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AwsSettings {
    /// Region of the registry. `None` defers to the SDK's chain
    /// (`AWS_REGION`, profile), which is what IRSA pods usually have.
    pub region: Option<String>,
    /// Another account's registry, for cross-account reads.
    pub registry_id: Option<String>,
    /// A role to assume (through STS) before calling ECR.
    pub assume_role_arn: Option<String>,
    /// An ECR-compatible endpoint instead of AWS's; used by tests and the demo.
    pub endpoint_url: Option<String>,
    /// At most this many repositories are listed at once.
    pub concurrency: usize,
    /// ECR push events through SQS, to react in seconds.
    pub events: Option<EventSettings>,
}

/// The `[aws.events]` section.
#[derive(Clone, Debug, PartialEq)]
pub struct EventSettings {
    pub sqs_queue_url: String,
    /// How long to gather a burst of pushes into one cycle.
    pub debounce: Duration,
}

/// Where a registry is reached: a region, an account's registry, a role.
/// `Location::default()` (every field `None`) is the `[aws]` section's own;
/// a DR target names another (`region`, `registry_id`, `assume_role_arn`
/// on the target), and one client is built per distinct location.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    pub region: Option<String>,
    pub registry_id: Option<String>,
    pub assume_role_arn: Option<String>,
}

impl Location {
    /// The `[aws]` section's registry.
    pub fn is_primary(&self) -> bool {
        *self == Location::default()
    }

    /// The region to name in a reason ("not yet replicated to us-west-2"),
    /// else the account.
    pub fn label(&self) -> String {
        self.region
            .clone()
            .or_else(|| self.registry_id.clone())
            .unwrap_or_else(|| "the [aws] registry".into())
    }
}

impl AwsSettings {
    /// These settings pointed at `location` instead: the same endpoint and
    /// limits, its region, registry and role where it names them.
    pub fn at(&self, location: &Location) -> AwsSettings {
        AwsSettings {
            region: location.region.clone().or_else(|| self.region.clone()),
            registry_id: location
                .registry_id
                .clone()
                .or_else(|| self.registry_id.clone()),
            assume_role_arn: location
                .assume_role_arn
                .clone()
                .or_else(|| self.assume_role_arn.clone()),
            endpoint_url: self.endpoint_url.clone(),
            concurrency: self.concurrency,
            events: None,
        }
    }
}
