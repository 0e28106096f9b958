//! What is written into a target's scalar, and reading a tag back out of
//! what is there: `format = "tag" | "digest" | "tag@digest" | "image"` or a
//! template such as `"{registry}/{repository}:{tag}@{digest}"`.
//!
//! Pure: rendering takes the chosen image and the scalar's current text;
//! reading takes the current text. The policy needs the tag a file holds to
//! guard against downgrades, whatever shape the file keeps it in, so both
//! directions live here together.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use regex::Regex;

/// The parts of an image reference a value can be built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parts<'a> {
    /// `123456789012.dkr.ecr.eu-west-1.amazonaws.com`
    pub registry: &'a str,
    /// `payments-api`
    pub repository: &'a str,
    pub tag: &'a str,
    /// `sha256:…`; empty when unknown (a tag given on the command line).
    pub digest: &'a str,
}

/// A validated `format`.
#[derive(Clone, Debug)]
pub enum Format {
    Tag,
    Digest,
    TagAtDigest,
    /// The whole reference; the registry and repository already in the file
    /// are kept and only the tag (and digest, if pinned) is replaced.
    Image,
    /// Shared by every target written with the same template (see
    /// [`Formats`]): its compiled reader is the costly part.
    Template(Arc<Template>),
}

impl Format {
    /// Parses a `format` value. Anything with braces is a template.
    pub fn parse(s: &str) -> Result<Format, String> {
        match s {
            "tag" => Ok(Format::Tag),
            "digest" => Ok(Format::Digest),
            "tag@digest" => Ok(Format::TagAtDigest),
            "image" => Ok(Format::Image),
            t if t.contains('{') => Template::parse(t).map(|t| Format::Template(Arc::new(t))),
            other => Err(format!(
                "unknown format {other:?}; expected tag, digest, tag@digest, image, or a template such as \"{{registry}}/{{repository}}:{{tag}}\""
            )),
        }
    }

    /// Whether every value of this format pins a digest (an `image` value
    /// may or may not; see [`Format::pins_digest`]).
    pub fn always_pins_digest(&self) -> bool {
        match self {
            Format::Digest | Format::TagAtDigest => true,
            Format::Image | Format::Tag => false,
            Format::Template(t) => t.fields.contains(&Field::Digest),
        }
    }

    /// Whether the value written over `current` pins a digest, so a tag
    /// that moved to a new image must be rewritten even though the tag is
    /// unchanged, and the pairing must be re-read before it is written.
    pub fn pins_digest(&self, current: &str) -> bool {
        match self {
            Format::Image => ImageRef::parse(current).is_some_and(|r| r.digest.is_some()),
            other => other.always_pins_digest(),
        }
    }

    /// Whether the written value contains the tag.
    pub fn writes_tag(&self) -> bool {
        match self {
            Format::Tag | Format::TagAtDigest | Format::Image => true,
            Format::Digest => false,
            Format::Template(t) => t.fields.contains(&Field::Tag),
        }
    }

    /// The value to write for `parts`, given the scalar's `current` text.
    /// Fails when the format needs a digest and none is known, or when
    /// `current` is not an image reference for `image`.
    pub fn render(&self, current: &str, parts: &Parts<'_>) -> Result<String, String> {
        let need_digest = || {
            if parts.digest.is_empty() {
                Err(NO_DIGEST.to_string())
            } else {
                Ok(parts.digest)
            }
        };
        Ok(match self {
            Format::Tag => parts.tag.to_string(),
            Format::Digest => need_digest()?.to_string(),
            Format::TagAtDigest => format!("{}@{}", parts.tag, need_digest()?),
            Format::Image => {
                // A bare word (`1.4.2`) parses as a name without a tag;
                // taking it for one would write `1.4.2:1.4.3`.
                let reference = ImageRef::parse(current)
                    .filter(|_| is_image_reference(current))
                    .ok_or_else(|| {
                        format!("{current:?} is not an image reference (registry/repository:tag)")
                    })?;
                let mut out = format!("{}:{}", reference.name, parts.tag);
                // A pinned digest that stayed would point at the old image.
                if reference.digest.is_some() {
                    out.push('@');
                    out.push_str(need_digest()?);
                }
                out
            }
            Format::Template(t) => t.render(parts)?,
        })
    }

