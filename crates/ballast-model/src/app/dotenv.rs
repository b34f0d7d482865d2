//! The `KEY=value` files of an App's `envFile` (docker compose's `env_file` format) and the
//! `${VAR:-default}` substitution they and compose files share.
//!
//! The format follows compose-go's `dotenv` parser, so a file compose reads gives the same
//! variables here: `#` comments, blank lines, an optional `export ` prefix, `KEY=value` or
//! `KEY: value`, unquoted values cut at ` #` and trimmed, `'single'` quotes taken literally,
//! `"double"` quotes with `\n`, `\t`, `\"`, `\\`, `\$` escapes, both quotes spanning lines, and
//! `$VAR`, `${VAR}`, `${VAR:-default}` (and `-`, `:?`, `?`, `:+`, `+`) substituted in unquoted
//! and double-quoted values, `$$` for a literal `$`.
//!
//! Where compose falls back on the environment of the process that runs it, the caller decides
//! through `lookup`: an App's env file sees only the variables defined above in the same file
//! (the result must not depend on the shell `ballast apply` runs in), so a line `KEY` alone or a
//! reference to an undefined variable is an error at its line and column; `ballast import
//! compose` passes the shell's environment and the project's `.env`, as compose does.

/// A problem in an env file or a template, at a 1-based line and column of its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct DotenvError {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

/// What a substitution does with a variable that is not defined.
pub trait Lookup {
    /// The value of `name`, if defined.
    fn get(&self, name: &str) -> Option<String>;
    /// Whether an undefined `$NAME` (with no default) is an error rather than empty text.
    fn strict(&self) -> bool;
}

/// Only the variables defined earlier in the same file; anything else is an error.
struct Earlier<'a>(&'a [(String, String)]);

impl Lookup for Earlier<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
    fn strict(&self) -> bool {
        true
    }
}

/// Earlier variables of the file first, then the caller's lookup (compose-go's order for
/// `.env`: the process environment, then the file).
struct Chained<'a> {
    earlier: &'a [(String, String)],
    outer: &'a dyn Lookup,
}

impl Lookup for Chained<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.outer
            .get(name)
            .or_else(|| Earlier(self.earlier).get(name))
    }
    fn strict(&self) -> bool {
        self.outer.strict()
    }
}

/// Parses an env file in which values may refer only to variables defined above them.
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, DotenvError> {
    parse(text, None)
}

/// Parses an env file whose values may also refer to `outer`'s variables (compose's `.env` and
/// `env_file` as `ballast import compose` reads them). A line `KEY` alone takes `outer`'s value,
/// and is left out when it has none, as compose does.
pub fn parse_env_file_with(
    text: &str,
    outer: &dyn Lookup,
) -> Result<Vec<(String, String)>, DotenvError> {
    parse(text, Some(outer))
}

/// Position bookkeeping over the text: byte offset to line and column.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn at(&self, offset: usize) -> (u64, u64) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() as u64 + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u64 + 1;
        (line, column)
    }
    fn error(&self, offset: usize, message: impl Into<String>) -> DotenvError {
        let (line, column) = self.at(offset);
        DotenvError {
            line,
            column,
            message: message.into(),
        }
    }
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }
}

fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}'
    )
}

