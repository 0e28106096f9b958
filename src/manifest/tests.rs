//! Unit tests of the manifest editor: tables for quoting and plain safety, saphyr facts,
//! path parsing, resolution, locating, the round-trip check and Kustomize insertions.

use saphyr_parser::{Event, Parser};

use super::kustomize::{
    KUSTOMIZE_LIST_STYLE, ListStyle, after_line, column, dash_before, list_style, newline,
};
use super::locate::locate;
use super::path::{KeyPath, Step};
use super::quoting::{plain_is_safe_in, render_in};
use super::roundtrip::{After, Expect, Splice, reparse, reparse_scalar_swap, roundtrip_check};
use super::tree::{BLOCK, Node, Positions, Tree, count_leads, is_lead};
use super::*;

fn kp(s: &str) -> KeyPath {
    KeyPath::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

// ----- plain_is_safe / render tables -----

const UNSAFE_PLAIN: &[&str] = &[
    "1.10",
    "1.0",
    "1e3",
    "1E3",
    "1.5e-3",
    "0x1F",
    "012",
    "0o17",
    "0b101",
    "1_000",
    "1:20",
    "190:20:30",
    "yes",
    "Yes",
    "YES",
    "no",
    "No",
    "on",
    "On",
    "off",
    "OFF",
    "y",
    "Y",
    "n",
    "N",
    "true",
    "True",
    "TRUE",
    "false",
    "FALSE",
    "null",
    "Null",
    "NULL",
    "~",
    "",
    ".inf",
    ".Inf",
    "-.inf",
    "+.INF",
    ".NaN",
    ".nan",
    "-1",
    "+1",
    "12",
    "0",
    ".5",
    "1.",
    " 1.0",
    "1.0 ",
    " lead",
    "trail ",
    "- item",
    "-dash",
    "?q",
    ":c",
    ",c",
    "[a",
    "]a",
    "{a",
    "}a",
    "#c",
    "&a",
    "*a",
    "!t",
    "|b",
    ">f",
    "'q",
    "\"q",
    "%d",
    "@a",
    "`b",
    "a: b",
    "a #b",
    "key:",
    "2001-12-14",
    "2001-1-4",
    "2001-12-14t21:59:43.10-05:00",
    "2001-12-14 21:59:43.10",
    "=",
    "<<",
    "---",
    "...",
    "a\nb",
    "tab\there",
    "bom\u{FEFF}",
    "nel\u{85}",
    "20240115",
    "ls\u{2028}",
    "ctrl\u{7}",
];

const SAFE_PLAIN: &[&str] = &[
    "1.4.3",
    "v1.2.3",
    "latest",
    "main-123-abc1234",
    "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "1.4.3@sha256:abcdef",
    "1.2.3-rc.1",
    "1.2.3+build.5",
    "2024-01-15-abc1234",
    "release_2024",
    "a#b",
    "a:b",
    "x",
    "yes-please",
    "nullable",
    "1e",
    "0xZZ",
    "1.0.0-alpha",
    "café",
    "☃",
    "v0.1",
    "3.2.1-debian-12-r4",
    "_underscore",
    "1:2:x",
];

#[test]
fn unsafe_values_are_not_plain() {
    for v in UNSAFE_PLAIN {
        assert!(!plain_is_safe(v), "{v:?} must not stay plain");
        let r = render(v, Style::Plain);
        assert!(
            r.starts_with('"') && r.ends_with('"'),
            "{v:?} rendered as {r:?}"
        );
    }
    assert!(UNSAFE_PLAIN.len() + SAFE_PLAIN.len() >= 40);
}

#[test]
fn safe_values_stay_plain() {
    for v in SAFE_PLAIN {
        assert!(plain_is_safe(v), "{v:?} should stay plain");
        assert_eq!(render(v, Style::Plain), *v);
    }
}

#[test]
fn flow_context_is_stricter() {
    for v in ["a,b", "a[b", "a]b", "a{b", "a}b", "sha256:abc"] {
        assert!(!plain_is_safe_in(v, true), "{v:?} in flow");
        assert!(render_in(v, Style::Plain, true).starts_with('"'));
    }
    assert!(plain_is_safe_in("1.4.3", true));
}

#[test]
fn render_table() {
    let rows: &[(&str, Style, &str)] = &[
        ("1.4.3", Style::Plain, "1.4.3"),
        ("1.10", Style::Plain, "\"1.10\""),
        ("yes", Style::Plain, "\"yes\""),
        ("", Style::Plain, "\"\""),
        ("1.4.3", Style::SingleQuoted, "'1.4.3'"),
        ("it's", Style::SingleQuoted, "'it''s'"),
        ("''", Style::SingleQuoted, "''''''"),
        ("", Style::SingleQuoted, "''"),
        ("a\nb", Style::SingleQuoted, "\"a\\nb\""),
        ("1.4.3", Style::DoubleQuoted, "\"1.4.3\""),
        ("a\"b", Style::DoubleQuoted, "\"a\\\"b\""),
        ("a\\b", Style::DoubleQuoted, "\"a\\\\b\""),
        ("a\tb", Style::DoubleQuoted, "\"a\\tb\""),
        ("a\u{1}b", Style::DoubleQuoted, "\"a\\x01b\""),
        ("a\u{85}b", Style::DoubleQuoted, "\"a\\Nb\""),
        ("a\u{FEFF}", Style::DoubleQuoted, "\"a\\uFEFF\""),
        ("café ☃", Style::DoubleQuoted, "\"café ☃\""),
        ("x", Style::Literal, "\"x\""),
        ("x", Style::Folded, "\"x\""),
    ];
    for (value, style, want) in rows {
        assert_eq!(render(value, *style), *want, "render({value:?}, {style:?})");
    }
}

/// Every rendered value, in every style, must read back through a real parser as itself.
#[test]
fn rendered_values_read_back() {
    let extra = [
        "it's",
        "a\"b\\c",
        "a\nb",
        "\u{1}\u{7F}\u{9F}",
        "☃ 😀",
        "  x  ",
    ];
    let values = UNSAFE_PLAIN.iter().chain(SAFE_PLAIN).chain(extra.iter());
    for v in values {
        for style in [Style::Plain, Style::SingleQuoted, Style::DoubleQuoted] {
            let doc = format!("k: {}\n", render(v, style));
            let scalar = get(doc.as_bytes(), &kp("k"), &Document::Any);
            let scalar = scalar.unwrap_or_else(|e| panic!("{doc:?}: {e}"));
            assert_eq!(scalar.value, *v, "{doc:?}");
            let flow = format!("k: [{}]\n", render_in(v, style, true));
            assert_eq!(
                get(flow.as_bytes(), &kp("k[0]"), &Document::Any)
                    .unwrap()
                    .value,
                *v
            );
        }
    }
}

// ----- KeyPath -----

#[test]
fn key_paths_parse() {
    let ok: &[(&str, Vec<Step>)] = &[
        (
            "image.tag",
            vec![Step::Key("image".into()), Step::Key("tag".into())],
        ),
        ("tag", vec![Step::Key("tag".into())]),
        (
            "sidecars[0].image",
            vec![
                Step::Key("sidecars".into()),
                Step::Index(0),
                Step::Key("image".into()),
            ],
        ),
        (
            "spec.containers[name=web].image",
            vec![
                Step::Key("spec".into()),
                Step::Key("containers".into()),
                Step::Select {
                    field: "name".into(),
                    value: "web".into(),
                },
                Step::Key("image".into()),
            ],
        ),
        (
            "annotations.\"app.kubernetes.io/version\"",
            vec![
                Step::Key("annotations".into()),
                Step::Key("app.kubernetes.io/version".into()),
            ],
        ),
        (
            "images[name=\"a.b]c\"].newTag",
            vec![
                Step::Key("images".into()),
                Step::Select {
                    field: "name".into(),
                    value: "a.b]c".into(),
                },
                Step::Key("newTag".into()),
            ],
        ),
        ("[0].image", vec![Step::Index(0), Step::Key("image".into())]),
        (
            "m[1][2]",
            vec![Step::Key("m".into()), Step::Index(1), Step::Index(2)],
        ),
        ("\"\"", vec![Step::Key(String::new())]),
        ("\"q\\\"x\\\\\"", vec![Step::Key("q\"x\\".into())]),
        (
            "a[k=v=w]",
            vec![
                Step::Key("a".into()),
                Step::Select {
                    field: "k".into(),
                    value: "v=w".into(),
                },
            ],
        ),
        (
            "my key.x",
            vec![Step::Key("my key".into()), Step::Key("x".into())],
        ),
    ];
    for (text, steps) in ok {
        let p = kp(text);
        assert_eq!(&p.steps, steps, "{text}");
        assert_eq!(p.to_string(), *text);
        assert_eq!(text.parse::<KeyPath>().unwrap(), p);
    }
}

#[test]
fn bad_key_paths_are_rejected() {
    let bad = [
        "",
        ".",
        "a.",
        ".a",
        "a..b",
        "a[",
        "a[]",
        "a[-1]",
        "a[x]",
        "a[=v]",
        "a[k=]",
        "a]",
        "a\"b\"",
        "\"open",
        "a.[0]",
        "a[0]b",
        " a",
        "a ",
        "a[99999999999999999999999]",
        "a[k=\"v\"x]",
        "\"a\\n\"",
        "a[0",
        "a\tb",
    ];
    for text in bad {
        let err = KeyPath::parse(text).expect_err(text);
        assert_eq!(err.input, text);
        assert!(err.to_string().starts_with("invalid key path"), "{err}");
    }
}

// ----- saphyr-parser facts this module depends on -----

fn first_scalar_span(src: &str, wanted: &str) -> (usize, usize) {
    let mut p = Parser::new_from_str(src);
    while let Some(Ok((ev, span))) = p.next_event() {
        if let Event::Scalar(v, ..) = ev
            && v == wanted
        {
            return (span.start.index(), span.end.index());
        }
    }
    panic!("no scalar {wanted:?}");
}

#[test]
fn saphyr_indices_are_characters() {
    let src = "\u{FEFF}# café ☃ 😀\nimage:\n  tag: 1.0.0\n";
    let (start, end) = first_scalar_span(src, "1.0.0");
    let byte = src.find("1.0.0").unwrap();
    // The BOM, é, ☃ and 😀 are 1 character each but 3, 2, 3 and 4 bytes.
    assert_eq!(start, byte - 2 - 1 - 2 - 3);
    assert_eq!(end - start, 5);
    let map = Positions::new(src);
    assert_eq!(map.byte(start), Some(byte));
    assert_eq!(map.byte(src.chars().count()), Some(src.len()));
    assert_eq!(map.byte(src.chars().count() + 1), None);
    // Backwards after forwards restarts from the beginning.
    assert_eq!(map.byte(0), Some(0));
    assert_eq!(map.byte(start), Some(byte));
}

#[test]
fn saphyr_quoted_spans_include_quotes_and_may_overrun() {
    let src = "a: 'x'\nb: \"y\"   # note\n";
    let (s, e) = first_scalar_span(src, "x");
    assert_eq!(&src[s..e], "'x'");
    let (s, e) = first_scalar_span(src, "y");
    // The span runs over the blanks and the comment after the closing quote.
    assert_eq!(&src[s..e], "\"y\"   # note");
    let target = locate(src, &Tree::parse(src).unwrap(), &kp("b"), &Document::Any).unwrap();
    assert_eq!(&src[target.scalar.byte_range], "\"y\"");
}

#[test]
fn saphyr_spans_start_at_properties() {
    let src = "a: &t !!str 1.0\n";
    let (s, _) = first_scalar_span(src, "1.0");
    assert_eq!(&src[s..s + 2], "&t");
    let got = get(src.as_bytes(), &kp("a"), &Document::Any).unwrap();
    assert_eq!(&src[got.byte_range.clone()], "1.0");
}

#[test]
fn count_leads_matches_chars() {
    let s = "aé☃😀".repeat(BLOCK / 10 + 1);
    for len in [0, 1, 7, 8, 9, 63, 64, 65, BLOCK - 1, BLOCK] {
        let block = &s.as_bytes()[..len];
        let want = block.iter().filter(|&&b| is_lead(b)).count();
        assert_eq!(count_leads(block), want, "{len}");
    }
    // All continuation bytes: every lane of the sum reaches its maximum.
    assert_eq!(count_leads(&[0x80; BLOCK]), 0);
    assert_eq!(count_leads(&[b'a'; BLOCK]), BLOCK);
}

#[test]
fn positions_skip_blocks_and_go_back() {
    // Characters of 1 to 4 bytes, so that block boundaries fall inside characters.
    let src: String = (0..5000)
        .map(|i| match i % 11 {
            0 => 'é',
            3 => '☃',
            7 => '😀',
            _ => 'a',
        })
        .collect();
    let all: Vec<usize> = src.char_indices().map(|(b, _)| b).collect();
    let map = Positions::new(&src);
    for (ci, &bi) in all.iter().enumerate() {
        assert_eq!(map.byte(ci), Some(bi));
    }
    assert_eq!(map.byte(all.len()), Some(src.len()));
    assert_eq!(map.byte(all.len() + 1), None);
    // Out of order, with jumps of more than a block in both directions.
    let fresh = Positions::new(&src);
    for ci in [4500, 3, 4999, 0, 1024, 1025, 1023, 3000, 2999, 5000] {
        let want = all.get(ci).copied().unwrap_or(src.len());
        assert_eq!(fresh.byte(ci), Some(want), "char {ci}");
    }
}

// ----- behaviour details -----

#[test]
fn get_reports_value_range_line_style() {
    let src = "# c\nimage:\n  repository: x\n  tag: \"1.0\" # pinned\n";
    let s = get(src.as_bytes(), &kp("image.tag"), &Document::Any).unwrap();
    assert_eq!(s.value, "1.0");
    assert_eq!(s.line, 4);
    assert_eq!(s.style, Style::DoubleQuoted);
    assert_eq!(&src[s.byte_range], "\"1.0\"");
}

#[test]
fn anchored_scalar_on_later_line_reports_scalar_line() {
    let src = "a: &x\n  # why\n  1.0.0\n";
    let s = get(src.as_bytes(), &kp("a"), &Document::Any).unwrap();
    assert_eq!(s.line, 3);
    let out = set(src.as_bytes(), &kp("a"), &Document::Any, "2.0.0")
        .unwrap()
        .unwrap();
    assert_eq!(out, b"a: &x\n  # why\n  2.0.0\n");
}

#[test]
fn multi_line_plain_is_replaced_whole() {
    let src = "a: foo\n  bar\nb: 1\n";
    let out = set(src.as_bytes(), &kp("a"), &Document::Any, "v2")
        .unwrap()
        .unwrap();
    assert_eq!(out, b"a: v2\nb: 1\n");
}

#[test]
fn same_value_is_no_change() {
    let src = b"image:\n  tag: '1.0'\n";
    assert_eq!(
        set(src, &kp("image.tag"), &Document::Any, "1.0").unwrap(),
        None
    );
}

#[test]
fn error_messages_read_well() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "image:\n  repo: x\n",
            "image.tag",
            "path not found (no key \"tag\" under \"image\" at line 2)",
        ),
        (
            "image:\n  tag: 1\n  tag: 2\n",
            "image.tag",
            "matches 2 places (lines 2 and 3)",
        ),
        (
            "image:\n  tag:\n    x: 1\n",
            "image.tag",
            "is a mapping, not a scalar (line 3)",
        ),
        (
            "a: &r 1\nimage:\n  tag: *r\n",
            "image.tag",
            "is an alias (*r) at line 3; editing it would change every user of the anchor",
        ),
        ("a: [1\n", "a", "not valid YAML: "),
        ("a: |\n  x\n", "a", "is a | block scalar (line 2)"),
        ("a:\n", "a", "has no value"),
        (
            "a: &r 1\nb: *r\n",
            "a",
            "carries anchor &r (line 1), which is used by 1 alias(es) (*r) at line(s) 2",
        ),
        (
            "l: [1]\n",
            "l[3]",
            "\"l\" has 1 item(s); index [3] is out of range",
        ),
        (
            "a: 1\n---\na: 2\n",
            "a",
            "matches 2 places (document 0 line 1, document 1 line 3); use document = N to pick one",
        ),
    ];
    for (src, path, want) in cases {
        let err = get(src.as_bytes(), &kp(path), &Document::Any).expect_err(src);
        assert!(
            err.to_string().contains(want),
            "{src:?}: {err} (wanted {want:?})"
        );
    }
    let err = get(&[b'a', b':', b' ', 0xff], &kp("a"), &Document::Any).unwrap_err();
    assert_eq!(
        err.to_string(),
        "file is not UTF-8 (invalid byte at offset 3)"
    );
    let big = vec![b'#'; MAX_FILE_BYTES + 1];
    let err = get(&big, &kp("a"), &Document::Any).unwrap_err();
    assert_eq!(
        err.to_string(),
        "file is 10485761 bytes; the limit is 10485760"
    );
    assert_eq!(err.kind(), "too_large");
}

