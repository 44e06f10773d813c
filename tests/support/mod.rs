//! Fixture builders for integration tests: a throwaway OpenPGP key, .deb packages, a signed
//! Debian-format archive, and a small HTTP server on 127.0.0.1 that serves it.
#![allow(dead_code)]

pub mod clients;
pub mod cpi;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// Runs a command and panics with its output when it fails.
pub fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A throwaway signing key in its own GNUPGHOME.
pub struct Key {
    pub home: tempfile::TempDir,
    pub fingerprint: String,
    /// The public key, binary.
    pub public: PathBuf,
}

impl Key {
    /// Generates a fresh ed25519 key (fast) named `name`.
    pub fn generate(name: &str) -> Key {
        let home = tempfile::tempdir().unwrap();
        let g = |args: &[&str]| {
            sh(Command::new("gpg")
                .env("GNUPGHOME", home.path())
                .args(["--batch", "--quiet"])
                .args(args))
        };
        g(&[
            "--passphrase",
            "",
            "--quick-gen-key",
            &format!("{name} <{name}@test.invalid>"),
            "ed25519",
            "sign",
            "never",
        ]);
        let colons = g(&["--with-colons", "--list-keys"]);
        let fingerprint = colons
            .lines()
            .find(|l| l.starts_with("fpr:"))
            .unwrap()
            .split(':')
            .nth(9)
            .unwrap()
            .to_string();
        let public = home.path().join("public.gpg");
        g(&[
            "--output",
            public.to_str().unwrap(),
            "--export",
            &fingerprint,
        ]);
        Key {
            home,
            fingerprint,
            public,
        }
    }

    /// Clearsigns `text` into `out`.
    pub fn clearsign(&self, input: &Path, out: &Path) {
        sh(Command::new("gpg")
            .env("GNUPGHOME", self.home.path())
            .args([
                "--batch",
                "--yes",
                "--quiet",
                "--digest-algo",
                "SHA512",
                "--local-user",
                &self.fingerprint,
                "--output",
            ])
            .arg(out)
            .arg("--clearsign")
            .arg(input));
    }

    /// Writes a detached signature of `input` to `out`.
    pub fn detach_sign(&self, input: &Path, out: &Path) {
        sh(Command::new("gpg")
            .env("GNUPGHOME", self.home.path())
            .args([
                "--batch",
                "--yes",
                "--quiet",
                "--local-user",
                &self.fingerprint,
                "--output",
            ])
            .arg(out)
            .arg("--detach-sign")
            .arg(input));
    }
}

/// A package to put into the fixture archive.
#[derive(Clone, Debug)]
pub struct Pkg {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// Extra control fields (`Depends: a | b`, `Provides: x`, `Priority: required`).
    pub fields: Vec<String>,
    /// Files in the package: (path without leading slash, content).
    pub files: Vec<(String, String)>,
}

impl Pkg {
    /// A package with one file `usr/share/NAME/stamp`.
    pub fn new(name: &str, version: &str, fields: &[&str]) -> Pkg {
        Pkg {
            name: name.into(),
            version: version.into(),
            arch: "armhf".into(),
            fields: fields.iter().map(|s| s.to_string()).collect(),
            files: vec![(
                format!("usr/share/{name}/stamp"),
                format!("{name} {version}\n"),
            )],
        }
    }

    /// Builds the .deb with dpkg-deb into `dir`, returning its path.
    pub fn build(&self, dir: &Path) -> PathBuf {
        let tree = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tree.path().join("DEBIAN")).unwrap();
        let mut control = format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\nMaintainer: Test <t@test.invalid>\nDescription: fixture {}\n",
            self.name, self.version, self.arch, self.name
        );
        for f in &self.fields {
            control.push_str(f);
            control.push('\n');
        }
        std::fs::write(tree.path().join("DEBIAN/control"), control).unwrap();
        for (p, c) in &self.files {
            let full = tree.path().join(p);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, c).unwrap();
        }
        let out = dir.join(format!(
            "{}_{}_{}.deb",
            self.name,
            self.version.replace(':', "%3a"),
            self.arch
        ));
        sh(Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(tree.path())
            .arg(&out));
        out
    }
}

/// Hex sha256 of bytes.
pub fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A Debian-format archive on disk.
pub struct Archive {
    pub root: tempfile::TempDir,
    pub suite: String,
    pub arch: String,
}