fn parse(text: &str, outer: Option<&dyn Lookup>) -> Result<Vec<(String, String)>, DotenvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out: Vec<(String, String)> = Vec::new();
    let mut cur = Cursor { text, pos: 0 };
    loop {
        // Skip blank space and comment lines.
        let rest = cur.rest();
        let Some(start) = rest.find(|c: char| !c.is_whitespace()) else {
            break;
        };
        cur.pos += start;
        if cur.rest().starts_with('#') {
            match cur.rest().find('\n') {
                Some(end) => {
                    cur.pos += end;
                    continue;
                }
                None => break,
            }
        }
        let key_start = cur.pos;
        let mut line = cur.rest();
        if let Some(after) = line.strip_prefix("export")
            && after.starts_with(is_space)
        {
            let skipped = line.len() - after.trim_start_matches(is_space).len();
            cur.pos += skipped;
            line = cur.rest();
        }
        // The key runs to `=`, `:` or the end of the line (a key alone).
        let mut end = None;
        for (i, c) in line.char_indices() {
            match c {
                '=' | ':' | '\n' => {
                    end = Some((i, c));
                    break;
                }
                '_' | '.' | '-' | '[' | ']' => {}
                c if c.is_alphanumeric() || is_space(c) => {}
                other => {
                    return Err(cur.error(
                        cur.pos + i,
                        format!(
                            "unexpected character `{other}` in a variable name; expected KEY=value"
                        ),
                    ));
                }
            }
        }
        let (key_end, sep) = end.unwrap_or((line.len(), '\n'));
        let key = line[..key_end].trim_end_matches(is_space).to_string();
        if key.contains(char::is_whitespace) {
            return Err(cur.error(key_start, "a variable name cannot contain a space"));
        }
        if sep == '\n' {
            // `KEY` alone: the value comes from outside the file.
            cur.pos += key_end;
            match outer {
                Some(outer) => {
                    if let Some(value) = outer.get(&key) {
                        out.push((key, value));
                    }
                }
                None => {
                    return Err(cur.error(
                        key_start,
                        format!(
                            "`{key}` has no value; an App's env file takes no variable from the environment ballast runs in (write {key}=VALUE)"
                        ),
                    ));
                }
            }
            continue;
        }
        cur.pos += key_end + 1;
        let skip = cur.rest().len() - cur.rest().trim_start_matches(is_space).len();
        cur.pos += skip;
        let value = read_value(&mut cur, &out, outer)?;
        out.push((key, value));
    }
    Ok(out)
}

fn read_value(
    cur: &mut Cursor<'_>,
    earlier: &[(String, String)],
    outer: Option<&dyn Lookup>,
) -> Result<String, DotenvError> {
    let start = cur.pos;
    let rest = cur.rest();
    let quote = match rest.chars().next() {
        Some(q @ ('"' | '\'')) => q,
        _ => {
            let line_end = rest.find('\n').unwrap_or(rest.len());
            let raw = &rest[..line_end];
            let raw = raw.split(" #").next().unwrap_or_default();
            let raw = raw.trim_end_matches(char::is_whitespace);
            cur.pos += line_end;
            return expand(raw, cur, start, earlier, outer);
        }
    };
    let mut chars = String::new();
    let mut escaped = false;
    for (i, c) in rest.char_indices().skip(1) {
        if c != quote {
            if !escaped && c == '\\' {
                escaped = true;
                continue;
            }
            if escaped {
                escaped = false;
                chars.push('\\');
            }
            chars.push(c);
            continue;
        }
        if escaped {
            escaped = false;
            chars.push(c);
            continue;
        }
        cur.pos += i + c.len_utf8();
        if quote == '"' {
            return expand(&unescape(&chars), cur, start, earlier, outer);
        }
        return Ok(chars);
    }
    Err(cur.error(
        start,
        format!("the value opened with {quote} is never closed"),
    ))
}

/// Go's escapes that compose-go honours in double quotes; `\$` stays a literal `$`.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some(e @ ('a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '"' | '\\')) => {
                chars.next();
                out.push(match e {
                    'a' => '\u{7}',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'v' => '\u{b}',
                    other => other,
                });
            }
            Some('$') => {
                chars.next();
                out.push_str("$$");
            }
            _ => out.push('\\'),
        }
    }
    out
}

fn expand(
    raw: &str,
    cur: &Cursor<'_>,
    start: usize,
    earlier: &[(String, String)],
    outer: Option<&dyn Lookup>,
) -> Result<String, DotenvError> {
    let result = match outer {
        Some(outer) => substitute(raw, &Chained { earlier, outer }),
        None => substitute(raw, &Earlier(earlier)),
    };
    result.map_err(|e| {
        let (line, column) = cur.at(start);
        DotenvError {
            line,
            column: column + e.column - 1,
            message: e.message,
        }
    })
}

