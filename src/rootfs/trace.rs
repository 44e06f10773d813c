//! What a chrooted command looked at in the rootfs, from `strace`: every path it opened,
//! stat'ed, tested, executed or read a link of, every directory it listed, and every path it
//! wrote, each as the path inside the rootfs. `initramfs_reuse` keys the initramfs on the state
//! of what `update-initramfs` looked at, so a package edit that touches none of it does not
//! build the initramfs again.
//!
//! strace writes one file per process (`-ff`), so each process's calls are in order; a child
//! starts with its parent's working directory at the `clone`/`fork` that made it. Only calls
//! made after the `chroot` (by the process or an ancestor) count: before it, the `chroot`
//! program loads the host's libraries.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

/// strace's options: every process into one file, full strings, only the calls that name,
/// list or leave files and that make processes, filtered in the kernel (seccomp-bpf; each
/// traced call stops the process, so the list is kept short).
const STRACE_ARGS: &[&str] = &[
    "-f",
    "-qq",
    "-s",
    "4096",
    "--seccomp-bpf",
    "-e",
    "trace=open,openat,creat,stat,lstat,newfstatat,statx,access,faccessat,faccessat2,readlink,readlinkat,execve,execveat,chdir,fchdir,chroot,getdents64,clone,clone3,fork,vfork,mkdir,mkdirat,unlink,unlinkat,rename,renameat,renameat2,link,linkat,symlink,symlinkat",
    "-e",
    "signal=none",
];

/// Calls whose first argument is a path that is read or probed.
const READ_PATH: &[&str] = &["open", "stat", "lstat", "access", "readlink", "execve"];
/// Calls with a directory fd first and a read or probed path second.
const READ_AT: &[&str] = &[
    "openat",
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
                .args(STRACE_ARGS)
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
    t.args(STRACE_ARGS)
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
            if matches!(c.name.as_str(), "clone" | "clone3" | "fork" | "vfork") {
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
            if matches!(name, "clone" | "clone3" | "fork" | "vfork") {
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
                    let writes = writes || opens_for_writing(c);
                    // An fd opened on a path: what later *at calls and listings name.
                    if ok && matches!(name, "open" | "openat") {
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

/// The fd number of an argument (`3`, or `3</path>` as strace prints it with `-y`).
fn fd_number(arg: &str) -> &str {
    arg.split('<').next().unwrap_or(arg).trim()
}

/// Whether an `open`/`openat` call opened its file for writing or creating.
fn opens_for_writing(c: &Call) -> bool {
    let flags = match c.name.as_str() {
        "open" => c.args.get(1),
        "openat" => c.args.get(2),
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
mod tests {
    use super::*;

    #[test]
    fn lines_are_parsed_with_quoted_commas_and_fd_paths() {
        let c = parse_line(
            r#"openat(3</var/tmp/r/usr/lib>, "a,b\"c", O_RDONLY|O_CLOEXEC) = 4</var/tmp/r/usr/lib/a,b"c>"#,
        )
        .unwrap();
        assert_eq!(c.name, "openat");
        assert_eq!(c.args[0], "3</var/tmp/r/usr/lib>");
        assert_eq!(unquote(&c.args[1]).unwrap(), "a,b\"c");
        assert!(c.ret.starts_with('4'));
        let c = parse_line(
            r#"newfstatat(AT_FDCWD, "/x", 0x7ffd, 0) = -1 ENOENT (No such file or directory)"#,
        )
        .unwrap();
        assert!(c.ret.starts_with("-1 ENOENT"));
        assert_eq!(parse_line("+++ exited with 0 +++"), None);
        assert_eq!(unescape(r"a\303\251\x41\n"), "aéA\n");
        assert_eq!(join("/a/b", "../c/./d//e"), "/a/c/d/e");
        assert_eq!(join("/a", "/x/.."), "/");
    }

    #[test]
    fn a_process_tree_is_followed_from_its_chroot_with_working_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("trace"),
            r#"100 execve("/usr/sbin/chroot", ["chroot"], 0x1 /* 3 vars */) = 0
100 openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3
100 chroot("/var/tmp/r") = 0
100 chdir("/") = 0
100 execve("/bin/sh", ["sh"], 0x2 /* 3 vars */) = 0
100 openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3
100 chdir("/usr/share") = 0
100 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|SIGCHLD <unfinished ...>
101 execve("/usr/bin/find", ["find", "hooks"], 0x3 /* 3 vars */) = 0
100 <... clone resumed>) = 101
101 openat(AT_FDCWD, "hooks", O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_DIRECTORY) = 4
101 getdents64(4, 0x55 /* 3 entries */, 32768) = 80
101 openat(4, "udev", O_RDONLY) = 5
100 newfstatat(AT_FDCWD, "/boot/initrd.img-6", 0x7ffd, 0) = -1 ENOENT (No such file or directory)
101 openat(AT_FDCWD, "/boot/initrd.img-6.new", O_WRONLY|O_CREAT|O_TRUNC, 0644) = 3
101 renameat2(AT_FDCWD, "/boot/initrd.img-6.new", AT_FDCWD, "/boot/initrd.img-6", RENAME_NOREPLACE) = 0
101 +++ exited with 0 +++
100 vfork() = 102
102 chroot("/var/tmp/d") = 0
102 openat(AT_FDCWD, "/var/cache/ldconfig/aux-cache", O_RDONLY) = 3
102 openat(AT_FDCWD, "../../../../etc/x", O_RDONLY) = 4
100 +++ exited with 0 +++
"#,
        )
        .unwrap();
        let a = read(dir.path()).unwrap();
        let read: Vec<&str> = a.read.iter().map(String::as_str).collect();
        assert_eq!(
            read,
            [
                "/bin/sh",
                "/boot/initrd.img-6",
                "/etc/ld.so.cache",
                // Relative to a working directory outside the new root, as the kernel has it.
                "/etc/x",
                "/usr/bin/find",
                "/usr/share/hooks",
                "/usr/share/hooks/udev",
                // ldconfig -r: absolute paths inside the tree it chrooted into.
                "/var/tmp/d/var/cache/ldconfig/aux-cache",
            ]
        );
        assert_eq!(a.listed.iter().collect::<Vec<_>>(), ["/usr/share/hooks"]);
        assert_eq!(
            a.written.iter().collect::<Vec<_>>(),
            ["/boot/initrd.img-6", "/boot/initrd.img-6.new"]
        );
    }
}
