//! Sharding: which apps one tagwatch process owns when the fleet is spread
//! over N processes (`--shard I/N`, `TAGWATCH_SHARD`, `--shard auto/N` in a
//! StatefulSet), with no coordinator between them.
//!
//! Owns the `I/N` syntax, the pod-ordinal rule for `auto`, the assignment
//! of apps to shards and the selection of one shard's apps from a
//! validated [`Config`]. The cycle never learns about shards: a shard's
//! process runs an ordinary cycle over the apps it owns, so it lists only
//! their repositories, and every other surface (`/status`, metrics, `once`
//! output) shows only them.
//!
//! **The assignment** is a pure function of the configuration and N, so
//! every process computes the same one without talking to the others:
//!
//! 1. Each app's key is `registry/region/repository` (empty fields for the
//!    SDK's defaults), hashed with FNV-1a 64 and a SplitMix64 finaliser —
//!    fixed, unlike std's randomly seeded hasher, so every pod, release and
//!    restart agrees.
//! 2. Apps that share a repository, and apps whose targets share a
//!    pull-request `group`, form one unit (union-find). A group spanning
//!    repositories is kept whole by assigning its apps together, rather
//!    than refused: a group is one pull request, which only one process
//!    can build, and refusing would leave a sharded estate unable to use
//!    groups at all. The unit goes where its smallest key hashes.
//! 3. The unit's shard is the jump consistent hash (Lamping and Veach,
//!    2014) of that hash into N buckets: going from N to N+1 shards moves
//!    only about 1/(N+1) of the repositories, all of them to the new shard.
//!
//! Changing N (or the hash) moves apps between processes; nothing is lost
//! or done twice, because all state is in git and every push is a
//! compare-and-swap (docs/operations.md, "Sharding").

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use crate::config::Config;

/// The most shards a fleet can be split into; far beyond any real need,
/// and small enough that a typo (`--shard 0/40000`) is refused.
pub const MAX_SHARDS: u32 = 1024;

/// One process's place among N: shard `index` of `count` (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// `--shard` as written: a fixed `I/N`, or `auto/N` (I from the pod name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardSpec {
    Fixed(Shard),
    Auto { count: u32 },
}

/// A `--shard` / `TAGWATCH_SHARD` value that cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("{0:?} is not I/N or auto/N (e.g. 2/4, or auto/4 in a StatefulSet)")]
    Syntax(String),
    #[error("{0:?}: N must be between 1 and {MAX_SHARDS}")]
    Count(String),
    #[error("{0:?}: I must be below N (shards are numbered from 0)")]
    Index(String),
    #[error(
        "auto/{count}: neither POD_NAME nor HOSTNAME is set; set one to a name ending \
         in -ORDINAL (a StatefulSet pod's name), or give --shard I/{count}"
    )]
    NoPodName { count: u32 },
    #[error(
        "auto/{count}: the pod name {name:?} does not end in -ORDINAL below {count} \
         (a StatefulSet's pods are NAME-0 … NAME-{last}); is replicas equal to N?",
        last = count.saturating_sub(1)
    )]
    Ordinal { count: u32, name: String },
}

impl FromStr for ShardSpec {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<ShardSpec, ShardError> {
        let syntax = || ShardError::Syntax(text.to_string());
        let (index, count) = text.trim().split_once('/').ok_or_else(syntax)?;
        let count: u32 = count.parse().map_err(|_| syntax())?;
        if count == 0 || count > MAX_SHARDS {
            return Err(ShardError::Count(text.to_string()));
        }
        if index == "auto" {
            return Ok(ShardSpec::Auto { count });
        }
        let index: u32 = index.parse().map_err(|_| syntax())?;
        if index >= count {
            return Err(ShardError::Index(text.to_string()));
        }
        Ok(ShardSpec::Fixed(Shard { index, count }))
    }
}

impl ShardSpec {
    /// The shard this process is. `auto/N` takes I from the ordinal suffix
    /// of `pod_name` (`POD_NAME`, from the downward API) or else
    /// `hostname` (`HOSTNAME`, which a StatefulSet sets to the pod name).
    pub fn resolve(
        self,
        pod_name: Option<&str>,
        hostname: Option<&str>,
    ) -> Result<Shard, ShardError> {
        let count = match self {
            ShardSpec::Fixed(shard) => return Ok(shard),
            ShardSpec::Auto { count } => count,
        };
        let name = pod_name
            .filter(|n| !n.is_empty())
            .or(hostname.filter(|n| !n.is_empty()))
            .ok_or(ShardError::NoPodName { count })?;
        let ordinal = name
            .rsplit_once('-')
            .and_then(|(_, n)| n.parse::<u32>().ok())
            .filter(|i| *i < count);
        match ordinal {
            Some(index) => Ok(Shard { index, count }),
            None => Err(ShardError::Ordinal {
                count,
                name: name.to_string(),
            }),
        }
    }
}