/// Substitutes `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`,
/// `${VAR?message}`, `${VAR:+other}`, `${VAR+other}` (defaults may hold substitutions
/// themselves) and `$$` in `template`, the compose specification's interpolation. The error's
/// line is 1 and its column is the `$`'s in `template`.
pub fn substitute(template: &str, lookup: &dyn Lookup) -> Result<String, DotenvError> {
    let mut out = String::with_capacity(template.len());
    let bytes = template.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let Some(offset) = template[i..].find('$') else {
            out.push_str(&template[i..]);
            break;
        };
        out.push_str(&template[i..i + offset]);
        let at = i + offset;
        let col = template[..at].chars().count() as u64 + 1;
        let fail = |message: String| DotenvError {
            line: 1,
            column: col,
            message,
        };
        let next = template[at + 1..].chars().next();
        match next {
            Some('$') => {
                out.push('$');
                i = at + 2;
            }
            Some('{') => {
                let body_start = at + 2;
                let close = matching_brace(template, body_start).ok_or_else(|| {
                    fail(format!(
                        "`{}` has no closing `}}`",
                        &template[at..template.len().min(at + 20)]
                    ))
                })?;
                let body = &template[body_start..close];
                out.push_str(&braced(body, lookup).map_err(&fail)?);
                i = close + 1;
            }
            Some(c) if c == '_' || c.is_ascii_alphabetic() => {
                let name_end = template[at + 1..]
                    .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
                    .map_or(template.len(), |n| at + 1 + n);
                let name = &template[at + 1..name_end];
                out.push_str(&plain(name, lookup).map_err(&fail)?);
                i = name_end;
            }
            _ => {
                return Err(fail(
                    "a `$` must start $NAME, ${NAME…} or be doubled as `$$` for a literal `$`"
                        .to_string(),
                ));
            }
        }
    }
    Ok(out)
}

fn plain(name: &str, lookup: &dyn Lookup) -> Result<String, String> {
    match lookup.get(name) {
        Some(value) => Ok(value),
        None if lookup.strict() => Err(format!(
            "`{name}` is not defined above; define it first, give a default (${{{name}:-text}}) or write `$$` for a literal `$`"
        )),
        None => Ok(String::new()),
    }
}

