//! What a chrooted command looked at in the rootfs, from `strace`: every path it opened,
//! stat'ed, tested, executed or read a link of, every directory it listed, and every path it
//! wrote, each as the path inside the rootfs. `initramfs_reuse` keys the initramfs on the state
//! of what `update-initramfs` looked at, so a package edit that touches none of it does not
//! build the initramfs again.
//!
//! strace writes every process's calls into one file, each line led by its pid (a call cut by
//! another process's line is joined again); a child starts with its parent's working
//! directory and descriptors at the `clone`/`fork` that made it. Only calls
//! made after the `chroot` (by the process or an ancestor) count: before it, the `chroot`
//! program loads the host's libraries.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

/// Calls whose first argument is a path that is read or probed.
const READ_PATH: &[&str] = &["open", "stat", "lstat", "access", "readlink", "execve"];
/// Calls with a directory fd first and a read or probed path second.
const READ_AT: &[&str] = &[
    "openat",
    "openat2",
    "newfstatat",
    "statx",
    "faccessat",
    "faccessat2",
    "readlinkat",
    "execveat",
];
/// Calls whose first argument is a path that is written.
const WRITE_PATH: &[&str] = &["creat", "mkdir", "unlink", "rename", "link", "symlink"];
/// Calls with a directory fd first and a written path second.
const WRITE_AT: &[&str] = &[
    "mkdirat",
    "unlinkat",
    "renameat",
    "renameat2",
    "linkat",
    "symlinkat",
];
/// Calls that make a process (its child starts where it is, with its descriptors).
const FORKS: &[&str] = &["clone", "clone3", "fork", "vfork"];
/// Calls that copy a descriptor: `fts` (`find`, `rm -r`, `cp -r`) moves every directory it
/// opens to another number with `fcntl(F_DUPFD_CLOEXEC)` and works from that one.
const DUPS: &[&str] = &["dup", "dup2", "dup3", "fcntl"];
/// Calls that move a process or list a directory.
const PLACES: &[&str] = &["chdir", "fchdir", "chroot", "getdents64"];

/// strace's options: every process into one file, full strings, only the calls above,
/// filtered in the kernel (seccomp-bpf; each traced call stops the process, so the list is
/// kept short).
fn strace_args() -> Vec<String> {
    let calls: Vec<&str> = [
        READ_PATH, READ_AT, WRITE_PATH, WRITE_AT, FORKS, DUPS, PLACES,
    ]
    .concat();
    ["-f", "-qq", "-s", "4096", "--seccomp-bpf", "-e"]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("trace={}", calls.join(","))])
        .chain(["-e".to_string(), "signal=none".to_string()])
        .collect()
}

/// What a traced command did with the rootfs, by absolute path inside it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Accesses {
    /// Paths it opened for reading, stat'ed, tested, executed or read a link of.
    pub read: BTreeSet<String>,
    /// Directories it listed.
    pub listed: BTreeSet<String>,
    /// Paths it created, wrote, renamed, removed or changed the metadata of.
    pub written: BTreeSet<String>,
}

/// Whether strace is there and can trace here (it traces `true` once per process with these
/// options: a host or container that refuses ptrace or seccomp filters has no tracing).
pub fn available() -> bool {
    static WORKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WORKS.get_or_init(|| {
        crate::cmd::on_path("strace")
            && Command::new("strace")
                .args(strace_args())
                .args(["-o", "/dev/null", "--", "true"])
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    })
}

/// `cmd` (which clears its environment) run under strace, with one output file per process
/// under `dir` (which must exist and be empty).
pub fn traced(cmd: &Command, dir: &Path) -> Command {
    let mut t = Command::new("strace");
    t.args(strace_args())
        .arg("-o")
        .arg(dir.join("trace"))
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            t.env(k, v);
        }
    }
    if !cmd.get_envs().any(|(k, _)| k == "PATH") {
        t.env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    }
    if let Some(d) = cmd.get_current_dir() {
        t.current_dir(d);
    }
    t
}

