//! `[[apps.previews]]`: preview environments from pull-request images.
//! Raw table → validated [`Preview`]: `allow` compiled and checked for its
//! `pr` group, the `file` pattern checked for `{pr}` and kept inside the
//! repository, `template` a [`RepoPath`], `key` parsed like a target's,
//! `ttl` typed, `max_previews` bounded. Deciding what to do with a preview
//! is `cycle::preview`'s; this module only says what was configured.

use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::apps::RepoPath;
use super::source::Source;
use crate::format::Format;
use crate::manifest::KeyPath;

/// Previews per block unless `max_previews` says otherwise.
pub const DEFAULT_MAX_PREVIEWS: usize = 20;
/// Past this a cycle would spend its time on forge calls, one per preview.
const MAX_MAX_PREVIEWS: i64 = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPreview {
    allow: Option<Spanned<String>>,
    file: Option<Spanned<String>>,
    template: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    format: Option<Spanned<String>>,
    ttl: Option<Spanned<String>>,
    max_previews: Option<Spanned<i64>>,
    preview_repository: Option<Spanned<String>>,
}

/// One validated `[[apps.previews]]` block.
#[derive(Clone, Debug)]
pub struct Preview {
    /// Which tags are previews; has a named group `pr` (digits).
    pub allow: Arc<Regex>,
    /// The file per preview, with `{app}` already filled: `{pr}` is the
    /// only placeholder left.
    pub file: String,
    /// Copied from the branch to create a preview's file.
    pub template: RepoPath,
    /// What is set in the file.
    pub key: KeyPath,
    /// What the scalar holds (`tag` unless set), as for a target.
    pub format: Format,
    /// Remove a preview whose newest image is older than this.
    pub ttl: Option<Duration>,
    /// At most this many previews of this block exist at once.
    pub max_previews: usize,
    /// The forge repository the pull-request numbers belong to, when not
    /// `[forge].repository` (`owner/repo` on GitHub, a project path on GitLab).
    pub repository: Option<String>,
}

impl Preview {
    /// The file of preview `pr`.
    pub fn file_of(&self, pr: u64) -> Result<RepoPath, super::RepoPathError> {
        RepoPath::new(&self.file.replace("{pr}", &pr.to_string()))
    }

    /// The preview number a path of this block's pattern belongs to.
    pub fn number_of(&self, path: &str) -> Option<u64> {
        let (before, after) = self.file.split_once("{pr}")?;
        let middle = path.strip_prefix(before)?.strip_suffix(after)?;
        if middle.is_empty() || !middle.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u64 = middle.parse().ok()?;
        // `pr-007.yaml` is not preview 7's file: only the canonical form.
        (n.to_string() == middle).then_some(n)
    }

    /// The folder every preview file of this block is under (the pattern's
    /// directory part before `{pr}`), where the branch is searched.
    pub fn folder(&self) -> &str {
        let before = self.file.split("{pr}").next().unwrap_or("");
        before.rsplit_once('/').map_or("", |(dir, _)| dir)
    }

    /// The preview number of `tag`, when it is one of this block's tags.
    pub fn number_of_tag(&self, tag: &str) -> Option<u64> {
        self.allow.captures(tag)?.name("pr")?.as_str().parse().ok()
    }
}

