//! The configuration as serde reads it: `Raw*` structs that mirror the TOML
//! file and keep each value's byte span, so validation can point at a line.
//! Nothing here checks a value; that is `settings` and `apps`.

use serde::Deserialize;
use toml::Spanned;

use super::settings::ProposalOptions;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) interval: Option<Spanned<String>>,
    pub(super) listen: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) include: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) aws: RawAws,
    pub(super) git: Option<Spanned<RawGit>>,
    pub(super) forge: Option<Spanned<RawForge>>,
    pub(super) prometheus: Option<Spanned<super::prometheus::RawPrometheus>>,
    pub(super) argocd: Option<Spanned<super::argocd::RawArgo>>,
    #[serde(default)]
    pub(super) apps: Vec<RawApp>,
    #[serde(default)]
    pub(super) notify: Vec<Spanned<super::notify::RawNotify>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAws {
    pub(super) region: Option<Spanned<String>>,
    pub(super) registry_id: Option<Spanned<String>>,
    pub(super) assume_role_arn: Option<Spanned<String>>,
    pub(super) endpoint_url: Option<Spanned<String>>,
    pub(super) concurrency: Option<Spanned<i64>>,
    pub(super) events: Option<Spanned<RawEvents>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvents {
    pub(super) sqs_queue_url: Option<Spanned<String>>,
    pub(super) debounce: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGit {
    pub(super) url: Option<Spanned<String>>,
    pub(super) branch: Option<Spanned<String>>,
    pub(super) checkout_dir: Option<Spanned<String>>,
    pub(super) author: Option<Spanned<String>>,
    pub(super) push_attempts: Option<Spanned<i64>>,
    pub(super) token_file: Option<Spanned<String>>,
    pub(super) username: Option<Spanned<String>>,
    pub(super) ssh_key_file: Option<Spanned<String>>,
    pub(super) known_hosts_file: Option<Spanned<String>>,
    pub(super) signing_key_file: Option<Spanned<String>>,
    pub(super) ca_file: Option<Spanned<String>>,
    pub(super) auth: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawForge {
    pub(super) kind: Option<Spanned<String>>,
    pub(super) repository: Option<Spanned<String>>,
    pub(super) token_file: Option<Spanned<String>>,
    pub(super) api_url: Option<Spanned<String>>,
    labels: Option<Vec<Spanned<String>>>,
    reviewers: Option<Vec<Spanned<String>>>,
    assignees: Option<Vec<Spanned<String>>>,
    draft: Option<Spanned<bool>>,
    auto_merge: Option<Spanned<bool>>,
    pub(super) app_id: Option<Spanned<super::github_app::RawAppId>>,
    pub(super) installation_id: Option<Spanned<i64>>,
    pub(super) private_key_file: Option<Spanned<String>>,
}

/// Pull-request settings, in `[forge]` and in a target. (Written out in
/// both rather than `#[serde(flatten)]`ed: flatten loses the spans and
/// `deny_unknown_fields`.)
#[derive(Default)]
pub(super) struct RawProposal {
    labels: Option<Vec<Spanned<String>>>,
    reviewers: Option<Vec<Spanned<String>>>,
    assignees: Option<Vec<Spanned<String>>>,
    draft: Option<Spanned<bool>>,
    auto_merge: Option<Spanned<bool>>,
}

impl RawProposal {
    /// The first setting present, and its span, to point an error at.
    pub(super) fn first(&self) -> Option<(&'static str, Option<std::ops::Range<usize>>)> {
        let list =
            |l: &Option<Vec<Spanned<String>>>| l.as_ref().map(|v| v.first().map(|s| s.span()));
        None.or_else(|| list(&self.labels).map(|s| ("labels", s)))
            .or_else(|| list(&self.reviewers).map(|s| ("reviewers", s)))
            .or_else(|| list(&self.assignees).map(|s| ("assignees", s)))
            .or_else(|| self.draft.as_ref().map(|d| ("draft", Some(d.span()))))
            .or_else(|| {
                self.auto_merge
                    .as_ref()
                    .map(|d| ("auto_merge", Some(d.span())))
            })
    }

    /// These settings over `defaults`, each one replacing the default.
    pub(super) fn over(&self, defaults: &ProposalOptions) -> ProposalOptions {
        let list = |l: &Option<Vec<Spanned<String>>>, d: &Vec<String>| {
            l.as_ref().map_or_else(
                || d.clone(),
                |v| v.iter().map(|s| s.get_ref().clone()).collect(),
            )
        };
        ProposalOptions {
            labels: list(&self.labels, &defaults.labels),
            reviewers: list(&self.reviewers, &defaults.reviewers),
            assignees: list(&self.assignees, &defaults.assignees),
            draft: self.draft.as_ref().map_or(defaults.draft, |d| *d.get_ref()),
            auto_merge: self
                .auto_merge
                .as_ref()
                .map_or(defaults.auto_merge, |d| *d.get_ref()),
        }
    }
}

/// `document = 1` or `document = "kind=Deployment,metadata.name=api"`.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawDocument {
    Index(i64),
    Select(String),
}

/// An included file holds only apps.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInclude {
    #[serde(default)]
    pub(super) apps: Vec<RawApp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApp {
    pub(super) name: Option<Spanned<String>>,
    pub(super) repository: Option<Spanned<String>>,
    pub(super) strategy: Option<Spanned<String>>,
    pub(super) constraint: Option<Spanned<String>>,
    pub(super) allow: Option<Spanned<String>>,
    pub(super) extract: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) ignore: Vec<Spanned<String>>,
    pub(super) min_age: Option<Spanned<String>>,
    pub(super) scan_max_severity: Option<Spanned<String>>,
    pub(super) scan_undefined_as: Option<Spanned<String>>,
    pub(super) scan_pending: Option<Spanned<String>>,
    pub(super) require_signature: Option<Spanned<String>>,
    pub(super) cosign_public_key_file: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) targets: Vec<RawTarget>,
    #[serde(default)]
    pub(super) previews: Vec<super::previews::RawPreview>,
    pub(super) artifact: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
    pub(super) env: Option<Spanned<String>>,
    pub(super) file: Option<Spanned<String>>,
    pub(super) key: Option<Spanned<String>>,
    pub(super) document: Option<Spanned<RawDocument>>,
    pub(super) format: Option<Spanned<String>>,
    pub(super) kind: Option<Spanned<String>>,
    pub(super) image: Option<Spanned<String>>,
    pub(super) update: Option<Spanned<String>>,
    pub(super) constraint: Option<Spanned<String>>,
    pub(super) promote_from: Option<Spanned<String>>,
    pub(super) soak: Option<Spanned<String>>,
    pub(super) group: Option<Spanned<String>>,
    pub(super) scan_max_severity: Option<Spanned<String>>,
    pub(super) scan_undefined_as: Option<Spanned<String>>,
    pub(super) scan_pending: Option<Spanned<String>>,
    pub(super) require_signature: Option<Spanned<String>>,
    pub(super) cosign_public_key_file: Option<Spanned<String>>,
    pub(super) analysis: Option<Spanned<String>>,
    pub(super) argocd_app: Option<Spanned<String>>,
    labels: Option<Vec<Spanned<String>>>,
    reviewers: Option<Vec<Spanned<String>>>,
    assignees: Option<Vec<Spanned<String>>>,
    draft: Option<Spanned<bool>>,
    auto_merge: Option<Spanned<bool>>,
    pub(super) region: Option<Spanned<String>>,
    pub(super) registry_id: Option<Spanned<String>>,
    pub(super) assume_role_arn: Option<Spanned<String>>,
    pub(super) repository: Option<Spanned<String>>,
    pub(super) verify: Option<Spanned<String>>,
    pub(super) verify_for: Option<Spanned<String>>,
}

