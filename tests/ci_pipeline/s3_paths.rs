//! What the s3 resource and bash make of a path: a `file:` glob matched against a local file,
//! and the object path a resource's `regexp` gives a version.

/// A bash glob with `*` and `?` (the s3 resource's `file:` syntax) against `s`.
pub fn glob_match(pattern: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The object path an s3 resource's `regexp` gives `version`: the regexp must be literal apart
/// from one capture group (the version) and `\`-escapes. None when it is not of that form.
pub fn regexp_path(regexp: &str, version: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = regexp.chars();
    let mut groups = 0;
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '(' => {
                let mut depth = 1;
                for g in chars.by_ref() {
                    depth += match g {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    if depth == 0 {
                        break;
                    }
                }
                groups += 1;
                out.push_str(version);
            }
            '.' | '*' | '+' | '?' | '[' | ']' | '{' | '}' | '|' | '^' | '$' | ')' => return None,
            c => out.push(c),
        }
    }
    (groups == 1).then_some(out)
}