#[test]
fn anchored_collection_used_by_alias_is_refused() {
    let src = "base: &b\n  image:\n    tag: 1\nother: *b\n";
    let err = set(src.as_bytes(), &kp("base.image.tag"), &Document::Any, "2").unwrap_err();
    assert_eq!(err.kind(), "anchored", "{err}");
    // An anchor nobody uses is harmless.
    let src = "base: &b\n  image:\n    tag: 1\n";
    let out = set(src.as_bytes(), &kp("base.image.tag"), &Document::Any, "v2").unwrap();
    assert_eq!(out.unwrap(), b"base: &b\n  image:\n    tag: v2\n");
}

#[test]
fn merge_key_values_are_not_found_with_a_hint() {
    let src = "base: &b\n  tag: 1\nother:\n  <<: *b\n";
    let err = get(src.as_bytes(), &kp("other.tag"), &Document::Any).unwrap_err();
    assert_eq!(err.kind(), "not_found");
    assert!(err.to_string().contains("merge key"), "{err}");
}

#[test]
fn document_index_out_of_range() {
    let err = get(b"a: 1\n", &kp("a"), &Document::Index(3)).unwrap_err();
    assert_eq!(err.kind(), "not_found");
    assert!(err.to_string().contains("no document 3"), "{err}");
    let err = get(b"", &kp("a"), &Document::Any).unwrap_err();
    assert_eq!(err.kind(), "not_found");
}

