//! ECR lifecycle policies, evaluated against a listing: which images a
//! repository's rules would expire. Pure; `tagwatch lifecycle-check` reads
//! the policy (`GetLifecyclePolicy`) and the listing and asks this module
//! about each deployed image.
//!
//! ECR's rules, as its documentation states them: rules are applied in
//! `rulePriority` order (lowest first); an image that matches a rule's
//! selection is that rule's, kept or expired, and no rule after it can
//! expire it. `imageCountMoreThan` keeps the newest `countNumber` images
//! of its selection (by push time) and expires the rest;
//! `sinceImagePushed` expires those pushed more than `countNumber` days
//! ago. `tagPrefixList`/`tagPatternList` select an image that has, for
//! every entry, a tag matching it (`*` in a pattern is any run of
//! characters). Only tagged images are listed, so `untagged` rules never
//! reach a deployed image.

use std::collections::BTreeMap;

use serde::Deserialize;
use time::OffsetDateTime;

use crate::image::Image;

/// A lifecycle policy as ECR stores it.
#[derive(Clone, Debug, Deserialize)]
pub struct LifecyclePolicy {
    pub rules: Vec<Rule>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub rule_priority: i64,
    #[serde(default)]
    pub description: Option<String>,
    pub selection: Selection,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selection {
    /// `tagged`, `untagged` or `any`.
    pub tag_status: String,
    #[serde(default)]
    pub tag_prefix_list: Vec<String>,
    #[serde(default)]
    pub tag_pattern_list: Vec<String>,
    /// `imageCountMoreThan` or `sinceImagePushed`.
    pub count_type: String,
    pub count_number: i64,
}

/// A policy that is not ECR's JSON shape.
#[derive(Debug, thiserror::Error)]
#[error("the lifecycle policy is not one ECR would accept: {0}")]
pub struct PolicyError(#[from] serde_json::Error);

impl LifecyclePolicy {
    pub fn parse(text: &str) -> Result<LifecyclePolicy, PolicyError> {
        Ok(serde_json::from_str(text)?)
    }
}

/// What the policy does to one image (one digest, all its tags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// No rule selects it.
    Untouched,
    /// A rule selects it and keeps it (for now).
    Kept { rule: i64 },
    /// A rule would expire it: the rule's priority and why, in words.
    Expired { rule: i64, why: String },
    /// A rule selects it by a count this module cannot evaluate from a
    /// listing (a `countType` newer than these rules, such as one counting
    /// pulls): whether it expires is unknown, which is not the same as
    /// kept — an audit that said "kept" would hide the outage it exists
    /// to show.
    Unknown { rule: i64, why: String },
}

/// One image: a digest, its tags, when it was pushed.
struct Entry<'a> {
    digest: &'a str,
    tags: Vec<&'a str>,
    pushed_at: Option<OffsetDateTime>,
}

/// The fate of every tagged image in `images` (one entry per tag, as a
/// listing has them), by digest.
pub fn evaluate(
    policy: &LifecyclePolicy,
    images: &[Image],
    now: OffsetDateTime,
) -> BTreeMap<String, Fate> {
    let mut by_digest: BTreeMap<&str, Entry<'_>> = BTreeMap::new();
    for image in images {
        let entry = by_digest.entry(&image.digest).or_insert(Entry {
            digest: &image.digest,
            tags: Vec::new(),
            pushed_at: image.pushed_at,
        });
        entry.tags.push(&image.tag);
    }
    // Newest first; an image without a push time counts as oldest.
    let mut entries: Vec<Entry<'_>> = by_digest.into_values().collect();
    entries.sort_by(|a, b| b.pushed_at.cmp(&a.pushed_at).then(a.digest.cmp(b.digest)));

    let mut rules = policy.rules.clone();
    rules.sort_by_key(|r| r.rule_priority);
    let mut fates: BTreeMap<String, Fate> = BTreeMap::new();
    for rule in &rules {
        let s = &rule.selection;
        if s.tag_status == "untagged" {
            continue;
        }
        let selected: Vec<&Entry<'_>> = entries
            .iter()
            .filter(|e| !fates.contains_key(e.digest) && selects(s, &e.tags))
            .collect();
        for (rank, e) in selected.iter().enumerate() {
            let fate = match s.count_type.as_str() {
                "imageCountMoreThan" if rank as i64 >= s.count_number => Fate::Expired {
                    rule: rule.rule_priority,
                    why: format!(
                        "rule {} keeps the newest {} images{}; this is number {} of {}",
                        rule.rule_priority,
                        s.count_number,
                        describe(rule),
                        rank + 1,
                        selected.len()
                    ),
                },
                "sinceImagePushed"
                    if e.pushed_at
                        .is_some_and(|p| (now - p).whole_days() > s.count_number) =>
                {
                    let days = e.pushed_at.map(|p| (now - p).whole_days()).unwrap_or(0);
                    Fate::Expired {
                        rule: rule.rule_priority,
                        why: format!(
                            "rule {} expires images pushed more than {} days ago{}; this one was pushed {days} days ago",
                            rule.rule_priority,
                            s.count_number,
                            describe(rule)
                        ),
                    }
                }
                "imageCountMoreThan" | "sinceImagePushed" => Fate::Kept {
                    rule: rule.rule_priority,
                },
                other => Fate::Unknown {
                    rule: rule.rule_priority,
                    why: format!(
                        "rule {} counts by {other:?}{}, which tagwatch cannot evaluate from a listing",
                        rule.rule_priority,
                        describe(rule)
                    ),
                },
            };
            fates.insert(e.digest.to_string(), fate);
        }
    }
    for e in &entries {
        fates.entry(e.digest.to_string()).or_insert(Fate::Untouched);
    }
    fates
}

