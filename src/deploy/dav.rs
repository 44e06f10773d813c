//! A blobstore that the agent's `bosh-blobstore-dav` client (cloudfoundry/bosh-davcli) talks
//! to, as a director's nginx dav blobstore would.
//!
//! What the client does (bosh-davcli v0.0.372, `client/client.go`, `config/config.go`):
//! - Its config JSON (Go decodes keys case-insensitively) holds `endpoint`, `user`,
//!   `password`, optionally `retry_attempts`, `secret` and `tls.cert.ca`. Each blob's URL is
//!   `ENDPOINT/XX/ID`, `XX` being the first byte of the SHA-1 of the blob id in lower-case hex.
//! - `put`: `PUT` with a `Content-Length` body (the file's size); 201 or 204 is success.
//! - `get`: `GET`; only 200 is success. `exists`: `HEAD`; 200 is there, 404 absent.
//! - `delete`: `DELETE`; 404 and any 2xx are success.
//! - Basic auth on every request when `user` is set; a failed request is retried 3 times.
//!
//! What the agent does (bosh-agent, `settings/settings.go` `Blobstore`, bosh-utils
//! `blobstore/provider.go` and `external_blobstore.go`): the settings' `blobstore` object is
//! `{"provider": "dav", "options": {…}}`; the options are written as they are to
//! `/var/vcap/bosh/etc/blobstore-dav.json` and the agent runs
//! `bosh-blobstore-dav -c THAT put|get|exists|delete SRC DST`. Blobs the agent writes get a
//! fresh UUID as their id, and their digest (SHA-1) is returned to the director.
//!
//! This server listens on 127.0.0.1 only (the guest reaches it as 10.0.2.2 through qemu's
//! user network), serves each connection on its own thread, keeps connections alive as HTTP/1.1
//! does, streams bodies to disk under [`BODY_MAX`], and requires basic auth with a random
//! password.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine;
use sha1::{Digest, Sha1};

use super::http::{self, BodyError, Head};

/// The largest blob accepted (a compiled package or a logs tarball is far smaller).
pub const BODY_MAX: u64 = 2 << 30;
/// The most connections served at once; more are answered 503.
pub const CONNECTIONS_MAX: usize = 32;
/// The longest a connection may sit idle before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// The most entries [`DavServer::tgz_names`] lists.
pub const TGZ_ENTRIES_MAX: u64 = 100_000;
/// The most bytes [`DavServer::tgz_names`] decompresses.
pub const TGZ_UNPACKED_MAX: u64 = 8 << 30;
/// The most bytes of a refused request's body read (and dropped) before answering it.
pub const REFUSED_BODY_MAX: u64 = 1 << 20;
/// The user name the agent authenticates as.
pub const USER: &str = "agent";
const LOG_MAX: usize = 500;

/// Why the blobstore could not start or store a blob.
#[derive(Debug, thiserror::Error)]
pub enum DavError {
    /// A file or socket operation failed.
    #[error("the dav blobstore: {what}: {source}; check the directory's space and permissions")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: io::Error,
    },
    /// A blob the guest stored is not the tarball it should be.
    #[error("the blob {id} in the dav blobstore: {why}; the guest stored something unexpected")]
    Blob {
        /// The blob id.
        id: String,
        /// What is wrong with it.
        why: String,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> DavError {
    let what = what.into();
    move |source| DavError::Io { what, source }
}

struct Shared {
    dir: PathBuf,
    auth: String,
    log: Mutex<VecDeque<String>>,
    stop: AtomicBool,
    live: AtomicUsize,
}

impl Shared {
    fn note(&self, line: String) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() == LOG_MAX {
            log.pop_front();
        }
        log.push_back(line);
    }
}