    /// The tag the scalar holds, as far as the text tells; `None` when it
    /// does not (a bare digest, or text that does not fit the format).
    pub fn current_tag<'a>(&self, current: &'a str) -> Option<&'a str> {
        match self {
            Format::Tag => Some(current),
            Format::Digest => None,
            Format::TagAtDigest => Some(current.split_once('@').map_or(current, |(t, _)| t)),
            Format::Image => ImageRef::parse(current)?.tag,
            Format::Template(t) => t.read_tag(current),
        }
    }

    /// A named part (`registry`, `repository`) of the scalar, where the
    /// format keeps one; used when only a tag is given (`tagwatch set`).
    pub fn current_field<'a>(&self, current: &'a str, name: &str) -> Option<&'a str> {
        let Format::Template(t) = self else {
            return None;
        };
        t.read_field(current, Field::parse(name)?)
    }

    /// The digest the scalar holds, when the format writes one.
    pub fn current_digest<'a>(&self, current: &'a str) -> Option<&'a str> {
        match self {
            Format::Digest => Some(current),
            Format::TagAtDigest => current.split_once('@').map(|(_, d)| d),
            Format::Image => ImageRef::parse(current)?.digest,
            Format::Template(t) => t.read_field(current, Field::Digest),
            Format::Tag => None,
        }
    }
}

/// Parsed formats by their text, so one configuration compiles each
/// distinct template once. A fleet writes the same template in hundreds of
/// targets, and each template's reader is a compiled `Regex` of about
/// 17 KB (its negated classes such as `[^/]` match any Unicode scalar, a
/// large automaton), and compiling it is slow: issue 20 measured 1,600
/// copies of one template as 28 MB of a 10,000-app config's 64 MB. An
/// `Arc` shares the program and its search cache pool; a `Regex` clone
/// would share only the program.
#[derive(Default)]
pub struct Formats(HashMap<String, Format>);

impl Formats {
    /// [`Format::parse`], answered from the cache when `s` was parsed
    /// before. Errors are not cached: the first one stops the load.
    pub fn parse(&mut self, s: &str) -> Result<Format, String> {
        if let Some(format) = self.0.get(s) {
            return Ok(format.clone());
        }
        let format = Format::parse(s)?;
        self.0.insert(s.to_string(), format.clone());
        Ok(format)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Format::Tag => f.write_str("tag"),
            Format::Digest => f.write_str("digest"),
            Format::TagAtDigest => f.write_str("tag@digest"),
            Format::Image => f.write_str("image"),
            Format::Template(t) => f.write_str(&t.text),
        }
    }
}

/// Whether `value` is an image reference (`registry/repository:tag`,
/// `name:tag`, either with `@digest`) rather than a bare tag, a
/// `tag@digest` or a digest. A bare tag cannot hold `/` or `:` (OCI tag
/// grammar), so a value with a `/` or a `:tag` is a reference, unless it
/// is a digest (`sha256:…`, `sha512:…`).
pub fn is_image_reference(value: &str) -> bool {
    let digest = value.split_once(':').is_some_and(|(algorithm, hex)| {
        matches!(algorithm, "sha256" | "sha384" | "sha512")
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
    });
    !digest && ImageRef::parse(value).is_some_and(|r| r.name.contains('/') || r.tag.is_some())
}

/// `name[:tag][@digest]`, where `name` may carry a registry host with a
/// port (`localhost:5000/app`), so the tag is after the last `:` that
/// follows the last `/`.
struct ImageRef<'a> {
    name: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

impl<'a> ImageRef<'a> {
    fn parse(s: &'a str) -> Option<ImageRef<'a>> {
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (s, None),
        };
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
            None => (rest, None),
        };
        let valid = !name.is_empty() && !name.contains(char::is_whitespace) && tag != Some("");
        valid.then_some(ImageRef { name, tag, digest })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Registry,
    Repository,
    Tag,
    Digest,
}

/// Why a digest-writing format cannot render.
const NO_DIGEST: &str = "this format writes a digest, and none is known for the tag";

impl Field {
    const ALL: [Field; 4] = [
        Field::Registry,
        Field::Repository,
        Field::Tag,
        Field::Digest,
    ];

    /// The name in braces, and the capture group's name.
    fn name(self) -> &'static str {
        match self {
            Field::Registry => "registry",
            Field::Repository => "repository",
            Field::Tag => "tag",
            Field::Digest => "digest",
        }
    }

    fn parse(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// What a value of this field looks like, for reading it back.
    fn pattern(self) -> &'static str {
        match self {
            Field::Registry => r"[^/]+",
            Field::Repository => r"[^:@]+",
            Field::Tag => r"[A-Za-z0-9_][A-Za-z0-9_.-]*",
            Field::Digest => r"[A-Za-z0-9_+.-]+:[0-9a-fA-F]+",
        }
    }

    fn of<'a>(self, parts: &Parts<'a>) -> &'a str {
        match self {
            Field::Registry => parts.registry,
            Field::Repository => parts.repository,
            Field::Tag => parts.tag,
            Field::Digest => parts.digest,
        }
    }
}