fn describe(rule: &Rule) -> String {
    rule.description
        .as_deref()
        .map(|d| format!(" ({d:?})"))
        .unwrap_or_default()
}

/// Whether a selection takes an image with these tags.
fn selects(s: &Selection, tags: &[&str]) -> bool {
    if s.tag_status == "any" {
        return true;
    }
    s.tag_prefix_list
        .iter()
        .all(|p| tags.iter().any(|t| t.starts_with(p.as_str())))
        && s.tag_pattern_list
            .iter()
            .all(|p| tags.iter().any(|t| wildcard(p, t)))
}

/// `*` matches any run of characters; everything else matches itself.
fn wildcard(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(n: i64, now: OffsetDateTime) -> Vec<Image> {
        (1..=n)
            .map(|i| Image {
                tag: format!("1.0.{i}"),
                digest: format!("sha256:{i:064}"),
                pushed_at: Some(now - time::Duration::days(n - i)),
            })
            .collect()
    }

    fn policy(json: &str) -> LifecyclePolicy {
        LifecyclePolicy::parse(json).unwrap()
    }

    #[test]
    fn keep_the_last_three_expires_the_fifth_newest() {
        let now = OffsetDateTime::now_utc();
        let p = policy(
            r#"{"rules":[{"rulePriority":1,"description":"keep 3","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":3},"action":{"type":"expire"}}]}"#,
        );
        let fates = evaluate(&p, &images(7, now), now);
        // 1.0.7 is newest; 1.0.3 is the fifth newest.
        assert!(
            matches!(fates[&format!("sha256:{:064}", 3)], Fate::Expired { rule: 1, ref why } if why.contains("number 5 of 7"))
        );
        assert_eq!(fates[&format!("sha256:{:064}", 5)], Fate::Kept { rule: 1 });
    }

    #[test]
    fn a_higher_priority_rule_protects_its_images() {
        let now = OffsetDateTime::now_utc();
        let p = policy(
            r#"{"rules":[
              {"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["1.0.1"],"countType":"imageCountMoreThan","countNumber":100},"action":{"type":"expire"}},
              {"rulePriority":2,"selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":2},"action":{"type":"expire"}}]}"#,
        );
        let fates = evaluate(&p, &images(5, now), now);
        // 1.0.1 (4 days old) is rule 1's and kept; 1.0.2 (3 days) expires.
        assert_eq!(fates[&format!("sha256:{:064}", 1)], Fate::Kept { rule: 1 });
        assert!(matches!(
            fates[&format!("sha256:{:064}", 2)],
            Fate::Expired { rule: 2, .. }
        ));
        assert_eq!(fates[&format!("sha256:{:064}", 4)], Fate::Kept { rule: 2 });
    }

    /// A count this module does not know (ECR has added count types
    /// before) is "not evaluated", never "kept": the check exists to
    /// show an outage before it happens, so it must not vouch blind.
    #[test]
    fn an_unknown_count_type_is_not_evaluated_rather_than_kept() {
        let now = OffsetDateTime::now_utc();
        let p = policy(
            r#"{"rules":[{"rulePriority":3,"selection":{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":30},"action":{"type":"expire"}}]}"#,
        );
        let fates = evaluate(&p, &images(2, now), now);
        assert!(matches!(
            &fates[&format!("sha256:{:064}", 1)],
            Fate::Unknown { rule: 3, why } if why.contains("sinceImagePulled")
        ));
    }

    #[test]
    fn patterns() {
        assert!(wildcard("prod*", "prod-1"));
        assert!(wildcard("*-rc*", "1.0-rc1"));
        assert!(!wildcard("prod*", "dev-1"));
        assert!(wildcard("a*b*c", "aXbYc"));
        assert!(!wildcard("a*b*c", "aXc"));
    }
}