#[test]
fn roundtrip_refuses_structure_changes() {
    // Simulate a rendering bug: a Target whose range is wrong must be caught by the check.
    let src = "a: x\nb: y\n";
    let check = |out: &str, value: &str| {
        let tree = Tree::parse(src).unwrap();
        let target = locate(src, &tree, &kp("a"), &Document::Any).unwrap();
        roundtrip_check(tree, &target, out, &kp("a"), &Document::Any, value)
    };
    // The stream is compared as it is parsed, so a mismatch may be found before the error.
    let err = check("a: x\nb: [y\n", "x").unwrap_err();
    assert_eq!(err.kind(), "roundtrip");
    let err = check("a: z\nb: y\n]\n", "z").unwrap_err();
    assert!(err.to_string().contains("does not parse"), "{err}");
    let err = check("a: z\nb: q\n", "z").unwrap_err();
    assert!(err.to_string().contains("\"q\""), "{err}");
    let err = check("a: z\nb: y\nc: 1\n", "z").unwrap_err();
    assert!(err.to_string().contains("changed the document"), "{err}");
    let err = check("a: 'z'\nb: y\n", "z").unwrap_err();
    assert!(err.to_string().contains("SingleQuoted"), "{err}");
    let err = check("a:\n- z\nb: y\n", "z").unwrap_err();
    assert_eq!(err.kind(), "roundtrip");
    check("a: z\nb: y\n", "z").unwrap();
    // The tree becomes the edited file's: positions after the edit move.
    let mut tree = Tree::parse(src).unwrap();
    let target = locate(src, &tree, &kp("a"), &Document::Any).unwrap();
    let out = "a: longer\nb: y\n";
    let inserted = [Expect::Scalar {
        value: "longer",
        style: Style::Plain,
        like: Some(target.event_index),
    }];
    let splice = Splice {
        at: target.event_index,
        removed: 1,
        inserted: &inserted,
    };
    reparse(&mut tree, out, &splice, After::Patch).unwrap();
    let b = locate(out, &tree, &kp("b"), &Document::Any).unwrap();
    assert_eq!(&out[b.scalar.byte_range], "y");
}

