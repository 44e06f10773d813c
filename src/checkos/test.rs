//! What a check looks at, and how it is judged. Patterns are upstream's regexes as written,
//! matched line by line as Ruby matches them (`^` and `$` at every line).

use super::tree::{Meta, Tree};

/// The result of one test: `Ok` with what was seen, `Err` with what is wrong.
pub type Verdict = Result<String, String>;

/// What a check looks at.
#[derive(Debug, Clone)]
pub enum Test {
    /// The file exists and its text matches `pattern`.
    Matches {
        /// The file (`/etc/login.defs`).
        path: &'static str,
        /// A regex; `^` and `$` match at each line.
        pattern: &'static str,
    },
    /// The file's text does not match `pattern` (a missing file passes).
    NotMatches {
        /// The file.
        path: &'static str,
        /// A regex; `^` and `$` match at each line.
        pattern: &'static str,
    },
    /// The path exists with exactly this mode (`0o644`), owner and group.
    Mode {
        /// The path.
        path: &'static str,
        /// Permission bits (with setuid, setgid, sticky).
        mode: u32,
        /// Owner uid.
        uid: u32,
        /// Group gid.
        gid: u32,
    },
    /// The path exists with no permission bit outside `max`, owned by `uid`.
    ModeAtMost {
        /// The path.
        path: &'static str,
        /// The bits allowed.
        max: u32,
        /// Owner uid.
        uid: u32,
    },
    /// The permission bits (`stat %a`, setuid/setgid/sticky left out) are exactly `mode`.
    Perm {
        /// The path (a final symlink is not followed).
        path: &'static str,
        /// The bits, `0o600`.
        mode: u32,
    },
    /// The path is owned by the image's user `user`.
    Owner {
        /// The path (a final symlink is not followed).
        path: &'static str,
        /// The user's name in the image's `/etc/passwd`.
        user: &'static str,
    },
    /// The path's group is the image's group `group`.
    Group {
        /// The path (a final symlink is not followed).
        path: &'static str,
        /// The group's name in the image's `/etc/group`.
        group: &'static str,
    },
    /// The path is a regular file (a symlink followed inside the image).
    File(&'static str),
    /// The path is a directory (a symlink followed inside the image).
    Dir(&'static str),
    /// The path is a regular file with an execute bit.
    Executable(&'static str),
    /// The file parses as JSON.
    Json(&'static str),
    /// The path exists (a file, directory or symlink).
    Exists(&'static str),
    /// The path does not exist.
    Absent(&'static str),
    /// The package is installed.
    Package(&'static str),
    /// The package is not installed.
    NoPackage(&'static str),
    /// Every one of the tests passes.
    All(Vec<Test>),
    /// What upstream looks at, for a check that does not apply here (never run).
    Upstream(&'static str),
    /// A test in code, with what it looks at.
    Custom {
        /// What it looks at, in one line.
        looks_at: &'static str,
        /// The test.
        run: fn(&Tree) -> Verdict,
    },
}

impl Test {
    /// What the test looks at, in one line (for `--list`, the JSON and the README).
    pub fn describe(&self) -> String {
        match self {
            Test::Matches { path, pattern } => format!("`{path}` matches `{pattern}`"),
            Test::NotMatches { path, pattern } => format!("`{path}` does not match `{pattern}`"),
            Test::Mode {
                path,
                mode,
                uid,
                gid,
            } => format!("`{path}` is mode {mode:04o}, owner {uid}:{gid}"),
            Test::ModeAtMost { path, max, uid } => {
                format!("`{path}` is mode {max:04o} or stricter, owned by uid {uid}")
            }
            Test::Perm { path, mode } => format!("`{path}` has permissions {mode:03o}"),
            Test::Owner { path, user } => format!("`{path}` is owned by {user}"),
            Test::Group { path, group } => format!("`{path}` has group {group}"),
            Test::File(p) => format!("`{p}` is a regular file"),
            Test::Dir(p) => format!("`{p}` is a directory"),
            Test::Executable(p) => format!("`{p}` is an executable file"),
            Test::Json(p) => format!("`{p}` is valid JSON"),
            Test::Exists(p) => format!("`{p}` exists"),
            Test::Absent(p) => format!("`{p}` does not exist"),
            Test::Package(p) => format!("package `{p}` is installed"),
            Test::NoPackage(p) => format!("package `{p}` is not installed"),
            Test::All(ts) => ts.iter().map(Test::describe).collect::<Vec<_>>().join("; "),
            Test::Custom { looks_at, .. } => looks_at.to_string(),
            Test::Upstream(what) => format!("upstream: {what}"),
        }
    }

    /// Runs the test on `tree`.
    pub fn run(&self, tree: &Tree) -> Verdict {
        match self {
            Test::Matches { path, pattern } => {
                let text = tree
                    .text(path)?
                    .ok_or_else(|| format!("{path} is missing"))?;
                match first_match(&text, pattern)? {
                    Some(line) => Ok(format!("{path}: {line}")),
                    None => Err(format!("{path} has no line matching `{pattern}`")),
                }
            }
            Test::NotMatches { path, pattern } => {
                let Some(text) = tree.text(path)? else {
                    return Ok(format!("{path} is absent"));
                };
                match first_match(&text, pattern)? {
                    Some(line) => Err(format!("{path}: {line}")),
                    None => Ok(format!("{path} has no line matching")),
                }
            }
            Test::Mode {
                path,
                mode,
                uid,
                gid,
            } => {
                let m = existing(tree, path)?;
                if (m.mode, m.uid, m.gid) == (*mode, *uid, *gid) {
                    Ok(format!("{path}: {}", shown(&m)))
                } else {
                    Err(format!(
                        "{path} is {}; wants {mode:04o} {uid}:{gid}",
                        shown(&m)
                    ))
                }
            }
            Test::ModeAtMost { path, max, uid } => {
                let m = existing(tree, path)?;
                if m.mode & !max == 0 && m.uid == *uid {
                    Ok(format!("{path}: {}", shown(&m)))
                } else {
                    Err(format!(
                        "{path} is {}; wants {max:04o} or stricter, owner {uid}",
                        shown(&m)
                    ))
                }
            }
            Test::Perm { path, mode } => {
                let m = existing(tree, path)?;
                if m.mode & 0o777 == *mode {
                    Ok(format!("{path}: {}", shown(&m)))
                } else {
                    Err(format!("{path} is {}; wants {mode:03o}", shown(&m)))
                }
            }
            Test::Owner { path, user } => {
                let m = existing(tree, path)?;
                match tree.id_of(user, false)? {
                    Some(id) if id == m.uid => Ok(format!("{path}: {}", shown(&m))),
                    Some(id) => Err(format!(
                        "{path} is {}; wants owner {user} ({id})",
                        shown(&m)
                    )),
                    None => Err(format!("the image has no user {user}")),
                }
            }
            Test::Group { path, group } => {
                let m = existing(tree, path)?;
                match tree.id_of(group, true)? {
                    Some(id) if id == m.gid => Ok(format!("{path}: {}", shown(&m))),
                    Some(id) => Err(format!(
                        "{path} is {}; wants group {group} ({id})",
                        shown(&m)
                    )),
                    None => Err(format!("the image has no group {group}")),
                }
            }
            Test::File(p) => match tree.meta_followed(p)? {
                Some(m) if m.file => Ok(format!("{p}: {}", shown(&m))),
                Some(m) => Err(format!("{p} is a {}", shown(&m))),
                None => Err(format!("{p} is missing")),
            },
            Test::Dir(p) => match tree.meta_followed(p)? {
                Some(m) if m.dir => Ok(format!("{p}: {}", shown(&m))),
                Some(m) => Err(format!("{p} is a {}", shown(&m))),
                None => Err(format!("{p} is missing")),
            },
            Test::Executable(p) => match tree.meta_followed(p)? {
                Some(m) if m.file && m.mode & 0o111 != 0 => Ok(format!("{p}: {}", shown(&m))),
                Some(m) => Err(format!("{p} is a {}, not executable", shown(&m))),
                None => Err(format!("{p} is missing")),
            },
            Test::Json(p) => {
                let text = tree.text(p)?.ok_or_else(|| format!("{p} is missing"))?;
                serde_json::from_str::<serde_json::Value>(&text)
                    .map(|_| format!("{p} parses"))
                    .map_err(|e| format!("{p}: {e}"))
            }
            Test::Exists(p) => existing(tree, p).map(|m| format!("{p}: {}", shown(&m))),
            Test::Absent(p) => match tree.meta(p)? {
                None => Ok(format!("{p} is absent")),
                Some(m) => Err(format!("{p} exists ({})", shown(&m))),
            },
            Test::Package(name) => match tree.packages()?.get(*name) {
                Some(v) => Ok(format!("{name} {v}")),
                None => Err(format!("{name} is not installed")),
            },
            Test::NoPackage(name) => match tree.packages()?.get(*name) {
                Some(v) => Err(format!("{name} {v} is installed")),
                None => Ok(format!("{name} is not installed")),
            },
            Test::All(ts) => {
                let mut seen = Vec::new();
                for t in ts {
                    seen.push(t.run(tree)?);
                }
                Ok(seen.join("; "))
            }
            Test::Custom { run, .. } => run(tree),
            Test::Upstream(what) => Err(format!("not ported (upstream: {what})")),
        }
    }
}

/// The first line of `text` where `pattern` matches (cut to 120 characters), if any.
pub fn first_match(text: &str, pattern: &str) -> Result<Option<String>, String> {
    let re = regex_lite::Regex::new(&format!("(?m){pattern}"))
        .map_err(|e| format!("the check's pattern `{pattern}` does not compile: {e}"))?;
    Ok(re.find(text).map(|m| {
        let start = text[..m.start()].rfind('\n').map_or(0, |i| i + 1);
        let end = text[m.start()..]
            .find('\n')
            .map_or(text.len(), |i| m.start() + i);
        let line = text[start..end].trim();
        match line.char_indices().nth(120) {
            Some((i, _)) => format!("{}…", &line[..i]),
            None => line.to_string(),
        }
    }))
}

fn existing(tree: &Tree, path: &str) -> Result<Meta, String> {
    tree.meta(path)?.ok_or_else(|| format!("{path} is missing"))
}

fn shown(m: &Meta) -> String {
    let kind = if m.dir {
        "directory"
    } else if m.symlink {
        "symlink"
    } else if m.file {
        "file"
    } else {
        "special file"
    };
    format!("{kind} {:04o} {}:{}", m.mode, m.uid, m.gid)
}