/// A format with braced fields.
#[derive(Clone, Debug)]
pub struct Template {
    text: String,
    /// Literal text and fields, in order.
    pieces: Vec<Piece>,
    fields: Vec<Field>,
    /// Reads the fields back out of a value written by this template.
    reader: Regex,
}

#[derive(Clone, Debug)]
enum Piece {
    Literal(String),
    Field(Field),
}

impl Template {
    fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut fields = Vec::new();
        let mut rest = text;
        let mut pattern = String::from("^");
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let end = rest
                        .find('}')
                        .ok_or_else(|| format!("template {text:?}: unclosed '{{'"))?;
                    let Some(field) = Field::parse(&rest[1..end]) else {
                        return Err(format!(
                            "template {text:?}: unknown field {{{}}}; use {{registry}}, {{repository}}, {{tag}} or {{digest}}",
                            &rest[1..end]
                        ));
                    };
                    if fields.contains(&field) {
                        return Err(format!(
                            "template {text:?}: field {{{}}} appears twice",
                            &rest[1..end]
                        ));
                    }
                    pattern.push_str(&format!("(?P<{}>{})", field.name(), field.pattern()));
                    fields.push(field);
                    pieces.push(Piece::Field(field));
                    rest = &rest[end + 1..];
                }
                found => {
                    let end = found.unwrap_or(rest.len());
                    let literal = &rest[..end];
                    if literal.contains('}') {
                        return Err(format!("template {text:?}: '}}' without '{{'"));
                    }
                    pattern.push_str(&regex::escape(literal));
                    pieces.push(Piece::Literal(literal.to_string()));
                    rest = &rest[end..];
                }
            }
        }
        if !fields.contains(&Field::Tag) && !fields.contains(&Field::Digest) {
            return Err(format!(
                "template {text:?} names neither {{tag}} nor {{digest}}, so it would never change"
            ));
        }
        pattern.push('$');
        let reader = Regex::new(&pattern).map_err(|e| format!("template {text:?}: {e}"))?;
        Ok(Template {
            text: text.to_string(),
            pieces,
            fields,
            reader,
        })
    }

    fn render(&self, parts: &Parts<'_>) -> Result<String, String> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(l) => out.push_str(l),
                // An empty part would write `/:1.4.3` or a dangling `@`.
                Piece::Field(Field::Digest) if parts.digest.is_empty() => {
                    return Err(NO_DIGEST.into());
                }
                Piece::Field(field) if field.of(parts).is_empty() => {
                    return Err(format!(
                        "the template needs {{{}}}, and the current value does not give it",
                        field.name()
                    ));
                }
                Piece::Field(field) => out.push_str(field.of(parts)),
            }
        }
        Ok(out)
    }

    fn read_field<'a>(&self, value: &'a str, field: Field) -> Option<&'a str> {
        self.reader
            .captures(value)?
            .name(field.name())
            .map(|m| m.as_str())
    }

    fn read_tag<'a>(&self, value: &'a str) -> Option<&'a str> {
        self.read_field(value, Field::Tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_are_told_from_tags_and_digests() {
        #[rustfmt::skip]
        let rows = [
            ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:main-102-aaaaaaa", true),
            ("reg.io/acme/app:1.9@sha256:aa", true),
            ("localhost:5000/app:1.0", true),
            ("reg.io/acme/app", true),
            ("nginx:1.25", true),
            ("nginx:125", true),
            ("main-102-aaaaaaa", false),
            ("1.9", false),
            ("1.9@sha256:aa", false),
            ("sha256:0123abcd", false),
            ("", false),
        ];
        for (value, reference) in rows {
            assert_eq!(is_image_reference(value), reference, "{value:?}");
        }
    }

    const PARTS: Parts<'static> = Parts {
        registry: "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        repository: "payments-api",
        tag: "1.4.3",
        digest: "sha256:abc123",
    };

    #[test]
    fn each_format_writes_what_the_docs_say() {
        let cases: &[(&str, &str, &str)] = &[
            // format, current value in the file, written value
            ("tag", "1.4.2", "1.4.3"),
            ("digest", "sha256:old", "sha256:abc123"),
            ("tag@digest", "1.4.2@sha256:old", "1.4.3@sha256:abc123"),
            ("image", "nginx:1.25", "nginx:1.4.3"),
            (
                "image",
                "ghcr.io/acme/payments:1.4.2",
                "ghcr.io/acme/payments:1.4.3",
            ),
            (
                "image",
                "localhost:5000/payments",
                "localhost:5000/payments:1.4.3",
            ),
            (
                "image",
                "localhost:5000/payments:1.4.2",
                "localhost:5000/payments:1.4.3",
            ),
            (
                "image",
                "reg.io/a/b:1.4.2@sha256:old",
                "reg.io/a/b:1.4.3@sha256:abc123",
            ),
            (
                "{registry}/{repository}:{tag}@{digest}",
                "x",
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com/payments-api:1.4.3@sha256:abc123",
            ),
            ("v{tag}", "v1.4.2", "v1.4.3"),
        ];
        for (format, current, expected) in cases {
            let f = Format::parse(format).unwrap();
            assert_eq!(
                f.render(current, &PARTS).unwrap(),
                *expected,
                "{format} on {current}"
            );
        }
    }

    #[test]
    fn the_current_tag_is_read_back_in_every_format() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("tag", "1.4.2", Some("1.4.2")),
            ("digest", "sha256:abc", None),
            ("tag@digest", "1.4.2@sha256:abc", Some("1.4.2")),
            ("image", "ghcr.io/acme/payments:1.4.2", Some("1.4.2")),
            ("image", "localhost:5000/payments", None),
            ("image", "reg.io/a/b:1.4.2@sha256:abc", Some("1.4.2")),
            (
                "{registry}/{repository}:{tag}",
                "r.io/app:2.0.1",
                Some("2.0.1"),
            ),
            ("{registry}/{repository}:{tag}", "something else", None),
        ];
        for (format, current, tag) in cases {
            assert_eq!(
                Format::parse(format).unwrap().current_tag(current),
                *tag,
                "{format} on {current}"
            );
        }
    }

    #[test]
    fn bad_formats_are_refused() {
        for bad in [
            "tags",
            "{tag",
            "{version}",
            "{registry}/{repository}",
            "{tag}-{tag}",
            "a}b{tag}",
        ] {
            assert!(Format::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_digest_format_without_a_digest_is_an_error_not_an_empty_value() {
        let parts = Parts {
            digest: "",
            ..PARTS
        };
        for f in ["digest", "tag@digest", "{tag}@{digest}"] {
            assert!(
                Format::parse(f)
                    .unwrap()
                    .render("1.4.2@sha256:x", &parts)
                    .is_err(),
                "{f}"
            );
        }
        assert!(
            Format::Image
                .render("nginx:1.4.2@sha256:x", &parts)
                .is_err()
        );
    }

    #[test]
    fn an_image_value_pins_a_digest_only_when_it_holds_one() {
        assert!(Format::Image.pins_digest("r.io/app:1.4.3@sha256:aa"));
        assert!(!Format::Image.pins_digest("r.io/app:1.4.3"));
        assert!(Format::TagAtDigest.pins_digest("anything"));
    }

    #[test]
    fn a_template_never_writes_an_empty_registry_or_repository() {
        let parts = Parts {
            registry: "",
            repository: "",
            ..PARTS
        };
        let f = Format::parse("{registry}/{repository}:{tag}").unwrap();
        assert!(f.render("nginx:1.25", &parts).is_err());
    }

    /// Issue 20: 1,600 targets with one template compiled 1,600 regexes
    /// (28 MB at 10,000 apps). A config parses formats through one
    /// `Formats`, so a repeated template is one shared `Template`.
    #[test]
    fn a_repeated_template_is_compiled_once() {
        let mut formats = Formats::default();
        let text = "{registry}/{repository}:{tag}@{digest}";
        let (Format::Template(a), Format::Template(b)) =
            (formats.parse(text).unwrap(), formats.parse(text).unwrap())
        else {
            panic!("a template parses as Format::Template");
        };
        assert!(Arc::ptr_eq(&a, &b), "the second parse compiled again");
        let Format::Template(other) = formats.parse("{repository}:{tag}").unwrap() else {
            panic!("a template parses as Format::Template");
        };
        assert!(!Arc::ptr_eq(&a, &other));
        assert!(formats.parse("{nope}").is_err());
        assert_eq!(
            formats.parse("tag@digest").unwrap().to_string(),
            "tag@digest"
        );
    }
}
