//! From a validated [`Config`] to the peers it names: the ECR client and,
//! with `[forge]`, the GitHub or GitLab client, and with `[prometheus]`,
//! the `analysis` gates' query client.
//!
//! Behind [`Connect`], so the two places that connect (the CLI at start-up
//! and the daemon's reload on SIGHUP) do it the same way, and a test can
//! hand either in-memory peers. The connector sits below the daemon, not
//! above it, because reload lives in the daemon and must not import what
//! imports it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::argocd::{ArgoCd, ArgoError};
use crate::config::{AwsSettings, Config, ForgeSettings, PrometheusSettings};
use crate::forge::{Forge, ForgeError};
use crate::prometheus::{Prometheus, PrometheusError};
use crate::registry::Registry;
use crate::registry::ecr::{ConnectError as RegistryConnectError, EcrRegistry};

/// A registry client being built.
pub type RegistryFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Arc<dyn Registry>, ConnectError>> + Send + 'a>>;

/// Builds peers from settings.
pub trait Connect: Send + Sync {
    fn registry<'a>(&'a self, aws: &'a AwsSettings) -> RegistryFuture<'a>;
    fn forge(&self, forge: &ForgeSettings) -> Result<Arc<dyn Forge>, ConnectError>;
    /// The `analysis` gates' Prometheus (the real client unless a test
    /// hands in another).
    fn prometheus(
        &self,
        settings: &PrometheusSettings,
    ) -> Result<Arc<dyn Prometheus>, ConnectError> {
        Ok(Arc::new(crate::prometheus::connect(settings)?))
    }
}

/// Why a peer could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Registry(#[from] RegistryConnectError),
    #[error(transparent)]
    Forge(#[from] ForgeError),
    #[error(transparent)]
    Prometheus(#[from] PrometheusError),
    #[error(transparent)]
    Argocd(#[from] ArgoError),
}

/// The real peers: aws-sdk-ecr with the default credential chain, and the
/// forge's REST client.
pub struct Real;

impl Connect for Real {
    fn registry<'a>(&'a self, aws: &'a AwsSettings) -> RegistryFuture<'a> {
        Box::pin(async move {
            let registry = EcrRegistry::connect(aws, None).await?;
            Ok(Arc::new(registry) as Arc<dyn Registry>)
        })
    }

    fn forge(&self, forge: &ForgeSettings) -> Result<Arc<dyn Forge>, ConnectError> {
        Ok(crate::forge::connect(forge)?)
    }
}

/// The peers a config names.
pub struct Peers {
    pub registry: Arc<dyn Registry>,
    pub forge: Option<Arc<dyn Forge>>,
    pub prometheus: Option<Arc<dyn Prometheus>>,
    /// With `[argocd]`: where `argocd_app` Applications are read.
    pub argocd: Option<Arc<dyn ArgoCd>>,
}

/// Connects everything `config` names.
pub async fn connect(connect: &dyn Connect, config: &Config) -> Result<Peers, ConnectError> {
    let forge = config
        .forge
        .as_ref()
        .map(|f| connect.forge(f))
        .transpose()?;
    let prometheus = config
        .prometheus
        .as_ref()
        .map(|p| connect.prometheus(p))
        .transpose()?;
    let argocd = config
        .argocd
        .as_ref()
        .map(crate::argocd::connect)
        .transpose()?;
    let registry = connect.registry(&config.aws).await?;
    let registry = with_replicas(connect, config, registry).await?;
    Ok(Peers {
        registry,
        forge,
        prometheus,
        argocd,
    })
}

/// With DR targets: the primary registry and one client per other
/// location they name (a region, an account, a role), each built once.
/// Without, the primary alone, as before.
async fn with_replicas(
    connect: &dyn Connect,
    config: &Config,
    primary: Arc<dyn Registry>,
) -> Result<Arc<dyn Registry>, ConnectError> {
    let mut others = std::collections::HashMap::new();
    let locations = config
        .apps
        .iter()
        .flat_map(|a| a.targets.iter())
        .filter_map(|t| t.replica.as_ref())
        .map(|r| &r.location)
        .filter(|l| !l.is_primary());
    for location in locations {
        if !others.contains_key(location) {
            let client = connect.registry(&config.aws.at(location)).await?;
            others.insert(location.clone(), client);
        }
    }
    if others.is_empty() {
        return Ok(primary);
    }
    Ok(Arc::new(crate::registry::regional::Regional::new(
        primary, others,
    )))
}
