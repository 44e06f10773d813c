//! Running the real `pistemcell` binary on a hostile input, with a private work dir, cache
//! and TMPDIR, an address-space limit, and a time bound.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The address-space limit every hostile case runs under (`prlimit --as`).
pub const AS_LIMIT: u64 = 512 << 20;

/// A sandbox for one case: `root` holds `work`, `cache` and `tmp` (the command's TMPDIR).
pub struct Case {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
}

/// What a run did.
pub struct Run {
    /// The process's output.
    pub out: Output,
    /// How long it took.
    pub took: Duration,
}

impl Run {
    /// stderr as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    /// stdout as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    /// The exit code (-1 when killed by a signal).
    pub fn code(&self) -> i32 {
        self.out.status.code().unwrap_or(-1)
    }
    /// Asserts a clean failure: exit 1 (not a panic's 101, not a signal), the error names
    /// every one of `needles`.
    #[track_caller]
    pub fn fails_with(&self, needles: &[&str]) {
        let e = self.stderr();
        assert_eq!(self.code(), 1, "exit code; stderr: {e}");
        assert!(!e.contains("panicked"), "{e}");
        for n in needles {
            assert!(e.contains(n), "stderr lacks `{n}`: {e}");
        }
    }
}

impl Case {
    /// A fresh sandbox.
    pub fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        for d in ["tmp", "in", "out"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        Case { dir }
    }
    /// The sandbox's root.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
    /// A path under `in/` for building inputs.
    pub fn input(&self, name: &str) -> PathBuf {
        self.root().join("in").join(name)
    }
    /// The command's TMPDIR.
    pub fn tmp(&self) -> PathBuf {
        self.root().join("tmp")
    }
    /// Runs `pistemcell ARGS` with this case's work dir, cache, TMPDIR, under the
    /// address-space limit (when prlimit exists), killed after `limit`.
    pub fn run(&self, args: &[&str], limit: Duration) -> Run {
        let bin = env!("CARGO_BIN_EXE_pistemcell");
        let mut cmd = if Path::new("/usr/bin/prlimit").exists() {
            let mut c = Command::new("/usr/bin/prlimit");
            c.arg(format!("--as={AS_LIMIT}")).arg(bin);
            c
        } else {
            Command::new(bin)
        };
        cmd.arg("--work-dir")
            .arg(self.root().join("work"))
            .arg("--cache-dir")
            .arg(self.root().join("cache"))
            .args(args)
            .env("TMPDIR", self.tmp())
            .env_remove("PISTEMCELL_WORK_DIR")
            .env_remove("PISTEMCELL_CACHE_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let t = Instant::now();
        let mut child = cmd.spawn().unwrap();
        // Read both pipes on threads so a chatty child cannot block on a full pipe.
        let mut so = child.stdout.take().unwrap();
        let mut se = child.stderr.take().unwrap();
        let ho = std::thread::spawn(move || {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut so, &mut v).ok();
            v
        });
        let he = std::thread::spawn(move || {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut se, &mut v).ok();
            v
        });
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if t.elapsed() > limit {
                let _ = child.kill();
                let s = child.wait().unwrap();
                panic!("pistemcell {args:?} ran past {limit:?} and was killed ({s})");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = Output {
            status,
            stdout: ho.join().unwrap(),
            stderr: he.join().unwrap(),
        };
        Run {
            out,
            took: t.elapsed(),
        }
    }
    /// Asserts the command's TMPDIR was left empty.
    #[track_caller]
    pub fn tmp_is_empty(&self) {
        let left: Vec<_> = std::fs::read_dir(self.tmp())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "left in TMPDIR: {left:?}");
    }
}

/// Makes a FIFO at `p` (its parent directories too), replacing what is there.
pub fn mkfifo(p: &Path) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(p);
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o644) },
        0,
        "mkfifo {p:?}"
    );
}

/// One raw tar entry: name, type, data, link target.
pub type RawEntry<'a> = (&'a [u8], tar::EntryType, &'a [u8], Option<&'a [u8]>);

/// Writes a tar (optionally gzip) from raw entries.
pub fn tar_of(entries: &[RawEntry], gzip: bool) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        // Raw names: the hostile ones (`../x`, `/etc/x`, non-UTF-8) must go in as they are.
        let field = &mut h.as_old_mut().name;
        field.fill(0);
        field[..name.len()].copy_from_slice(name);
        if let Some(l) = link {
            let lf = &mut h.as_old_mut().linkname;
            lf.fill(0);
            lf[..l.len()].copy_from_slice(l);
        }
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    let raw = b.into_inner().unwrap();
    if gzip {
        use std::io::Write;
        let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        g.write_all(&raw).unwrap();
        g.finish().unwrap()
    } else {
        raw
    }
}