impl Archive {
    /// Publishes `pkgs` as suite `suite`, component main, signed by `key`.
    pub fn publish(pkgs: &[Pkg], suite: &str, key: &Key) -> Archive {
        let scratch = tempfile::tempdir().unwrap();
        let debs: Vec<PathBuf> = pkgs.iter().map(|p| p.build(scratch.path())).collect();
        Archive::publish_debs(&debs, suite, "armhf", key)
    }

    /// Publishes ready-made .deb files (copied into the pool) as suite `suite` for `arch`.
    pub fn publish_debs(debs: &[PathBuf], suite: &str, arch: &str, key: &Key) -> Archive {
        let root = tempfile::tempdir().unwrap();
        let pool = root.path().join("pool/main");
        std::fs::create_dir_all(&pool).unwrap();
        let mut index = String::new();
        for src in debs {
            let deb = pool.join(src.file_name().unwrap());
            std::fs::copy(src, &deb).unwrap();
            let data = std::fs::read(&deb).unwrap();
            let control = sh(Command::new("dpkg-deb").arg("--field").arg(&deb));
            index.push_str(control.trim_end());
            index.push_str(&format!(
                "\nFilename: pool/main/{}\nSize: {}\nSHA256: {}\n\n",
                deb.file_name().unwrap().to_string_lossy(),
                data.len(),
                sha256(&data)
            ));
        }
        let a = Archive {
            root,
            suite: suite.into(),
            arch: arch.into(),
        };
        a.write_index(&index);
        a.sign(key);
        a
    }

    /// The dists/SUITE directory.
    pub fn dists(&self) -> PathBuf {
        self.root.path().join("dists").join(&self.suite)
    }

    /// Writes Packages (plain and xz) of `main` and a Release listing them, with an empty
    /// `non-free-firmware` component beside it (as Debian's archive has, and the default
    /// profile reads).
    pub fn write_index(&self, index: &str) {
        let mut release = format!(
            "Origin: Fixture\nSuite: {s}\nCodename: {s}\nDate: Sat, 01 Nov 2025 00:00:00 UTC\nArchitectures: {a}\nComponents: main non-free-firmware\nSHA256:\n",
            s = self.suite,
            a = self.arch
        );
        for (component, text) in [("main", index), ("non-free-firmware", "")] {
            let dir = self
                .dists()
                .join(format!("{component}/binary-{}", self.arch));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("Packages"), text).unwrap();
            let mut xz = xz2::write::XzEncoder::new(Vec::new(), 6);
            xz.write_all(text.as_bytes()).unwrap();
            std::fs::write(dir.join("Packages.xz"), xz.finish().unwrap()).unwrap();
            for name in ["Packages", "Packages.xz"] {
                let data = std::fs::read(dir.join(name)).unwrap();
                release.push_str(&format!(
                    " {} {} {component}/binary-{}/{name}\n",
                    sha256(&data),
                    data.len(),
                    self.arch
                ));
            }
        }
        std::fs::write(self.dists().join("Release"), release).unwrap();
    }

    /// Signs Release as InRelease and Release.gpg.
    pub fn sign(&self, key: &Key) {
        let d = self.dists();
        key.clearsign(&d.join("Release"), &d.join("InRelease"));
        key.detach_sign(&d.join("Release"), &d.join("Release.gpg"));
    }

    /// Path of a pool file for package `name`.
    pub fn deb_path(&self, name: &str) -> PathBuf {
        let pool = self.root.path().join("pool/main");
        std::fs::read_dir(&pool)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("{name}_"))
            })
            .unwrap_or_else(|| panic!("no {name} in the fixture pool"))
    }
}