/// Validates `apps[app].previews[index]`.
pub(super) fn validate(
    src: &Source<'_>,
    app: usize,
    app_name: &str,
    index: usize,
    raw: &RawPreview,
    app_span: Option<std::ops::Range<usize>>,
) -> Result<Preview, ConfigError> {
    let at = |field: &str| format!("apps[{app}].previews[{index}].{field}");
    let first = [&raw.allow, &raw.file, &raw.template, &raw.key]
        .into_iter()
        .flatten()
        .map(|s| s.span())
        .next()
        .or(app_span);
    let allow = src.required(&raw.allow, first.clone(), &at("allow"))?;
    let regex = Regex::new(allow.get_ref()).map_err(|e| {
        src.error(
            Some(allow.span()),
            at("allow"),
            format!("invalid regex {:?}: {e}", allow.get_ref()),
        )
    })?;
    if !regex.capture_names().any(|n| n == Some("pr")) {
        return Err(src.error(
            Some(allow.span()),
            at("allow"),
            "needs the named group `pr` that captures the pull-request number, e.g. '^pr-(?P<pr>\\d+)-[0-9a-f]{7,40}$'",
        ));
    }
    let file = src.required(&raw.file, first.clone(), &at("file"))?;
    if !file.get_ref().contains("{pr}") {
        return Err(src.error(
            Some(file.span()),
            at("file"),
            "must contain {pr}, so that each pull request has its own file",
        ));
    }
    if file.get_ref().matches("{pr}").count() > 1 {
        return Err(src.error(Some(file.span()), at("file"), "must contain {pr} once"));
    }
    let pattern = file.get_ref().replace("{app}", app_name);
    // Checked with a sample number: the pattern must stay inside the
    // repository for every number it will be filled with.
    RepoPath::new(&pattern.replace("{pr}", "1"))
        .map_err(|m| src.error(Some(file.span()), at("file"), m))?;
    let template = src.required(&raw.template, first.clone(), &at("template"))?;
    let template = RepoPath::new(&template.get_ref().replace("{app}", app_name))
        .map_err(|m| src.error(Some(template.span()), at("template"), m))?;
    let key = src.required(&raw.key, first, &at("key"))?;
    let key_path = KeyPath::parse(key.get_ref())
        .map_err(|e| src.error(Some(key.span()), at("key"), e.to_string()))?;
    let format = match &raw.format {
        Some(f) => {
            Format::parse(f.get_ref()).map_err(|m| src.error(Some(f.span()), at("format"), m))?
        }
        None => Format::Tag,
    };
    let ttl = match &raw.ttl {
        Some(t) => Some(src.positive_duration(t, &at("ttl"))?),
        None => None,
    };
    let max_previews = match &raw.max_previews {
        Some(m) if (1..=MAX_MAX_PREVIEWS).contains(m.get_ref()) => *m.get_ref() as usize,
        Some(m) => {
            return Err(src.error(
                Some(m.span()),
                at("max_previews"),
                format!("must be between 1 and {MAX_MAX_PREVIEWS}"),
            ));
        }
        None => DEFAULT_MAX_PREVIEWS,
    };
    let repository = match &raw.preview_repository {
        Some(r)
            if r.get_ref().trim().is_empty() || r.get_ref().chars().any(char::is_whitespace) =>
        {
            return Err(src.error(
                Some(r.span()),
                at("preview_repository"),
                "must be owner/repo (GitHub) or a project path (GitLab), without spaces",
            ));
        }
        Some(r) => Some(r.get_ref().clone()),
        None => None,
    };
    Ok(Preview {
        allow: Arc::new(regex),
        file: pattern,
        template,
        key: key_path,
        format,
        ttl,
        max_previews,
        repository,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(file: &str) -> Preview {
        Preview {
            allow: Arc::new(Regex::new(r"^pr-(?P<pr>\d+)-[0-9a-f]{7}$").unwrap()),
            file: file.into(),
            template: RepoPath::new("t.yaml").unwrap(),
            key: KeyPath::parse("image.tag").unwrap(),
            format: Format::Tag,
            ttl: None,
            max_previews: DEFAULT_MAX_PREVIEWS,
            repository: None,
        }
    }

    #[test]
    fn numbers_come_from_tags_and_canonical_paths_only() {
        let b = block("previews/payments/pr-{pr}.yaml");
        assert_eq!(b.folder(), "previews/payments");
        assert_eq!(b.number_of("previews/payments/pr-42.yaml"), Some(42));
        assert_eq!(b.number_of("previews/payments/pr-042.yaml"), None);
        assert_eq!(b.number_of("previews/payments/pr-.yaml"), None);
        assert_eq!(b.number_of("previews/payments/_template.yaml"), None);
        assert_eq!(b.number_of("previews/payments/pr-4x.yaml"), None);
        assert_eq!(b.number_of_tag("pr-7-abc1234"), Some(7));
        assert_eq!(b.number_of_tag("1.0.0"), None);
        assert_eq!(
            b.file_of(7).map(|p| p.to_string()),
            Ok("previews/payments/pr-7.yaml".into())
        );
        let nested = block("previews/pr-{pr}/values.yaml");
        assert_eq!(nested.folder(), "previews");
        assert_eq!(nested.number_of("previews/pr-3/values.yaml"), Some(3));
        assert_eq!(block("pr-{pr}.yaml").folder(), "");
    }
}
