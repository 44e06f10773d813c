//! Reading the README's Markdown and the sources' text: table cells, code spans, Rust string
//! literals, quoted messages cut at their variable parts, and a short line diff.

use super::PLACEHOLDERS;

/// The first lines of a line diff from `old` to `new` (`-` old, `+` new, two lines of context).
pub fn diff_head(old: &str, new: &str, max: usize) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    // Longest common subsequence, from the end.
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    let Some(first) = ops.iter().position(|(op, _)| *op != ' ') else {
        return "(the texts differ only in line endings)".into();
    };
    ops[first.saturating_sub(2)..]
        .iter()
        .take(max)
        .map(|(op, line)| format!("  {op} {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A Markdown table row's cells, split at unescaped pipes, `\|` made `|`.
fn cells(row: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut chars = row.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                cells.last_mut().unwrap().push('|');
            }
            '|' => cells.push(String::new()),
            _ => cells.last_mut().unwrap().push(c),
        }
    }
    // Drop what is outside the leading and trailing pipes.
    cells.remove(0);
    cells.pop();
    cells.into_iter().map(|c| c.trim().to_string()).collect()
}

/// The body rows of the tables in `lines` (header and separator rows left out).
pub fn table_rows(lines: &[&str]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut header_seen = false;
    for line in lines {
        if !line.starts_with('|') {
            header_seen = false;
            continue;
        }
        if !header_seen {
            header_seen = true;
            continue;
        }
        if line.starts_with("|---") || line.starts_with("| ---") {
            continue;
        }
        rows.push(cells(line));
    }
    rows
}

/// The contents of the Markdown code spans in `text` (CommonMark: a run of N backticks up to
/// the next run of exactly N; one space stripped from each side when both have one).
pub fn code_spans(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let run = |at: usize| chars[at..].iter().take_while(|c| **c == '`').count();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            i += 1;
            continue;
        }
        let n = run(i);
        let open_end = i + n;
        let mut j = open_end;
        let mut close = None;
        while j < chars.len() {
            if chars[j] == '`' {
                let m = run(j);
                if m == n {
                    close = Some(j);
                    break;
                }
                j += m;
            } else {
                j += 1;
            }
        }
        let Some(close) = close else {
            i = open_end;
            continue;
        };
        let inner: String = chars[open_end..close].iter().collect();
        let inner = match inner.strip_prefix(' ').and_then(|s| s.strip_suffix(' ')) {
            Some(s) if !s.trim().is_empty() => s.to_string(),
            _ => inner,
        };
        spans.push(inner);
        i = close + n;
    }
    spans
}

#[test]
fn code_spans_follow_commonmark() {
    assert_eq!(
        code_spans("`a` / ``b `c` d`` and `e"),
        ["a".to_string(), "b `c` d".to_string()]
    );
}

/// A quoted message's pieces: the text between `...` and placeholder words, trimmed.
pub fn pieces(fragment: &str) -> Vec<String> {
    let fragment = fragment.replace("...", "\0").replace('…', "\0");
    let mut cut = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, cut: &mut String| {
        if PLACEHOLDERS.contains(&word.as_str()) {
            cut.push('\0');
        } else {
            cut.push_str(word);
        }
        word.clear();
    };
    for c in fragment.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut cut);
            cut.push(c);
        }
    }
    flush(&mut word, &mut cut);
    cut.split('\0')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

/// Whether `pieces` occur in `unit` one after the other.
pub fn in_order(unit: &str, pieces: &[String]) -> bool {
    let mut rest = unit;
    for p in pieces {
        match rest.find(p.as_str()) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    true
}

/// The string literals of Rust source, escapes resolved (`{{` as `{`, a `\` line continuation
/// as nothing).
pub fn rust_strings(src: &str) -> Vec<String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let prev_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '\'' {
            // A char literal such as '"' or '\"', or a lifetime.
            if chars.get(i + 1) == Some(&'\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if c == 'r' && !prev_ident && matches!(chars.get(i + 1), Some('"' | '#')) {
            let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
            if chars.get(i + 1 + hashes) != Some(&'"') {
                i += 1;
                continue;
            }
            let start = i + 2 + hashes;
            let mut j = start;
            let closes =
                |j: usize| chars[j] == '"' && (1..=hashes).all(|k| chars.get(j + k) == Some(&'#'));
            while j < chars.len() && !closes(j) {
                j += 1;
            }
            out.push(chars[start..j.min(chars.len())].iter().collect());
            i = j + 1 + hashes;
        } else if c == '"' {
            let mut s = String::new();
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '"' {
                if chars[j] == '\\' {
                    j += 1;
                    match chars.get(j) {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some('\n') => {
                            while chars.get(j + 1).is_some_and(|c| c.is_whitespace()) {
                                j += 1;
                            }
                        }
                        Some(&other) => s.push(other),
                        None => {}
                    }
                } else {
                    s.push(chars[j]);
                }
                j += 1;
            }
            out.push(s.replace("{{", "{").replace("}}", "}"));
            i = j + 1;
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn rust_strings_resolve_escapes_and_continuations() {
    let src = "let c = '\"'; f(\"a {{b}} \\\n      c\\\"d\"); // \"no\"\nr#\"raw \"x\"\"#";
    assert_eq!(rust_strings(src), ["a {b} c\"d", "raw \"x\""]);
}

#[test]
fn pieces_split_at_ellipses_and_placeholders() {
    assert_eq!(
        pieces("stage STAGE: ... failed (...); see WORK/logs"),
        ["stage", ":", "failed (", "); see", "/logs"]
    );
}