/// A minimal HTTP/1.1 file server on 127.0.0.1 (GET only), counting requests.
pub struct Server {
    pub url: String,
    pub requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Serves `root` until dropped.
    pub fn start(root: &Path) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let root = root.to_path_buf();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (req2, stop2) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                req2.fetch_add(1, Ordering::SeqCst);
                let root = root.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let file = root.join(path.trim_start_matches('/'));
                    match std::fs::File::open(&file).and_then(|mut f| {
                        let mut v = Vec::new();
                        f.read_to_end(&mut v).map(|_| v)
                    }) {
                        Ok(body) => {
                            let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                            let _ = conn.write_all(&body);
                        }
                        Err(_) => {
                            let _ = write!(conn, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                        }
                    }
                });
            }
        });
        Server {
            url,
            requests,
            stop,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

/// The Debian mirror the end-to-end tests use, or why they must skip: they need
/// `PISTEMCELL_SKIP_MIRROR_TESTS` unset, root, a reachable mirror (`PISTEMCELL_TEST_MIRROR`,
/// else the host's apt sources) and ARM emulation. Prints `SKIPPED test: reason` when skipping.
pub fn mirror_for_e2e(test: &str) -> Option<String> {
    let why = (|| {
        if std::env::var_os("PISTEMCELL_SKIP_MIRROR_TESTS").is_some() {
            return Err("PISTEMCELL_SKIP_MIRROR_TESTS is set".to_string());
        }
        if !is_root() {
            return Err("needs root (mounts, chroot, file owners)".into());
        }
        let mirror = std::env::var("PISTEMCELL_TEST_MIRROR")
            .ok()
            .or_else(|| pistemcell::mirror::from_host(Path::new("/etc/apt"), "debian", "bookworm"))
            .ok_or("no mirror: set PISTEMCELL_TEST_MIRROR or add a bookworm line to the host's apt sources")?;
        pistemcell::archive::http::Http::new()
            .get(&format!("{mirror}/dists/bookworm/Release"))
            .map_err(|e| format!("mirror {mirror} is not reachable: {e}"))?;
        let arch = pistemcell::spec::Arch::Armhf;
        pistemcell::rootfs::binfmt::ensure(arch).map_err(|e| e.to_string())?;
        Ok(mirror)
    })();
    match why {
        Ok(m) => Some(m),
        Err(reason) => {
            eprintln!("SKIPPED {test}: {reason}");
            None
        }
    }
}

/// Runs the SBOM reference validators on both files, or says why not.
pub fn validate_sboms(spdx: &Path, cdx: &Path) {
    let Ok(python) = std::env::var("PISTEMCELL_TEST_SBOM_PYTHON") else {
        eprintln!("SKIPPED SBOM validators: PISTEMCELL_TEST_SBOM_PYTHON is unset (a Python with pip's spdx-tools and cyclonedx-python-lib[json-validation]; .ci/run makes one)");
        return;
    };
    let bin = Path::new(&python).parent().unwrap();
    let o = std::process::Command::new(bin.join("pyspdxtools"))
        .arg("-i")
        .arg(spdx)
        .output()
        .unwrap();
    assert!(
        o.status.success() && o.stdout.is_empty()
            || String::from_utf8_lossy(&o.stdout).contains("valid"),
        "pyspdxtools: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.status.success(),
        "pyspdxtools: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let script = "import sys\nfrom cyclonedx.validation.json import JsonStrictValidator\nfrom cyclonedx.schema import SchemaVersion\nerr = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())\nif err is not None:\n    print(err)\n    sys.exit(1)\n";
    let o = std::process::Command::new(&python)
        .args(["-c", script])
        .arg(cdx)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "CycloneDX schema: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A resolved spec from YAML text.
pub fn spec(yaml: &str) -> pistemcell::spec::Resolved {
    let s = pistemcell::spec::parse("test.yml", yaml, &[]).unwrap();
    pistemcell::spec::resolve("test.yml".into(), s).unwrap()
}

/// A tree a disk stemcell is made of, for boot tests: the firmware's files (a kernel that is not one), systemd's marks and the
/// bakery agent.json.
pub fn boot_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for d in [
        "etc/systemd/system",
        "lib/systemd",
        "var/lib/dpkg",
        "boot/firmware",
        "var/vcap/bosh",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("lib/systemd/systemd"), "not systemd").unwrap();
    for (name, data) in [
        ("start.elf", "firmware"),
        ("bcm2710-rpi-3-b.dtb", "dtb"),
        ("vmlinuz-6.1.0-9-armmp", "not a kernel"),
        ("initrd.img-6.1.0-9-armmp", "not an initramfs"),
        (
            "config.txt",
            "kernel=vmlinuz-6.1.0-9-armmp\ninitramfs initrd.img-6.1.0-9-armmp\n",
        ),
    ] {
        std::fs::write(root.join("boot/firmware").join(name), data).unwrap();
    }
    std::fs::write(
        root.join("var/vcap/bosh/agent.json"),
        r#"{"Infrastructure":{"Settings":{"Sources":[{"Type":"File","SettingsPath":"/piConfig/settings.json"}]}}}"#,
    )
    .unwrap();
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    root
}

/// A disk stemcell of the boot fixture tree (spec `yaml`: `{}` for bakery), in `dir/out`.
pub fn disk_stemcell(dir: &Path, yaml: &str) -> pistemcell::pack::stemcell::Packed {
    let root = boot_rootfs(dir);
    pistemcell::pack::write::write_stemcell(&spec(yaml), &root, None, &dir.join("out"), 0, 2, &[])
        .unwrap()
}