/// The key a repository is assigned by: `registry/region/repository`.
pub fn repository_key(registry_id: Option<&str>, region: Option<&str>, repository: &str) -> String {
    format!(
        "{}/{}/{repository}",
        registry_id.unwrap_or(""),
        region.unwrap_or("")
    )
}

/// FNV-1a 64 of `bytes`, then SplitMix64's finaliser so that keys that
/// differ only in their last byte still differ in the high bits the jump
/// hash reads. Part of the assignment's contract: changing it moves apps.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Jump consistent hash: `key` into one of `buckets` (≥ 1).
pub fn jump(mut key: u64, buckets: u32) -> u32 {
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as u32
}

/// What the assignment needs of one app: its repository's key and the
/// pull-request groups its targets join.
#[derive(Clone, Debug)]
pub struct Member {
    pub key: String,
    pub groups: Vec<String>,
}

/// A pull-request group whose apps are on different repositories, so it
/// was assigned as one unit (where the unit's smallest key hashes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptTogether {
    pub group: String,
    /// Indexes of the members in the group.
    pub members: Vec<usize>,
}

/// Each member's shard, and the groups that decided where some went.
#[derive(Clone, Debug)]
pub struct Assignment {
    pub shard_of: Vec<u32>,
    pub kept_together: Vec<KeptTogether>,
}

/// Assigns `members` to `count` shards (see the module header).
pub fn assign(members: &[Member], count: u32) -> Assignment {
    let mut parent: Vec<usize> = (0..members.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut first_by_key: HashMap<&str, usize> = HashMap::new();
    let mut by_group: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, m) in members.iter().enumerate() {
        if let Some(&j) = first_by_key.get(m.key.as_str()) {
            let (a, b) = (root(&mut parent, i), root(&mut parent, j));
            parent[a] = b;
        } else {
            first_by_key.insert(&m.key, i);
        }
        for g in &m.groups {
            by_group.entry(g.as_str()).or_default().push(i);
        }
    }
    let mut kept_together = Vec::new();
    for (group, list) in &by_group {
        let keys: BTreeSet<&str> = list.iter().map(|i| members[*i].key.as_str()).collect();
        if keys.len() > 1 {
            kept_together.push(KeptTogether {
                group: group.to_string(),
                members: list.clone(),
            });
        }
        for i in &list[1..] {
            let (a, b) = (root(&mut parent, *i), root(&mut parent, list[0]));
            parent[a] = b;
        }
    }
    // Each unit goes where its smallest key hashes: independent of the
    // order of apps in the file, so moving an [[apps]] block moves nothing.
    let mut smallest: HashMap<usize, &str> = HashMap::new();
    for (i, m) in members.iter().enumerate() {
        let r = root(&mut parent, i);
        let slot = smallest.entry(r).or_insert(m.key.as_str());
        if m.key.as_str() < *slot {
            *slot = m.key.as_str();
        }
    }
    let shard_of = (0..members.len())
        .map(|i| {
            let r = root(&mut parent, i);
            jump(stable_hash(smallest[&r].as_bytes()), count)
        })
        .collect();
    Assignment {
        shard_of,
        kept_together,
    }
}

/// The members of `config`'s apps, in order.
pub fn members(config: &Config) -> Vec<Member> {
    config
        .apps
        .iter()
        .map(|app| {
            let mut groups: Vec<String> =
                app.targets.iter().filter_map(|t| t.group.clone()).collect();
            groups.sort_unstable();
            groups.dedup();
            Member {
                key: repository_key(
                    config.aws.registry_id.as_deref(),
                    config.aws.region.as_deref(),
                    &app.repository,
                ),
                groups,
            }
        })
        .collect()
}

/// What one shard owns of a configuration: for `check --shard`, the log
/// line at start-up, `/status` and the metrics.
#[derive(Clone, Debug)]
pub struct Owned {
    pub shard: Shard,
    /// The owned apps' names, in config order.
    pub apps: Vec<String>,
    /// Distinct repositories of the owned apps: what this shard lists.
    pub repositories: usize,
    /// Apps in the whole configuration.
    pub total_apps: usize,
    /// Groups spanning repositories, with their apps' names (all owned or
    /// none, by construction).
    pub kept_together: Vec<(String, Vec<String>)>,
}

