//! A strict `.env` parser: `KEY=VALUE` lines, `#` comments, optional `export `, single or double quotes.

use crate::ConfigError;

/// One `KEY=VALUE` pair in file order.
pub(crate) type Entries = Vec<(String, String)>;

/// Parses the text of one `.env` file; `origin` names the file in errors.
pub(crate) fn parse(text: &str, origin: &str) -> Result<Entries, ConfigError> {
    let mut entries = Entries::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let bad = |reason: &str| ConfigError::new(format!("{origin}:{line_no}"), reason.to_owned());
        let Some((key, value)) = line.split_once('=') else {
            return Err(bad("expected KEY=VALUE"));
        };
        let key = key.trim();
        if !is_valid_key(key) {
            return Err(bad("a key is upper-case letters, digits and underscores, not starting with a digit"));
        }
        let value = parse_value(value.trim()).map_err(bad)?;
        entries.push((key.to_owned(), value));
    }
    Ok(entries)
}

fn is_valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn parse_value(value: &str) -> Result<String, &'static str> {
    if let Some(rest) = value.strip_prefix('"') {
        let end = rest.rfind('"').ok_or("unterminated double quote")?;
        let trailing = rest[end + 1..].trim();
        if !(trailing.is_empty() || trailing.starts_with('#')) {
            return Err("unexpected text after the closing quote");
        }
        let mut out = String::with_capacity(end);
        let mut chars = rest[..end].chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    Some('$') => out.push_str("$$"),
                    _ => return Err("unknown escape in double quotes (use \\n, \\\", \\\\ or \\$)"),
                }
            } else {
                out.push(c);
            }
        }
        return Ok(out);
    }
    if let Some(rest) = value.strip_prefix('\'') {
        let end = rest.rfind('\'').ok_or("unterminated single quote")?;
        let trailing = rest[end + 1..].trim();
        if !(trailing.is_empty() || trailing.starts_with('#')) {
            return Err("unexpected text after the closing quote");
        }
        // Single quotes are literal: no substitution either, so `$` is escaped for the loader.
        return Ok(rest[..end].replace('$', "$$"));
    }
    // Unquoted: an inline comment starts at " #".
    let value = match value.find(" #") {
        Some(pos) => value[..pos].trim_end(),
        None => value,
    };
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> (String, String) {
        let mut entries = parse(text, "t.env").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(entries.len(), 1);
        entries.remove(0)
    }

    #[test]
    fn skips_comments_and_blank_lines() {
        let entries = parse("# c\n\nA=1\n  # indented\nB=2\n", "t.env").unwrap_or_default();
        assert_eq!(entries, vec![("A".into(), "1".into()), ("B".into(), "2".into())]);
    }

    #[test]
    fn strips_export_and_inline_comments() {
        assert_eq!(one("export A=hello # world"), ("A".into(), "hello".into()));
        assert_eq!(one("A=a#b"), ("A".into(), "a#b".into()), "a # without a space before is data");
    }

    #[test]
    fn double_quotes_keep_spaces_and_escapes() {
        assert_eq!(one(r#"A="x y \"z\"\n" # c"#).1, "x y \"z\"\n");
    }

    #[test]
    fn single_quotes_are_literal() {
        assert_eq!(one("A='${B} x'").1, "$${B} x");
    }

    #[test]
    fn empty_value_is_allowed() {
        assert_eq!(one("A=").1, "");
    }

    #[test]
    fn rejects_malformed_lines_with_the_line_number() {
        let err = parse("A=1\nnot a pair\n", "base.env").err();
        assert_eq!(err.map(|e| e.key), Some("base.env:2".to_owned()));
        assert!(parse("lower=1", "t.env").is_err());
        assert!(parse("1A=1", "t.env").is_err());
        assert!(parse("A=\"open", "t.env").is_err());
        assert!(parse("A=\"x\" trailing", "t.env").is_err());
    }
}
