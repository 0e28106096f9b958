//! The ECR keys of an app and a target: the app's `artifact` (`image` or
//! `helm-chart`), and a DR target's replica (`region`, `registry_id`,
//! `assume_role_arn`, `repository`), validated into [`Replica`].
//!
//! The rule that uses them is `cycle::plan`'s (take the source env's value
//! only once the same digest is in the replica); the clients per location
//! are built by `app`.

use toml::Spanned;

use super::ConfigError;
use super::raw::RawTarget;
use super::source::Source;
use crate::aws::Location;
use crate::image::{Artifact, ListKey};

/// Where a DR target's image must be before it is written: a repository in
/// another region (or account).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica {
    pub location: Location,
    /// The replica repository: the app's, unless the target names one.
    pub repository: String,
}

impl Replica {
    /// The listing this replica is read as.
    pub fn key(&self, artifact: Artifact) -> ListKey {
        ListKey {
            location: self.location.clone(),
            repository: self.repository.clone(),
            artifact,
        }
    }
}

/// `artifact` on an app; `image` when absent.
pub(super) fn app_artifact(
    src: &Source<'_>,
    index: usize,
    raw: &Option<Spanned<String>>,
) -> Result<Artifact, ConfigError> {
    let Some(value) = raw else {
        return Ok(Artifact::Image);
    };
    Artifact::parse(value.get_ref()).ok_or_else(|| {
        src.error(
            Some(value.span()),
            format!("apps[{index}].artifact"),
            format!(
                "unknown artifact {:?}: expected \"image\" or \"helm-chart\"",
                value.get_ref()
            ),
        )
    })
}

/// A target's replica keys, each checked; `None` when it names none.
pub(super) fn target_replica(
    src: &Source<'_>,
    app: usize,
    index: usize,
    raw: &RawTarget,
    app_repository: &str,
) -> Result<Option<Replica>, ConfigError> {
    let at = |field: &str| format!("apps[{app}].targets[{index}].{field}");
    let keys = [
        ("region", &raw.region),
        ("registry_id", &raw.registry_id),
        ("assume_role_arn", &raw.assume_role_arn),
        ("repository", &raw.repository),
    ];
    let Some((first, span)) = keys
        .iter()
        .find_map(|(k, v)| v.as_ref().map(|v| (*k, v.span())))
    else {
        return Ok(None);
    };
    for (key, value) in keys {
        let Some(value) = value else { continue };
        let text = value.get_ref();
        let problem = match key {
            "region" if !is_region(text) => Some(format!(
                "{text:?} is not an AWS region name (like \"us-west-2\")"
            )),
            "registry_id" if !(text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())) => {
                Some(format!("{text:?} is not a 12-digit AWS account id"))
            }
            "assume_role_arn" if !(text.starts_with("arn:aws") && text.contains(":role/")) => {
                Some(format!("{text:?} is not an IAM role ARN"))
            }
            "repository" if !super::apps::is_repository_name(text) => Some(format!(
                "{text:?} is not an ECR repository name (lowercase letters, digits, ._-/)"
            )),
            _ => None,
        };
        if let Some(problem) = problem {
            return Err(src.error(Some(value.span()), at(key), problem));
        }
    }
    if raw.promote_from.is_none() {
        return Err(src.error(
            Some(span),
            at(first),
            "a DR target takes its source env's value once the same digest is replicated; set promote_from (usually \"prod\")",
        ));
    }
    let text = |v: &Option<Spanned<String>>| v.as_ref().map(|s| s.get_ref().clone());
    Ok(Some(Replica {
        location: Location {
            region: text(&raw.region),
            registry_id: text(&raw.registry_id),
            assume_role_arn: text(&raw.assume_role_arn),
        },
        repository: text(&raw.repository).unwrap_or_else(|| app_repository.to_string()),
    }))
}

/// An AWS region name: `us-west-2`, `eu-central-1`, `us-gov-west-1`,
/// `cn-north-1`, `ap-southeast-3`, `us-isob-east-1`.
pub fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let (first, rest) = match parts.as_slice() {
        [first, rest @ ..] => (*first, rest),
        [] => return false,
    };
    let rest = match rest {
        [partition, rest @ ..]
            if matches!(*partition, "gov" | "iso" | "isob" | "isof" | "isoe") =>
        {
            rest
        }
        rest => rest,
    };
    const DIRECTIONS: [&str; 9] = [
        "north",
        "south",
        "east",
        "west",
        "central",
        "northeast",
        "northwest",
        "southeast",
        "southwest",
    ];
    first.len() == 2
        && first.bytes().all(|b| b.is_ascii_lowercase())
        && matches!(rest, [direction, number]
            if DIRECTIONS.contains(direction)
                && !number.is_empty()
                && number.len() <= 2
                && number.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::is_region;

    #[test]
    fn region_names() {
        for ok in [
            "us-east-1",
            "us-west-2",
            "eu-central-2",
            "ap-southeast-3",
            "us-gov-west-1",
            "cn-north-1",
            "il-central-1",
            "us-isob-east-1",
        ] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in [
            "",
            "us-west",
            "uswest2",
            "US-WEST-2",
            "us-upward-1",
            "usa-west-2",
            "us-west-2a",
            "us-west-",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }
}