/// A running dav blobstore; it stops when dropped.
pub struct DavServer {
    port: u16,
    password: String,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// `n` random bytes from the kernel.
pub(crate) fn random_bytes(n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The lower-case hex SHA-1 of `bytes`.
pub fn sha1_hex(bytes: &[u8]) -> String {
    hex(&Sha1::digest(bytes))
}

/// The directory bosh-davcli puts a blob id under: the first byte of its SHA-1, in hex.
pub fn blob_prefix(id: &str) -> String {
    hex(&Sha1::digest(id.as_bytes())[..1])
}

/// Whether `id` is a blob id this store accepts: 1 to 128 of `A-Z a-z 0-9 . _ -`, not
/// starting with a dot (so never `..` or a hidden temp file).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// The blob id in a request target `/XX/ID`, when it is well formed and `XX` matches.
fn target_id(target: &str) -> Option<&str> {
    let rest = target.strip_prefix('/')?;
    let (prefix, id) = rest.split_once('/')?;
    (valid_id(id) && prefix == blob_prefix(id)).then_some(id)
}

impl DavServer {
    /// Starts a blobstore on 127.0.0.1 (a free port) keeping its blobs in `dir`, created if
    /// missing, with a fresh random password.
    pub fn start(dir: &Path) -> Result<DavServer, DavError> {
        fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let password = hex(&random_bytes(16).map_err(io_err("reading /dev/urandom"))?);
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(io_err("listening on 127.0.0.1"))?;
        let port = listener
            .local_addr()
            .map_err(io_err("reading the listening port"))?
            .port();
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{password}"));
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            auth: format!("Basic {auth}"),
            log: Mutex::new(VecDeque::new()),
            stop: AtomicBool::new(false),
            live: AtomicUsize::new(0),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("dav-accept".into())
            .spawn(move || accept_loop(listener, s))
            .map_err(io_err("starting the accept thread"))?;
        Ok(DavServer {
            port,
            password,
            shared,
            accept: Some(accept),
        })
    }

    /// The port on 127.0.0.1 it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The basic-auth password (the user is [`USER`]).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The endpoint URL as a client at `host` reaches it (`http://HOST:PORT`).
    pub fn endpoint(&self, host: &str) -> String {
        format!("http://{host}:{}", self.port)
    }

    /// The agent settings' `blobstore` object for a guest that reaches this host as
    /// `guest_host` (10.0.2.2 under qemu's user network).
    pub fn settings(&self, guest_host: &str) -> serde_json::Value {
        serde_json::json!({
            "provider": "dav",
            "options": {
                "endpoint": self.endpoint(guest_host),
                "user": USER,
                "password": self.password,
            }
        })
    }

    /// Stores `bytes` as a new blob; returns its id (a random UUID) and SHA-1 in hex.
    pub fn put(&self, bytes: &[u8]) -> Result<(String, String), DavError> {
        let r = random_bytes(16).map_err(io_err("reading /dev/urandom"))?;
        let h = hex(&r);
        let id = format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        );
        let tmp = self.shared.dir.join(format!(".put-{id}"));
        fs::write(&tmp, bytes).map_err(io_err(format!("writing {}", tmp.display())))?;
        let dest = self.shared.dir.join(&id);
        fs::rename(&tmp, &dest).map_err(io_err(format!("renaming to {}", dest.display())))?;
        self.shared
            .note(format!("(test) stored {id}, {} bytes", bytes.len()));
        Ok((id, sha1_hex(bytes)))
    }

    /// The file holding blob `id`, if there is one.
    pub fn path(&self, id: &str) -> Option<PathBuf> {
        let p = self.shared.dir.join(id);
        (valid_id(id) && p.is_file()).then_some(p)
    }

    /// The contents of blob `id`, if there is one (read whole: for small blobs).
    pub fn get(&self, id: &str) -> Option<Vec<u8>> {
        fs::read(self.path(id)?).ok()
    }

    /// The member names of blob `id`, a gzipped tar the guest stored (a compiled package, a
    /// logs tarball), in archive order with any leading `./` removed; read as untrusted input
    /// under [`TGZ_ENTRIES_MAX`] entries and [`TGZ_UNPACKED_MAX`] bytes.
    pub fn tgz_names(&self, id: &str) -> Result<Vec<String>, DavError> {
        let blob_err = |why: String| DavError::Blob {
            id: id.to_string(),
            why,
        };
        let path = self
            .path(id)
            .ok_or_else(|| blob_err("there is no such blob".into()))?;
        let f = File::open(&path).map_err(io_err(format!("opening {}", path.display())))?;
        let gz = flate2::read::GzDecoder::new(BufReader::new(f)).take(TGZ_UNPACKED_MAX);
        let guard = crate::untrusted::TarGuard::new(gz).limit_entries(TGZ_ENTRIES_MAX, "a blob");
        let mut archive = tar::Archive::new(guard);
        let mut names = Vec::new();
        let bad = |e: io::Error| blob_err(format!("not a readable gzipped tar: {e}"));
        for entry in archive.entries().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let name = raw.strip_prefix("./").unwrap_or(&raw).to_string();
            if !name.is_empty() {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// The ids of the blobs stored, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = fs::read_dir(&self.shared.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| valid_id(n))
            .collect();
        ids.sort();
        ids
    }

    /// The last requests served (method, path, status, bytes), oldest first, for error messages.
    pub fn log(&self) -> Vec<String> {
        let log = self.shared.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter().cloned().collect()
    }
}

impl Drop for DavServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = conn else {
            // Out of descriptors or the like: do not spin.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        if shared.live.fetch_add(1, Ordering::SeqCst) >= CONNECTIONS_MAX {
            shared.live.fetch_sub(1, Ordering::SeqCst);
            let mut s = stream;
            let _ = http::write_head(&mut s, 503, "Service Unavailable", 0, false, &[]);
            shared.note("refused a connection: too many open".into());
            continue;
        }
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("dav-conn".into())
            .spawn(move || {
                if let Err(e) = serve(stream, &s) {
                    s.note(format!("connection ended: {e}"));
                }
                s.live.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            shared.live.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn serve(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_write_timeout(Some(IDLE_TIMEOUT))?;
    let mut out = BufWriter::new(stream.try_clone()?);
    let mut input = BufReader::new(stream);
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let head = match http::read_head(&mut input) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(()),
            Err(e) => {
                let _ = http::write_head(&mut out, 400, "Bad Request", 0, false, &[]);
                let _ = out.flush();
                return Err(e);
            }
        };
        let keep = handle(&head, &mut input, &mut out, shared)?;
        out.flush()?;
        if !keep {
            let _ = input.get_ref().shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

/// Serves one request; returns whether the connection stays open.
fn handle(
    head: &Head,
    input: &mut BufReader<TcpStream>,
    out: &mut impl Write,
    shared: &Shared,
) -> io::Result<bool> {
    let keep = head.keep_alive();
    let note = |status: u16, extra: &str| {
        shared.note(format!("{} {} {status}{extra}", head.method, head.target));
    };
    if head.header("authorization") != Some(shared.auth.as_str()) {
        note(401, "");
        let keep = discard_body(head, input, keep);
        let h = [("WWW-Authenticate", "Basic realm=\"blobstore\"")];
        http::write_head(out, 401, "Unauthorized", 0, keep, &h)?;
        return Ok(keep);
    }
    let Some(id) = target_id(&head.target) else {
        note(404, " (not a blob path /XX/ID)");
        let keep = discard_body(head, input, keep);
        http::write_head(out, 404, "Not Found", 0, keep, &[])?;
        return Ok(keep);
    };
    let path = shared.dir.join(id);
    match head.method.as_str() {
        "GET" | "HEAD" => match File::open(&path) {
            Ok(mut f) => {
                let len = f.metadata()?.len();
                http::write_head(out, 200, "OK", len, keep, &[])?;
                if head.method == "GET" {
                    io::copy(&mut f, out)?;
                }
                note(200, &format!(", {len} bytes"));
            }
            Err(_) => {
                note(404, "");
                http::write_head(out, 404, "Not Found", 0, keep, &[])?;
            }
        },
        "DELETE" => {
            let status = match fs::remove_file(&path) {
                Ok(()) => 204,
                Err(e) if e.kind() == io::ErrorKind::NotFound => 404,
                Err(e) => return Err(e),
            };
            note(status, "");
            let reason = if status == 204 {
                "No Content"
            } else {
                "Not Found"
            };
            http::write_head(out, status, reason, 0, keep, &[])?;
        }
        "PUT" => return put(head, id, input, out, shared, keep),
        _ => {
            note(405, "");
            http::write_head(out, 405, "Method Not Allowed", 0, false, &[])?;
            return Ok(false);
        }
    }
    Ok(keep)
}

/// Reads and drops a refused request's body of at most [`REFUSED_BODY_MAX`] bytes, so the
/// client reads the answer rather than a reset connection; returns whether the connection can
/// stay open (not when the body was larger or broken).
fn discard_body(head: &Head, input: &mut BufReader<TcpStream>, keep: bool) -> bool {
    let ok = http::copy_body(head, input, &mut io::sink(), REFUSED_BODY_MAX).is_ok();
    keep && ok
}

fn put(
    head: &Head,
    id: &str,
    input: &mut BufReader<TcpStream>,
    out: &mut impl Write,
    shared: &Shared,
    keep: bool,
) -> io::Result<bool> {
    if head
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        out.flush()?;
    }
    let suffix = hex(&random_bytes(6)?);
    let tmp = shared.dir.join(format!(".put-{id}-{suffix}"));
    let mut f = BufWriter::new(File::create(&tmp)?);
    let copied = http::copy_body(head, input, &mut f, BODY_MAX)
        .and_then(|n| f.flush().map(|_| n).map_err(BodyError::Io));
    drop(f);
    match copied {
        Ok(n) => {
            fs::rename(&tmp, shared.dir.join(id))?;
            shared.note(format!("PUT {} 201, {n} bytes", head.target));
            http::write_head(out, 201, "Created", 0, keep, &[])?;
            Ok(keep)
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            match e {
                BodyError::TooLarge => {
                    shared.note(format!("PUT {} 413 (over {BODY_MAX} bytes)", head.target));
                    http::write_head(out, 413, "Payload Too Large", 0, false, &[])?;
                    Ok(false)
                }
                BodyError::Io(e) => Err(e),
            }
        }
    }
}

#[cfg(test)]
#[path = "dav_tests.rs"]
mod tests;
