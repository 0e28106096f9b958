//! What a registry repository holds: [`Image`] (one tag and the manifest it
//! points at) and [`Listing`] (every tag of one repository, read at once).
//!
//! Plain data, below every module that uses it: the registry produces it,
//! `policy` judges it, the cycle writes it. Keeping it here, rather than in
//! `registry`, lets `policy` stay pure without importing the registry
//! boundary. `registry` re-exports both under their old paths.

use time::OffsetDateTime;

/// One tag of a repository and the image it points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub tag: String,
    /// The manifest digest, `sha256:…`.
    pub digest: String,
    /// When the image was pushed (`imagePushedAt`); `None` if the registry
    /// did not say.
    pub pushed_at: Option<OffsetDateTime>,
}

/// Everything one repository holds, read in one listing.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    pub repository: String,
    /// The account that owns the registry; part of the image's host name.
    pub registry_id: String,
    /// The region the registry is in; part of the image's host name.
    pub region: String,
    /// One entry per tag. An image with three tags appears three times.
    pub images: Vec<Image>,
    /// How many API pages the listing took.
    pub pages: u32,
    /// The `ACTIVE` Helm charts (`artifactMediaType` is Helm's chart
    /// config type), one entry per tag: the candidates of a `helm-chart`
    /// app, never of an `image` app. `images` holds everything else.
    pub charts: Vec<Image>,
    /// Tags whose image ECR has archived (`imageStatus` `ARCHIVED`): a pull
    /// fails, so they are never candidates, and a file that points at one
    /// is reported as a deployed image that is missing.
    pub archived: Vec<Image>,
}

/// What an app promotes: a container image, or a Helm chart stored in
/// the same registry as an OCI artifact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Artifact {
    #[default]
    Image,
    HelmChart,
}

impl Artifact {
    pub fn parse(s: &str) -> Option<Artifact> {
        match s {
            "image" => Some(Artifact::Image),
            "helm-chart" => Some(Artifact::HelmChart),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Artifact::Image => "image",
            Artifact::HelmChart => "helm-chart",
        }
    }
}

/// The `artifactMediaType` ECR reports for a Helm chart (its config blob's
/// media type).
pub const HELM_CHART_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";

/// One listing of a cycle: a repository in a registry (a region, an
/// account), as one kind of artifact. The repository is read once per
/// (location, repository) whatever the number of apps, targets and
/// artifact kinds that use it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListKey {
    pub location: crate::aws::Location,
    pub repository: String,
    pub artifact: Artifact,
}

impl Listing {
    /// The listing as an app of `artifact` sees it: its candidates are
    /// the charts for a `helm-chart` app, the images otherwise.
    pub fn of_artifact(&self, artifact: Artifact) -> Listing {
        let mut listing = self.clone();
        if artifact == Artifact::HelmChart {
            listing.images = std::mem::take(&mut listing.charts);
        }
        listing
    }

    /// The image's host and path as a pod pulls it, for the trailers.
    pub fn image_name(&self) -> String {
        format!("{}/{}", self.registry_host(), self.repository)
    }

    /// The registry's host name, `123456789012.dkr.ecr.eu-west-1.amazonaws.com`.
    pub fn registry_host(&self) -> String {
        // China regions live under their own top-level domain.
        let domain = if self.region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        format!("{}.dkr.ecr.{}.{domain}", self.registry_id, self.region)
    }
}