/// One system call: its name, arguments (as strace printed them) and result.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    name: String,
    args: Vec<String>,
    ret: String,
}

/// Reads the trace strace wrote under `dir` for a command that chrooted into the rootfs.
pub fn read(dir: &Path) -> Result<Accesses, String> {
    let path = dir.join("trace");
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let mut calls: HashMap<u32, Vec<Call>> = HashMap::new();
    let mut pending: HashMap<u32, String> = HashMap::new();
    for line in text.lines() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let rest = rest.trim_start();
        let full = if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
            pending.insert(pid, head.to_string());
            continue;
        } else if let Some(tail) = rest.strip_prefix("<... ") {
            // `<... name resumed>rest`: the start was the pid's pending line.
            let Some((_, after)) = tail.split_once(" resumed>") else {
                continue;
            };
            match pending.remove(&pid) {
                Some(head) => format!("{head}{after}"),
                None => continue,
            }
        } else {
            rest.to_string()
        };
        if let Some(c) = parse_line(&full) {
            calls.entry(pid).or_default().push(c);
        }
    }
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut is_child = BTreeSet::new();
    for (pid, list) in &calls {
        for c in list {
            if FORKS.contains(&c.name.as_str()) {
                if let Ok(child) = c.ret.split_whitespace().next().unwrap_or("").parse::<u32>() {
                    children.entry(*pid).or_default().push(child);
                    is_child.insert(child);
                }
            }
        }
    }
    let first = calls
        .keys()
        .filter(|p| !is_child.contains(p))
        .min()
        .copied()
        .ok_or_else(|| format!("{}: strace wrote no trace", dir.display()))?;
    let mut out = Accesses::default();
    let walk = Walk {
        calls: &calls,
        children: &children,
    };
    let start = Place {
        root: "/".into(),
        cwd: "/".into(),
    };
    walk.process(first, start, false, HashMap::new(), &mut out, 0);
    Ok(out)
}

/// Where a process is: its root and working directory, as paths inside the rootfs.
#[derive(Debug, Clone)]
struct Place {
    root: String,
    cwd: String,
}

impl Place {
    /// The path inside the rootfs that `p` names for this process (never above its root).
    fn place(&self, p: &str) -> String {
        let full = match p.strip_prefix('/') {
            Some(rel) => join(&self.root, rel),
            None => join(&self.cwd, p),
        };
        if self.root == "/" || full == self.root || full.starts_with(&format!("{}/", self.root)) {
            full
        } else {
            self.root.clone()
        }
    }
}

struct Walk<'a> {
    calls: &'a HashMap<u32, Vec<Call>>,
    children: &'a HashMap<u32, Vec<u32>>,
}

