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
#[derive(Clone, Debug)]
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
}

impl Listing {
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