/// The index of the `}` closing a `${` whose body starts at `from`.
fn matching_brace(text: &str, from: usize) -> Option<usize> {
    let mut depth = 1usize;
    let bytes = text.as_bytes();
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 2;
                continue;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn braced(body: &str, lookup: &dyn Lookup) -> Result<String, String> {
    let name_end = body
        .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
        .unwrap_or(body.len());
    let name = &body[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("`${{{body}}}` does not start with a variable name"));
    }
    let op_and_word = &body[name_end..];
    if op_and_word.is_empty() {
        return plain(name, lookup);
    }
    let (op, word) = [":-", ":?", ":+", "-", "?", "+"]
        .iter()
        .find_map(|op| op_and_word.strip_prefix(op).map(|w| (*op, w)))
        .ok_or_else(|| {
            format!(
                "`${{{body}}}`: unknown operator; expected ${{{name}}}, ${{{name}:-default}}, ${{{name}:?error}} or ${{{name}:+other}}"
            )
        })?;
    let value = lookup.get(name);
    let set = value.is_some();
    let non_empty = value.as_deref().is_some_and(|v| !v.is_empty());
    let wanted = if op.starts_with(':') { non_empty } else { set };
    // The word is itself a template, substituted only when it is used.
    let word_value = |_: ()| substitute(word, lookup).map_err(|e| e.message);
    match op.trim_start_matches(':') {
        "-" => {
            if wanted {
                Ok(value.unwrap_or_default())
            } else {
                word_value(())
            }
        }
        "?" => {
            if wanted {
                Ok(value.unwrap_or_default())
            } else {
                let reason = word_value(())?;
                Err(if reason.is_empty() {
                    format!("required variable {name} is missing a value")
                } else {
                    format!("required variable {name} is missing a value: {reason}")
                })
            }
        }
        _ => {
            if wanted {
                word_value(())
            } else {
                Ok(String::new())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Env(Vec<(&'static str, &'static str)>);
    impl Lookup for Env {
        fn get(&self, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
        fn strict(&self) -> bool {
            false
        }
    }

    #[test]
    fn substitution_follows_the_compose_specification() {
        let env = Env(vec![("SET", "value"), ("EMPTY", "")]);
        let cases = [
            ("$SET", "value"),
            ("${SET}", "value"),
            ("a${SET}b", "avalueb"),
            ("${UNSET:-dflt}", "dflt"),
            ("${EMPTY:-dflt}", "dflt"),
            ("${EMPTY-dflt}", ""),
            ("${UNSET-dflt}", "dflt"),
            ("${SET:+alt}", "alt"),
            ("${EMPTY:+alt}", ""),
            ("${EMPTY+alt}", "alt"),
            ("${UNSET:-${SET}}", "value"),
            ("${UNSET:-${ALSO:-deep}}", "deep"),
            ("$$SET", "$SET"),
            ("cost: $$5", "cost: $5"),
            ("$UNSET", ""),
            ("${SET?never}", "value"),
        ];
        for (template, expected) in cases {
            assert_eq!(substitute(template, &env).unwrap(), expected, "{template}");
        }
        let err = substitute("x ${EMPTY:?set it please}", &env).unwrap_err();
        assert_eq!(err.column, 3);
        assert!(
            err.message
                .contains("EMPTY is missing a value: set it please")
        );
        assert!(substitute("${UNSET?}", &env).is_err());
        assert!(substitute("${EMPTY?}", &env).is_ok());
        assert!(
            substitute("${SET", &env)
                .unwrap_err()
                .message
                .contains("closing")
        );
        assert!(
            substitute("a $ b", &env)
                .unwrap_err()
                .message
                .contains("$$")
        );
        assert!(substitute("${1X}", &env).is_err());
        assert!(
            substitute("${SET/x}", &env)
                .unwrap_err()
                .message
                .contains("operator")
        );
    }

    #[test]
    fn env_files_read_as_compose_reads_them() {
        let text = "\u{feff}# comment\n\nexport A=1\nB = two words # trailing comment\nC='single $A \\n'\nD=\"double $A\\n\\\"q\\\" \\$A\"\nE: yaml style\nF=${A}-${MISSING:-dflt}\nG=\"multi\nline\"\nH=\nI=a#b\nJ=$$literal\n";
        let vars = parse_env_file(text).unwrap();
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("A"), Some("1"));
        assert_eq!(get("B"), Some("two words"));
        assert_eq!(get("C"), Some("single $A \\n"));
        assert_eq!(get("D"), Some("double 1\n\"q\" $A"));
        assert_eq!(get("E"), Some("yaml style"));
        assert_eq!(get("F"), Some("1-dflt"));
        assert_eq!(get("G"), Some("multi\nline"));
        assert_eq!(get("H"), Some(""));
        assert_eq!(get("I"), Some("a#b"));
        assert_eq!(get("J"), Some("$literal"));
    }

    #[test]
    fn env_file_errors_say_where() {
        let cases = [
            ("A=1\nB=$NOPE\n", 2, 3, "`NOPE` is not defined above"),
            ("A=1\n  LONELY\n", 2, 3, "`LONELY` has no value"),
            ("A=\"open\nB=2\n", 1, 3, "never closed"),
            ("A=1\nB C=2\n", 2, 1, "cannot contain a space"),
            ("A=1\nB%=2\n", 2, 2, "unexpected character `%`"),
        ];
        for (text, line, column, message) in cases {
            let err = parse_env_file(text).unwrap_err();
            assert_eq!((err.line, err.column), (line, column), "{text:?}: {err}");
            assert!(err.message.contains(message), "{text:?}: {err}");
        }
    }

    #[test]
    fn with_an_outer_lookup_a_lonely_key_takes_its_value() {
        let env = Env(vec![("HOME_DIR", "/root"), ("A", "outer")]);
        let vars = parse_env_file_with("HOME_DIR\nNOT_SET\nA=inner\nB=$A\n", &env).unwrap();
        // The process environment wins over the file, as compose-go's lookup order has it.
        assert_eq!(
            vars,
            vec![
                ("HOME_DIR".to_string(), "/root".to_string()),
                ("A".to_string(), "inner".to_string()),
                ("B".to_string(), "outer".to_string()),
            ]
        );
    }
}
