//! `include = ["apps.d/*.toml"]`: expanding the globs to the files whose
//! `[[apps]]` are loaded after the main file's, refusing what would surprise
//! (absolute paths, directories, the config file itself).

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::ConfigError;
use super::source::Source;

pub(super) fn expand_include(
    src: &Source<'_>,
    key: &str,
    main: &Path,
    base: &Path,
    pattern: &Spanned<String>,
) -> Result<Vec<PathBuf>, ConfigError> {
    let raw = pattern.get_ref();
    if Path::new(raw).is_absolute() {
        return Err(src.error(
            Some(pattern.span()),
            key,
            "must be relative to the config file",
        ));
    }
    // Checked alone first, so a syntax error's position counts in what the
    // user wrote, not in the config directory joined to it.
    if let Err(e) = glob::Pattern::new(raw) {
        return Err(src.error(
            Some(pattern.span()),
            key,
            format!("invalid glob {raw:?}: {e}"),
        ));
    }
    let full = base.join(raw);
    let paths = glob::glob(&full.to_string_lossy()).map_err(|e| {
        src.error(
            Some(pattern.span()),
            key,
            format!("invalid glob {raw:?}: {e}"),
        )
    })?;
    let main = std::fs::canonicalize(main).ok();
    let mut files = Vec::new();
    for entry in paths {
        let path = entry.map_err(|e| src.error(Some(pattern.span()), key, e.to_string()))?;
        if path.is_dir() {
            let shown = path
                .strip_prefix(base)
                .unwrap_or(&path)
                .display()
                .to_string();
            return Err(src.error(
                Some(pattern.span()),
                key,
                format!("{shown:?} is a directory; include its files, e.g. \"{shown}/*.toml\""),
            ));
        }
        if main.is_some() && std::fs::canonicalize(&path).ok() == main {
            return Err(src.error(
                Some(pattern.span()),
                key,
                format!(
                    "{raw:?} matches the config file itself ({}); narrow it, e.g. \"apps.d/*.toml\"",
                    path.file_name().unwrap_or_default().to_string_lossy()
                ),
            ));
        }
        if path.is_file() {
            files.push(path);
        }
    }
    // glob yields sorted paths already; sorting again makes the order an
    // explicit promise (app order decides which duplicate is reported).
    files.sort();
    Ok(files)
}
