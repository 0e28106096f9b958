//! Rendering a value as YAML scalar text in a given style, and deciding when a plain
//! (unquoted) scalar is safe: one that YAML 1.1 and 1.2 readers alike read back as the same
//! string, never as a number, boolean, null, timestamp or structure.

use super::Style;

/// The style `render_in` will produce for `value` replacing a scalar of style `style`.
pub(super) fn rendered_style(value: &str, style: Style, in_flow: bool) -> Style {
    match style {
        Style::Plain if plain_is_safe_in(value, in_flow) => Style::Plain,
        Style::SingleQuoted if single_quotable(value) => Style::SingleQuoted,
        _ => Style::DoubleQuoted,
    }
}

pub(super) fn render_in(value: &str, style: Style, in_flow: bool) -> String {
    match rendered_style(value, style, in_flow) {
        Style::Plain => value.to_string(),
        Style::SingleQuoted => format!("'{}'", value.replace('\'', "''")),
        _ => double_quote(value),
    }
}

/// Characters YAML allows unescaped in a document (c-printable), minus line breaks and the BOM.
/// YAML 1.1 parsers also treat NEL, LS and PS as line breaks, so those are excluded too.
fn is_inline_printable(c: char) -> bool {
    matches!(c, '\t' | '\u{20}'..='\u{7E}' | '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
        && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{FEFF}')
}

/// Single quotes can express any printable, single-line text.
fn single_quotable(value: &str) -> bool {
    value.chars().all(is_inline_printable)
}

fn double_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if is_inline_printable(c) => out.push(c),
            c if (c as u32) <= 0xFF => out.push_str(&format!("\\x{:02X}", c as u32)),
            c if (c as u32) <= 0xFFFF => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push_str(&format!("\\U{:08X}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Whether `value` can be written unquoted and read back as the same string, in block context
/// or (when `in_flow`) inside a flow collection.
pub(super) fn plain_is_safe_in(value: &str, in_flow: bool) -> bool {
    let Some(first) = value.chars().next() else {
        return false; // empty is null
    };
    if !value.chars().all(|c| is_inline_printable(c) && c != '\t') {
        return false;
    }
    if first == ' ' || value.ends_with(' ') {
        return false;
    }
    // Indicators cannot start a plain scalar (`-`, `?`, `:` can when followed by a non-space,
    // but YAML 1.1 parsers disagree on the details, so they are refused too).
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        return false;
    }
    // `: ` starts a mapping value, ` #` a comment; a trailing `:` makes the value a key.
    if value.contains(": ") || value.contains(" #") || value.ends_with(':') {
        return false;
    }
    // In flow context `,[]{}` end the scalar; older YAML 1.1 parsers also reject any `:`.
    if in_flow && value.contains([',', '[', ']', '{', '}', ':']) {
        return false;
    }
    // Document markers.
    if value.starts_with("---") || value.starts_with("...") {
        return false;
    }
    !resolves_to_non_string(value)
}

/// Whether a plain scalar would resolve to something other than a string under YAML 1.1
/// (as implemented by PyYAML and go-yaml v2) or the YAML 1.2 core schema. Errs towards "yes".
fn resolves_to_non_string(v: &str) -> bool {
    const WORDS: [&str; 12] = [
        "y", "n", "yes", "no", "true", "false", "on", "off", "null", "~", "=", "<<",
    ];
    if WORDS.iter().any(|w| w.eq_ignore_ascii_case(v)) {
        return true;
    }
    let unsigned = v.strip_prefix(['-', '+']).unwrap_or(v);
    is_special_float(unsigned)
        || is_prefixed_int(unsigned)
        || is_decimal_number(unsigned)
        || is_sexagesimal(unsigned)
        || is_timestamp(v)
}

/// `.inf`, `.nan` in any case (1.2 core allows three spellings; be generous).
fn is_special_float(v: &str) -> bool {
    v.eq_ignore_ascii_case(".inf") || v.eq_ignore_ascii_case(".nan")
}

/// `0x1F`, `0o17`, `0b101` (1.1 allows `_` inside; so does Go's ParseInt with base 0).
fn is_prefixed_int(v: &str) -> bool {
    let (digits, ok): (&str, fn(char) -> bool) = if let Some(d) = v.strip_prefix("0x") {
        (d, |c| c.is_ascii_hexdigit() || c == '_')
    } else if let Some(d) = v.strip_prefix("0o") {
        (d, |c| matches!(c, '0'..='7' | '_'))
    } else if let Some(d) = v.strip_prefix("0b") {
        (d, |c| matches!(c, '0' | '1' | '_'))
    } else {
        return false;
    };
    !digits.is_empty() && digits.chars().all(ok)
}

/// Integers and floats without a base prefix: `12`, `012`, `1_000`, `1.10`, `1.`, `.5`, `1e3`,
/// `1.5E-3`. Digits may contain `_` (YAML 1.1). At most one `.`, so `1.4.3` is a string.
fn is_decimal_number(v: &str) -> bool {
    let (mantissa, exponent) = match v.find(['e', 'E']) {
        Some(i) => (&v[..i], Some(&v[i + 1..])),
        None => (v, None),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit() || c == '_');
    let has_digit = int_part.chars().any(|c| c.is_ascii_digit())
        || frac_part.is_some_and(|f| f.chars().any(|c| c.is_ascii_digit()));
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    has_digit && digits(int_part) && frac_part.is_none_or(digits) && exponent_ok
}

/// YAML 1.1 base-60 numbers: `1:20`, `190:20:30`, `1:20.5`.
fn is_sexagesimal(v: &str) -> bool {
    let (whole, frac) = match v.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (v, None),
    };
    let parts: Vec<&str> = whole.split(':').collect();
    parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit() || c == '_'))
        && frac.is_none_or(|f| f.chars().all(|c| c.is_ascii_digit() || c == '_'))
}

/// YAML 1.1 timestamps: `2001-12-14`, `2001-12-14t21:59:43.10-05:00`, `2001-12-14 21:59:43`.
/// A date followed by anything that could start a time counts, to stay on the safe side.
fn is_timestamp(v: &str) -> bool {
    let b = v.as_bytes();
    let digits = |from: usize, min: usize, max: usize| -> Option<usize> {
        let n = b
            .get(from..)?
            .iter()
            .take(max)
            .take_while(|c| c.is_ascii_digit())
            .count();
        (n >= min).then_some(from + n)
    };
    let date_end = (|| {
        let i = digits(0, 4, 4)?;
        (b.get(i) == Some(&b'-')).then_some(())?;
        let i = digits(i + 1, 1, 2)?;
        (b.get(i) == Some(&b'-')).then_some(())?;
        digits(i + 1, 1, 2)
    })();
    match date_end {
        None => false,
        Some(end) if end == b.len() => true,
        Some(end) => {
            matches!(b.get(end), Some(b'T' | b't' | b' ' | b'\t'))
                && b.get(end + 1..)
                    .is_some_and(|rest| rest.first().is_some_and(u8::is_ascii_digit))
        }
    }
}