/// The gate keys, on an app or a target (a target's own replace the app's).
#[derive(Default, Clone)]
pub(super) struct RawGates {
    pub(super) scan_max_severity: Option<Spanned<String>>,
    pub(super) scan_undefined_as: Option<Spanned<String>>,
    pub(super) scan_pending: Option<Spanned<String>>,
    pub(super) require_signature: Option<Spanned<String>>,
    pub(super) cosign_public_key_file: Option<Spanned<String>>,
}

impl RawApp {
    pub(super) fn gates(&self) -> RawGates {
        RawGates {
            scan_max_severity: self.scan_max_severity.clone(),
            scan_undefined_as: self.scan_undefined_as.clone(),
            scan_pending: self.scan_pending.clone(),
            require_signature: self.require_signature.clone(),
            cosign_public_key_file: self.cosign_public_key_file.clone(),
        }
    }
}

impl RawTarget {
    pub(super) fn gates(&self) -> RawGates {
        RawGates {
            scan_max_severity: self.scan_max_severity.clone(),
            scan_undefined_as: self.scan_undefined_as.clone(),
            scan_pending: self.scan_pending.clone(),
            require_signature: self.require_signature.clone(),
            cosign_public_key_file: self.cosign_public_key_file.clone(),
        }
    }

    pub(super) fn proposal(&self) -> RawProposal {
        RawProposal {
            labels: self.labels.clone(),
            reviewers: self.reviewers.clone(),
            assignees: self.assignees.clone(),
            draft: self.draft.clone(),
            auto_merge: self.auto_merge.clone(),
        }
    }
}

impl RawForge {
    pub(super) fn proposal(&self) -> RawProposal {
        RawProposal {
            labels: self.labels.clone(),
            reviewers: self.reviewers.clone(),
            assignees: self.assignees.clone(),
            draft: self.draft.clone(),
            auto_merge: self.auto_merge.clone(),
        }
    }
}