impl Walk<'_> {
    fn process(
        &self,
        pid: u32,
        mut at: Place,
        mut chrooted: bool,
        mut fds: HashMap<String, String>,
        out: &mut Accesses,
        depth: u32,
    ) {
        let Some(list) = self.calls.get(&pid) else {
            return;
        };
        let mut kids = self
            .children
            .get(&pid)
            .map(|k| k.to_vec())
            .unwrap_or_default();
        for c in list {
            let ok = !c.ret.starts_with('-') && !c.ret.starts_with('?');
            let name = c.name.as_str();
            if FORKS.contains(&name) {
                if let Ok(child) = c.ret.split_whitespace().next().unwrap_or("").parse::<u32>() {
                    kids.retain(|k| *k != child);
                    if depth < 4096 {
                        self.process(child, at.clone(), chrooted, fds.clone(), out, depth + 1);
                    }
                }
                continue;
            }
            if name == "chroot" {
                // The first chroot enters the rootfs; a later one (ldconfig -r) a tree in it.
                if ok && chrooted {
                    if let Some(p) = c.args.first().and_then(|a| unquote(a)) {
                        at.root = at.place(&p);
                    }
                } else if ok {
                    chrooted = true;
                }
                continue;
            }
            if DUPS.contains(&name) {
                copy_descriptor(c, ok, &mut fds);
                continue;
            }
            if !chrooted {
                continue;
            }
            match name {
                "chdir" if ok => {
                    if let Some(p) = c.args.first().and_then(|a| unquote(a)) {
                        at.cwd = at.place(&p);
                    }
                }
                "fchdir" if ok => {
                    if let Some(p) = c.args.first().and_then(|a| fds.get(fd_number(a))) {
                        at.cwd = p.clone();
                    }
                }
                "getdents64" | "getdents" => {
                    if let Some(p) = c.args.first().and_then(|a| fds.get(fd_number(a))) {
                        out.listed.insert(p.clone());
                    }
                }
                _ => {
                    let (is_at, writes) = if READ_PATH.contains(&name) {
                        (false, false)
                    } else if READ_AT.contains(&name) {
                        (true, false)
                    } else if WRITE_PATH.contains(&name) {
                        (false, true)
                    } else if WRITE_AT.contains(&name) {
                        (true, true)
                    } else {
                        continue;
                    };
                    let paths = self.paths_of(c, is_at, &at, &fds);
                    // A write that failed changed nothing: it probed (mkdir -p's EEXIST).
                    let writes = ok && (writes || opens_for_writing(c));
                    // An fd opened on a path: what later *at calls and listings name.
                    if ok && matches!(name, "open" | "openat" | "openat2") {
                        if let (Some(p), Some(fd)) =
                            (paths.first(), c.ret.split_whitespace().next())
                        {
                            fds.insert(fd.to_string(), p.clone());
                        }
                    }
                    for p in paths {
                        if writes {
                            out.written.insert(p);
                        } else {
                            out.read.insert(p);
                        }
                    }
                }
            }
        }
        // Children whose clone line was not seen (should not happen) still count.
        for k in kids {
            if depth < 4096 {
                self.process(k, at.clone(), chrooted, fds.clone(), out, depth + 1);
            }
        }
    }

    /// The paths a call names: its path argument (after a directory fd for `*at` calls), and
    /// for renames and links the second path too.
    fn paths_of(
        &self,
        c: &Call,
        at: bool,
        place: &Place,
        fds: &HashMap<String, String>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let pairs: &[(usize, usize)] = match (c.name.as_str(), at) {
            ("rename" | "link", false) => &[(usize::MAX, 0), (usize::MAX, 1)],
            // A link's first argument is its target's text, not a path it writes.
            ("symlink", false) => &[(usize::MAX, 1)],
            ("renameat" | "renameat2" | "linkat", true) => &[(0, 1), (2, 3)],
            ("symlinkat", _) => &[(1, 2)],
            (_, true) => &[(0, 1)],
            (_, false) => &[(usize::MAX, 0)],
        };
        for &(fd, arg) in pairs {
            let Some(p) = c.args.get(arg).and_then(|a| unquote(a)) else {
                continue;
            };
            // AT_EMPTY_PATH: the call is about the fd itself, opened earlier.
            if p.is_empty() {
                continue;
            }
            if p.starts_with('/') || fd == usize::MAX {
                out.push(place.place(&p));
                continue;
            }
            let base = match c.args.get(fd).map(String::as_str) {
                Some(a) if a.starts_with("AT_FDCWD") => place.cwd.clone(),
                Some(a) => match fds.get(fd_number(a)) {
                    Some(dir) => dir.clone(),
                    None => continue,
                },
                None => continue,
            };
            out.push(join(&base, &p));
        }
        out
    }
}

/// Follows a `dup`, `dup2`, `dup3` or `fcntl(F_DUPFD*)`: the new descriptor names what the
/// old one named (and nothing known when the old one is not known).
fn copy_descriptor(c: &Call, ok: bool, fds: &mut HashMap<String, String>) {
    let copies = c.name != "fcntl" || c.args.get(1).is_some_and(|a| a.starts_with("F_DUPFD"));
    let Some(new) = c.ret.split_whitespace().next().map(fd_number) else {
        return;
    };
    if !ok || !copies {
        return;
    }
    match c.args.first().and_then(|a| fds.get(fd_number(a))).cloned() {
        Some(p) => fds.insert(new.to_string(), p),
        None => fds.remove(new),
    };
}