/// Keeps only `shard`'s apps of `config`.
pub fn select(mut config: Config, shard: Shard) -> (Config, Owned) {
    let assignment = assign(&members(&config), shard.count);
    let names: Vec<String> = config.apps.iter().map(|a| a.name.clone()).collect();
    let kept_together = assignment
        .kept_together
        .iter()
        .filter(|k| assignment.shard_of[k.members[0]] == shard.index)
        .map(|k| {
            let apps = k.members.iter().map(|i| names[*i].clone()).collect();
            (k.group.clone(), apps)
        })
        .collect();
    let total_apps = config.apps.len();
    let mut owned = assignment.shard_of.iter().map(|s| *s == shard.index);
    config.apps.retain(|_| owned.next().unwrap_or(false));
    let repositories: BTreeSet<&str> = config.apps.iter().map(|a| a.repository.as_str()).collect();
    let owned = Owned {
        shard,
        apps: config.apps.iter().map(|a| a.name.clone()).collect(),
        repositories: repositories.len(),
        total_apps,
        kept_together,
    };
    (config, owned)
}

/// Records which shard this process is, and how much it owns, in the
/// metrics (`tagwatch_shard_info`, `tagwatch_shard_apps`,
/// `tagwatch_shard_repositories`); a process without `--shard` is 0/1.
pub fn export(shard: Shard, apps: usize, repositories: usize) {
    let m = crate::metrics::get();
    m.shard_info.reset();
    let (index, count) = (shard.index.to_string(), shard.count.to_string());
    m.shard_info
        .with_label_values(&[index.as_str(), count.as_str()])
        .set(1.0);
    m.shard_apps.reset();
    m.shard_apps
        .with_label_values(&[index.as_str()])
        .set(apps as f64);
    m.shard_repositories.reset();
    m.shard_repositories
        .with_label_values(&[index.as_str()])
        .set(repositories as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> Result<ShardSpec, ShardError> {
        s.parse()
    }

    #[test]
    fn the_shard_syntax() {
        let fixed = |index, count| Ok(ShardSpec::Fixed(Shard { index, count }));
        assert_eq!(spec("0/1"), fixed(0, 1));
        assert_eq!(spec("3/4"), fixed(3, 4));
        assert_eq!(spec("auto/5"), Ok(ShardSpec::Auto { count: 5 }));
        assert!(matches!(spec("4/4"), Err(ShardError::Index(_))));
        assert!(matches!(spec("0/0"), Err(ShardError::Count(_))));
        assert!(matches!(spec("0/5000"), Err(ShardError::Count(_))));
        for bad in ["", "1", "a/2", "1/b", "-1/2", "1/2/3", "auto", "auto/x"] {
            assert!(matches!(spec(bad), Err(ShardError::Syntax(_))), "{bad}");
        }
    }

    #[test]
    fn auto_takes_the_ordinal_of_the_pod_name() {
        let auto = ShardSpec::Auto { count: 4 };
        let shard = |index| Ok(Shard { index, count: 4 });
        assert_eq!(auto.resolve(Some("tagwatch-2"), Some("x")), shard(2));
        assert_eq!(auto.resolve(None, Some("tagwatch-shard-3")), shard(3));
        assert_eq!(auto.resolve(Some(""), Some("tagwatch-0")), shard(0));
        assert!(matches!(
            auto.resolve(None, Some("tagwatch-4")),
            Err(ShardError::Ordinal { .. })
        ));
        assert!(matches!(
            auto.resolve(None, Some("tagwatch-7d9f8c-x2x")),
            Err(ShardError::Ordinal { .. })
        ));
        assert_eq!(
            auto.resolve(None, None),
            Err(ShardError::NoPodName { count: 4 })
        );
        let fixed = ShardSpec::Fixed(Shard { index: 1, count: 2 });
        assert_eq!(
            fixed.resolve(Some("tagwatch-0"), None),
            Ok(Shard { index: 1, count: 2 })
        );
    }

    /// The assignment is a contract between pods of different releases:
    /// these values must never change.
    #[test]
    fn the_hash_and_the_jump_are_stable() {
        assert_eq!(jump(stable_hash(b"/eu-west-1/payments-api"), 1), 0);
        let pinned: Vec<u32> = [
            "/eu-west-1/payments-api",
            "/eu-west-1/orders",
            "123456789012/eu-west-1/web",
            "123456789012/us-east-1/web",
            "//a",
            "//b",
            "//c",
            "//d",
        ]
        .iter()
        .map(|k| jump(stable_hash(k.as_bytes()), 4))
        .collect();
        assert_eq!(
            stable_hash(b"//a"),
            PINNED_HASH,
            "{:#x}",
            stable_hash(b"//a")
        );
        assert_eq!(pinned, PINNED);
    }
    const PINNED: [u32; 8] = [2, 2, 2, 3, 3, 0, 3, 0];
    const PINNED_HASH: u64 = 0x6e6b_7fa3_f582_cecf;

    fn member(key: &str, groups: &[&str]) -> Member {
        Member {
            key: key.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn apps_on_one_repository_and_in_one_group_stay_together() {
        // Find two keys that hash apart at N = 4, so the group matters.
        let keys: Vec<String> = (0..50).map(|i| format!("//repo-{i}")).collect();
        let a = &keys[0];
        let far = keys
            .iter()
            .find(|k| jump(stable_hash(k.as_bytes()), 4) != jump(stable_hash(a.as_bytes()), 4))
            .unwrap();
        let members = vec![
            member(a, &[]),
            member(far, &["platform"]),
            member(a, &["platform"]),
            member(far, &[]),
        ];
        let got = assign(&members, 4);
        assert!(got.shard_of.iter().all(|s| *s == got.shard_of[0]));
        assert_eq!(
            got.kept_together,
            vec![KeptTogether {
                group: "platform".into(),
                members: vec![1, 2]
            }]
        );
        // Without the group, they part.
        let apart = assign(&[member(a, &[]), member(far, &[])], 4);
        assert_ne!(apart.shard_of[0], apart.shard_of[1]);
    }

    #[test]
    fn growing_from_n_to_n_plus_1_moves_only_to_the_new_shard() {
        let members: Vec<Member> = (0..2000).map(|i| member(&format!("//r{i}"), &[])).collect();
        let four = assign(&members, 4).shard_of;
        let five = assign(&members, 5).shard_of;
        let moved = four.iter().zip(&five).filter(|(a, b)| a != b).count();
        assert!(four.iter().zip(&five).all(|(a, b)| a == b || *b == 4));
        assert!((300..500).contains(&moved), "{moved} of 2000 moved");
    }

    /// Issue 20's simulation: 50,000 apps over 10,000 repositories across
    /// 5 shards. Each shard lists only its repositories (no repository in
    /// two shards' listing plans), the shards' apps together are every app
    /// exactly once, and each shard's share is within 10 % of even.
    #[test]
    fn fifty_thousand_apps_over_five_shards() {
        const APPS: usize = 50_000;
        const REPOSITORIES: usize = 10_000;
        const SHARDS: u32 = 5;
        // Apps pick repositories unevenly, as real fleets do (a few
        // repositories with many apps), and some join pull-request groups.
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let members: Vec<Member> = (0..APPS)
            .map(|i| {
                let repo = if i < REPOSITORIES {
                    i
                } else {
                    (next() % REPOSITORIES as u64) as usize
                };
                let group = format!("team-{}", next() % 2000);
                let groups: &[&str] = if i % 50 == 0 { &[&group] } else { &[] };
                member(
                    &repository_key(
                        Some("123456789012"),
                        Some("eu-west-1"),
                        &format!("svc-{repo}"),
                    ),
                    groups,
                )
            })
            .collect();
        let assignment = assign(&members, SHARDS);
        let mut apps_of: Vec<Vec<usize>> = vec![Vec::new(); SHARDS as usize];
        for (i, s) in assignment.shard_of.iter().enumerate() {
            apps_of[*s as usize].push(i);
        }
        let mut lister: HashMap<&str, u32> = HashMap::new();
        for (shard, apps) in apps_of.iter().enumerate() {
            let plan: BTreeSet<&str> = apps.iter().map(|i| members[*i].key.as_str()).collect();
            for key in plan {
                let first = *lister.entry(key).or_insert(shard as u32);
                assert_eq!(first, shard as u32, "{key} is listed by two shards");
            }
        }
        assert_eq!(lister.len(), REPOSITORIES, "every repository is listed");
        let mut all: Vec<usize> = apps_of.concat();
        all.sort_unstable();
        assert_eq!(all, (0..APPS).collect::<Vec<_>>(), "every app exactly once");
        let even = APPS as f64 / f64::from(SHARDS);
        for (shard, apps) in apps_of.iter().enumerate() {
            let off = (apps.len() as f64 - even).abs() / even;
            assert!(
                off <= 0.10,
                "shard {shard}: {} apps, {off:.3} off even",
                apps.len()
            );
        }
    }
}
