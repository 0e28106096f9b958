//! Fetching what [`super::preview::plan`] decides on, and carrying its
//! decisions out: the preview files on the branch and who created them,
//! each block's template, the forge's state of each pull request (all at
//! once, asked once per cycle), then the commits. The write path
//! (`write.rs`) calls in here so previews land in its one push.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use time::OffsetDateTime;
use tracing::{info, warn};

use super::list::Listings;
use super::preview::{self, Action, Facts, FileFact, Planned};
use crate::config::Config;
use crate::forge::{Forge, State};
use crate::gitops::{Checkout, GitError};

/// How far back the history is searched for a preview file's creating
/// commit. A preview lives days, not thousands of commits.
const CREATION_DEPTH: usize = 2_000;

/// The branch's side of one block: its files by number and its template.
pub struct BlockFacts {
    pub at: (usize, usize),
    pub files: BTreeMap<u64, FileFact>,
    pub template: Result<Option<Vec<u8>>, String>,
}

/// Reads every block's files and template from the clone's head.
pub fn read_branch(config: &Config, checkout: &Checkout) -> Vec<BlockFacts> {
    let mut out = Vec::new();
    for (a, app) in config.apps.iter().enumerate() {
        for (b, block) in app.previews.iter().enumerate() {
            let mut files = BTreeMap::new();
            let listed = checkout.files_under(block.folder()).unwrap_or_else(|e| {
                warn!(app = %app.name, error = %e, "could not list preview files");
                Vec::new()
            });
            for path in listed {
                let Some(n) = block.number_of(&path) else {
                    continue;
                };
                let Ok(path) = block.file_of(n) else {
                    continue;
                };
                let Ok(Some(content)) = checkout.read(&path) else {
                    continue;
                };
                let by_tagwatch = checkout
                    .creation_message(&path, CREATION_DEPTH)
                    .and_then(|m| preview::number_in(&m))
                    == Some(n);
                files.insert(
                    n,
                    FileFact {
                        path,
                        content,
                        by_tagwatch,
                    },
                );
            }
            let template = checkout.read(&block.template).map_err(|e| e.to_string());
            out.push(BlockFacts {
                at: (a, b),
                files,
                template,
            });
        }
    }
    out
}

/// (repository or the forge's own, number) → what the forge said.
pub type States = HashMap<(Option<String>, u64), State>;

/// Asks the forge about every number a block has a tag or a file for and
/// that `known` does not hold yet, all at once. A failed lookup is logged
/// and left out: an unknown state never removes a preview.
pub async fn fetch_states(
    config: &Config,
    forge: Option<&Arc<dyn Forge>>,
    listings: &Listings,
    blocks: &[BlockFacts],
    known: &mut States,
) {
    let Some(forge) = forge else {
        return;
    };
    let mut wanted = BTreeSet::new();
    for facts in blocks {
        let app = &config.apps[facts.at.0];
        let block = &app.previews[facts.at.1];
        let repo = block.repository.clone();
        let mut numbers: BTreeSet<u64> = facts.files.keys().copied().collect();
        if let Some(Ok(listing)) = listings.get(&app.list_key()) {
            numbers.extend(
                listing
                    .images
                    .iter()
                    .filter_map(|i| block.number_of_tag(&i.tag)),
            );
        }
        for n in numbers {
            if !known.contains_key(&(repo.clone(), n)) {
                wanted.insert((repo.clone(), n));
            }
        }
    }
    let mut asks = tokio::task::JoinSet::new();
    for (repo, n) in wanted {
        let forge = Arc::clone(forge);
        asks.spawn(async move {
            let state = forge.pull_state(repo.as_deref(), n).await;
            ((repo, n), state)
        });
    }
    while let Some(joined) = asks.join_next().await {
        match joined {
            Ok((key, Ok(state))) => {
                known.insert(key, state);
            }
            Ok(((repo, n), Err(e))) => {
                warn!(pr = n, repository = ?repo, kind = e.kind.as_str(), error = %e, "pull request state for a preview");
            }
            Err(e) => warn!(error = %e, "pull request state task panicked"),
        }
    }
}

/// Decides every block, pure over the facts.
pub fn decide(
    config: &Config,
    listings: &Listings,
    blocks: &[BlockFacts],
    states: &States,
    now: OffsetDateTime,
) -> Vec<Planned> {
    let mut out = Vec::new();
    for facts in blocks {
        let app = &config.apps[facts.at.0];
        let block = &app.previews[facts.at.1];
        let mine: HashMap<u64, State> = states
            .iter()
            .filter(|((repo, _), _)| *repo == block.repository)
            .map(|((_, n), s)| (*n, *s))
            .collect();
        let listing = listings.get(&app.list_key()).and_then(|l| l.as_ref().ok());
        out.extend(preview::plan(&Facts {
            at: facts.at,
            app,
            preview: block,
            listing,
            files: &facts.files,
            template: &facts.template,
            states: &mine,
            now,
        }));
    }
    out
}

/// Commits each preview change on the local branch, after the targets'
/// commits and before the one push; the commit of each by index.
pub fn commit(
    config: &Config,
    checkout: &mut Checkout,
    listings: &Listings,
    planned: &[Planned],
    now: OffsetDateTime,
) -> Result<HashMap<usize, String>, GitError> {
    let mut commits = HashMap::new();
    for (i, p) in planned.iter().enumerate() {
        if !p.action.writes() {
            continue;
        }
        let app = &config.apps[p.at.0];
        let block = &app.previews[p.at.1];
        let image_name = match listings.get(&app.list_key()) {
            Some(Ok(l)) => l.image_name(),
            _ => app.repository.clone(),
        };
        let message = preview::message(p, &image_name, block);
        let id = match &p.action {
            Action::Create { content } | Action::Update { content, .. } => {
                checkout.commit_file(&p.file, content, &message, now)?
            }
            _ => checkout.commit_removal(&p.file, &message, now)?,
        };
        info!(app = %p.app, pr = p.pr, action = p.action.kind(), commit = %id, "preview committed");
        commits.insert(i, id.to_string());
    }
    Ok(commits)
}
