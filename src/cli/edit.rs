//! `tagwatch set` and `tagwatch get`: the manifest editor for CI pipelines,
//! in place of `sed` or `yq`, under exactly the daemon's rules (byte-minimal,
//! quoting that reads back as a string, refuse rather than guess).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{EXIT_FAILED, EXIT_USAGE};
use crate::format::{self, Format, Parts};
use crate::manifest::{self, Document, KeyPath};

#[derive(clap::Args, Debug)]
pub struct SetArgs {
    /// The YAML file, edited in place.
    file: PathBuf,
    /// Where the value lives, e.g. image.tag or containers[name=web].image.
    key: String,
    /// TAG, TAG@DIGEST, or a digest (sha256:…), rendered by --format.
    value: String,
    /// tag (default), digest, tag@digest, image, or a template. With
    /// `tag`, a field holding an image reference keeps it and gets the new
    /// tag (as `image` would); pass the whole reference as VALUE to replace it.
    #[arg(long, default_value = "tag")]
    format: String,
    /// The document of a multi-document file: a 0-based index, or
    /// path=value pairs such as kind=Deployment,metadata.name=api.
    #[arg(long, value_parser = Document::parse)]
    document: Option<Document>,
}

#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// The YAML file.
    file: PathBuf,
    /// Where the value lives.
    key: String,
    /// The document of a multi-document file: a 0-based index, or
    /// path=value pairs such as kind=Deployment,metadata.name=api.
    #[arg(long, value_parser = Document::parse)]
    document: Option<Document>,
}

/// Exits 0 when the file changed or already held the value, 64 when the
/// edit is refused (the reason on stderr); the file is then untouched.
pub fn set(args: SetArgs) -> u8 {
    match try_set(&args) {
        Ok(message) => {
            println!("{message}");
            0
        }
        Err(Refused::Edit(reason)) => {
            eprintln!("{}: {}: {reason}", args.file.display(), args.key);
            EXIT_USAGE
        }
        // The edit was valid; the disk said no. Not a usage error.
        Err(Refused::Io(reason)) => {
            eprintln!("{}: {}: {reason}", args.file.display(), args.key);
            EXIT_FAILED
        }
    }
}

/// Why `set` wrote nothing.
enum Refused {
    /// The edit itself is refused (exit 64).
    Edit(String),
    /// Writing the file failed (exit 1).
    Io(String),
}

impl From<String> for Refused {
    fn from(reason: String) -> Refused {
        Refused::Edit(reason)
    }
}

fn try_set(args: &SetArgs) -> Result<String, Refused> {
    let format = Format::parse(&args.format)?;
    let document = args.document.clone().unwrap_or_default();
    let (src, key, current) = read(&args.file, &args.key, &document)?;
    // A bare tag over an image reference: keep the reference and replace
    // its tag. Writing the bare tag would break the manifest (a container
    // `image:` of just `main-103-bbbbbbb`) with exit 0, and a CI job that
    // passes `set FILE KEY $TAG` means the new tag, not a new shape.
    let kept = matches!(format, Format::Tag)
        && format::is_image_reference(&current)
        && !format::is_image_reference(&args.value);
    let format = if kept { Format::Image } else { format };
    let value = render(&format, &current, &args.value)?;
    let note = if kept {
        " (kept the image reference the field held)"
    } else {
        ""
    };
    match manifest::set(&src, &key, &document, &value).map_err(|e| e.to_string())? {
        None => Ok(format!(
            "{}: {}: already {value}",
            args.file.display(),
            args.key
        )),
        Some(new) => {
            write_atomically(&args.file, &new)
                .map_err(|e| Refused::Io(format!("cannot write: {e}")))?;
            Ok(format!(
                "{}: {}: {current} -> {value}{note}",
                args.file.display(),
                args.key
            ))
        }
    }
}

/// Reads `TAG`, `TAG@DIGEST` or `sha256:…` and renders it in `format`. A
/// template's registry and repository come from the value already there.
fn render(format: &Format, current: &str, value: &str) -> Result<String, String> {
    let (tag, digest) = match value.split_once('@') {
        Some((tag, digest)) => (tag, digest),
        None if value.starts_with("sha256:") => ("", value),
        None => (value, ""),
    };
    if tag.is_empty() && format.writes_tag() {
        return Err(format!(
            "format {format} writes a tag, and {value:?} has none"
        ));
    }
    let registry = format
        .current_field(current, "registry")
        .unwrap_or_default();
    let repository = format
        .current_field(current, "repository")
        .unwrap_or_default();
    format.render(
        current,
        &Parts {
            registry,
            repository,
            tag,
            digest,
        },
    )
}

/// Writes through a temporary file in the same directory and a rename, so
/// a reader (or a crash) sees the old file or the new one, never half of
/// one. The file's permissions are kept.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // Through a symlink, edit the file it points at; renaming over the
    // link would replace the link and leave the real file unchanged.
    let path = &std::fs::canonicalize(path)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let permissions = std::fs::metadata(path)?.permissions();
    let mut tmp = tempfile::Builder::new()
        .prefix(".tagwatch-")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.as_file().set_permissions(permissions)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Reads the file and the scalar at `key`: the bytes, the parsed path and
/// the current value.
fn read(file: &Path, key: &str, document: &Document) -> Result<(Vec<u8>, KeyPath, String), String> {
    let key = KeyPath::parse(key).map_err(|e| e.to_string())?;
    let src = std::fs::read(file).map_err(|e| format!("cannot read: {e}"))?;
    let value = manifest::get(&src, &key, document)
        .map_err(|e| e.to_string())?
        .value;
    Ok((src, key, value))
}

/// Prints the value at KEY; exits 64 when there is none.
pub fn get(args: GetArgs) -> u8 {
    let document = args.document.clone().unwrap_or_default();
    match read(&args.file, &args.key, &document) {
        Ok((_, _, value)) => {
            println!("{value}");
            0
        }
        Err(reason) => {
            eprintln!("{}: {}: {reason}", args.file.display(), args.key);
            EXIT_USAGE
        }
    }
}