/// The patched tree `set` re-reads the path in must be exactly the tree of the edited file.
#[test]
fn patched_tree_is_the_edited_files_tree() {
    let cases: &[(&str, &str, &str)] = &[
        ("a: x\nb: [y, z]\n", "a", "longer-value"),
        (
            "# é ☃\nimage:\n  tag: &t !!str '1.0'  # c\n  r: *t\nz: \"é\"\n",
            "z",
            "1.10",
        ),
        ("a: foo\n  bar\n\n  baz\nb: {c: d}\n---\nc: 1\n", "a", "v"),
        (
            "\u{feff}x:\r\n- k: 1\r\n- k: 2\r\n  j: v\r\n",
            "x[k=2].j",
            "☃ w",
        ),
    ];
    for (src, path, value) in cases {
        let tree = Tree::parse(src).unwrap();
        let target = locate(src, &tree, &kp(path), &Document::Any).unwrap();
        let out = String::from_utf8(
            set(src.as_bytes(), &kp(path), &Document::Any, value)
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        let mut patched = tree;
        reparse_scalar_swap(&mut patched, &out, &target, value).unwrap();
        let fresh = Tree::parse(&out).unwrap();
        assert_eq!(patched.nodes.len(), fresh.nodes.len());
        for (p, f) in patched.nodes.iter().zip(&fresh.nodes) {
            let key = |t: &Tree, n: &Node| {
                let value = t.value(n).to_string();
                let tag = t.tag(n).cloned();
                (
                    n.kind,
                    n.has_props,
                    n.start,
                    n.end,
                    n.line,
                    n.anchor,
                    n.close,
                    value,
                    tag,
                )
            };
            assert_eq!(key(&patched, p), key(&fresh, f), "{src:?}");
        }
        assert_eq!(patched.docs, fresh.docs);
        assert_eq!(patched.aliases, fresh.aliases);
    }
}

#[test]
fn layout_helpers() {
    assert_eq!(newline("a: 1\r\nb: 2\n"), "\r\n");
    assert_eq!(newline("a: 1\nb: 2\r\n"), "\n");
    assert_eq!(newline("a: 1\rb: 2"), "\r");
    assert_eq!(newline("a: 1"), "\n");
    let text = "\u{feff}k:\n  - é: 1\n-   x\n - \n";
    assert_eq!(column(text, text.find('k').unwrap()), 0);
    assert_eq!(column(text, text.find('é').unwrap()), 4);
    let at = |s: &str| text.find(s).unwrap();
    assert_eq!(dash_before(text, at("é")), Some((at("- é"), true)));
    assert_eq!(dash_before(text, at("x")), Some((at("-   x"), true)));
    assert_eq!(dash_before(text, at("k")), None);
    assert_eq!(dash_before("-\n  a", 4), Some((0, false)));
    assert_eq!(dash_before("a-  b", 4), None);
    assert_eq!(after_line("a: 1 # c\r\nb", 4), (10, false));
    assert_eq!(after_line("a: 1 # c", 4), (8, true));
    let style = |src: &str| {
        let tree = Tree::parse(src).unwrap();
        let root = tree.docs[0].unwrap();
        list_style(src, &Positions::new(src), &tree, root).unwrap()
    };
    assert_eq!(style("a: 1\n"), KUSTOMIZE_LIST_STYLE);
    assert_eq!(
        style("a: [1]\nb:\n  - 1\n"),
        ListStyle { indent: 2, gap: 2 }
    );
    assert_eq!(style("b:\n- x: 1\n"), ListStyle { indent: 0, gap: 2 });
    assert_eq!(style("b:\n    -   x: 1\n"), ListStyle { indent: 4, gap: 4 });
    assert_eq!(style("- a\n"), KUSTOMIZE_LIST_STYLE);
}

#[test]
fn deep_nesting_does_not_overflow() {
    // saphyr refuses very deep nesting itself; that must surface as an error, not a crash.
    let depth = 200_000;
    let src = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let err = get(src.as_bytes(), &kp("a"), &Document::Any).unwrap_err();
    assert_eq!(err.kind(), "invalid_yaml");
    let depth = 200;
    let src = format!("a: {}1{}\n", "[".repeat(depth), "]".repeat(depth));
    let path = format!("a{}", "[0]".repeat(depth));
    let s = get(src.as_bytes(), &kp(&path), &Document::Any).unwrap();
    assert_eq!(s.value, "1");
}