/// The fd number of an argument (`3`, or `3</path>` as strace prints it with `-y`).
fn fd_number(arg: &str) -> &str {
    arg.split('<').next().unwrap_or(arg).trim()
}

/// Whether an `open`/`openat` call opened its file for writing or creating.
fn opens_for_writing(c: &Call) -> bool {
    let flags = match c.name.as_str() {
        "open" => c.args.get(1),
        "openat" | "openat2" => c.args.get(2),
        _ => None,
    };
    flags.is_some_and(|f| f.contains("O_WRONLY") || f.contains("O_CREAT") || f.contains("O_TRUNC"))
}

/// `path` joined to `base` (absolute) and normalized lexically (`.`, `..`, repeated `/`).
pub fn join(base: &str, path: &str) -> String {
    let full = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{base}/{path}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for comp in full.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Parses one line of a per-process trace: `name(args) = ret`; None for anything else
/// (exit and signal lines, unfinished calls).
fn parse_line(line: &str) -> Option<Call> {
    let open = line.find('(')?;
    let name = line[..open].trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let rest = &line[open + 1..];
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut depth = 0i32;
    let mut in_str = false;
    let mut escaped = false;
    let mut end = None;
    for (i, ch) in rest.char_indices() {
        if in_str {
            cur.push(ch);
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_str = false;
            }
            continue;
        }
        match ch {
            '"' => {
                in_str = true;
                cur.push(ch);
            }
            '(' | '[' | '{' | '<' => {
                depth += 1;
                cur.push(ch);
            }
            ')' if depth == 0 => {
                end = Some(i);
                break;
            }
            ')' | ']' | '}' | '>' => {
                depth -= 1;
                cur.push(ch);
            }
            ',' if depth == 0 => {
                args.push(cur.trim().to_string());
                cur.clear();
            }
            _ => cur.push(ch),
        }
    }
    let end = end?;
    if !cur.trim().is_empty() {
        args.push(cur.trim().to_string());
    }
    let ret = rest[end + 1..]
        .trim_start()
        .strip_prefix('=')?
        .trim()
        .to_string();
    Some(Call {
        name: name.to_string(),
        args,
        ret,
    })
}

/// The text of a quoted strace string argument (`"..."`, possibly followed by `...` when cut).
fn unquote(arg: &str) -> Option<String> {
    let inner = arg.strip_prefix('"')?;
    let inner = inner
        .strip_suffix("\"...")
        .or_else(|| inner.strip_suffix('"'))?;
    Some(unescape(inner))
}

/// Undoes strace's escapes (`\n`, `\"`, `\\`, `\xHH`, octal `\NNN`); bytes that are not UTF-8
/// are kept as replacement characters.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 >= b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = b[i + 1];
        match c {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'v' => out.push(0x0b),
            b'f' => out.push(0x0c),
            b'x' if i + 4 <= b.len() => {
                let hex = std::str::from_utf8(&b[i + 2..(i + 4).min(b.len())]).unwrap_or("");
                if let Ok(v) = u8::from_str_radix(hex, 16) {
                    out.push(v);
                    i += 4;
                    continue;
                }
                out.push(c);
            }
            b'0'..=b'7' => {
                let mut v: u32 = 0;
                let mut n = 0;
                while n < 3 && i + 1 + n < b.len() && (b'0'..=b'7').contains(&b[i + 1 + n]) {
                    v = v * 8 + u32::from(b[i + 1 + n] - b'0');
                    n += 1;
                }
                out.push(v as u8);
                i += 1 + n;
                continue;
            }
            other => out.push(other),
        }
        i += 2;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[path = "trace_tests.rs"]
mod tests;
