//! Fetching URLs: http and https through ureq, `file://` URLs from the local filesystem.
//! Transient network failures are retried; a 404 is reported as such so callers can fall back.

use std::io::Read;
use std::time::Duration;

/// How many times a transient failure is retried.
const ATTEMPTS: u32 = 3;

/// Errors fetching a URL.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The server (or directory) does not have the file.
    #[error("{url}: not found (404); check the mirror URL (--mirror or `mirror:`) and that it carries this suite and architecture")]
    NotFound {
        /// The URL.
        url: String,
    },
    /// The server answered with an error status.
    #[error(
        "{url}: server answered HTTP {code}; try again later or use another mirror (--mirror)"
    )]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status.
        code: u16,
    },
    /// The connection failed.
    #[error("{url}: {reason}; check the network and the mirror URL (--mirror)")]
    Transport {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// Reading a local (`file://`) path failed, or the body stopped early.
    #[error("{url}: {source}")]
    Io {
        /// The URL.
        url: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl HttpError {
    /// Whether the error means "the file does not exist".
    pub fn is_not_found(&self) -> bool {
        matches!(self, HttpError::NotFound { .. })
    }
}

/// What a failed connection to `url` says, without the URL ureq puts first (the errors
/// that carry it name the URL already).
pub fn transport_reason(url: &str, t: &ureq::Transport) -> String {
    let text = t.to_string();
    text.strip_prefix(&format!("{url}: "))
        .unwrap_or(&text)
        .to_string()
}

/// A reusable client (connection pooling for http).
#[derive(Debug, Clone)]
pub struct Http {
    agent: ureq::Agent,
}

impl Default for Http {
    fn default() -> Self {
        Http::new()
    }
}

/// A response body and its length when known.
pub type Body = (Box<dyn Read + Send>, Option<u64>);

impl Http {
    /// A client with connect and read timeouts suited to slow mirrors.
    pub fn new() -> Http {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(20))
            .timeout_read(Duration::from_secs(60))
            .user_agent(concat!("pistemcell/", env!("CARGO_PKG_VERSION")))
            .build();
        Http { agent }
    }

    /// Opens `url` for streaming, retrying transient failures.
    pub fn open(&self, url: &str) -> Result<Body, HttpError> {
        if let Some(path) = url.strip_prefix("file://") {
            return match std::fs::File::open(path) {
                Ok(f) => {
                    let len = f.metadata().ok().map(|m| m.len());
                    Ok((Box::new(f), len))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(HttpError::NotFound { url: url.into() })
                }
                Err(source) => Err(HttpError::Io {
                    url: url.into(),
                    source,
                }),
            };
        }
        let mut last = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(500 * u64::from(attempt)));
            }
            match self.agent.get(url).call() {
                Ok(resp) => {
                    let len = resp.header("Content-Length").and_then(|v| v.parse().ok());
                    return Ok((Box::new(resp.into_reader()), len));
                }
                Err(ureq::Error::Status(404, _)) | Err(ureq::Error::Status(410, _)) => {
                    return Err(HttpError::NotFound { url: url.into() })
                }
                Err(ureq::Error::Status(code, _)) if code < 500 => {
                    return Err(HttpError::Status {
                        url: url.into(),
                        code,
                    })
                }
                Err(ureq::Error::Status(code, _)) => {
                    last = Some(HttpError::Status {
                        url: url.into(),
                        code,
                    })
                }
                Err(ureq::Error::Transport(t)) => {
                    last = Some(HttpError::Transport {
                        url: url.into(),
                        reason: transport_reason(url, &t),
                    })
                }
            }
        }
        Err(last.unwrap_or(HttpError::Transport {
            url: url.into(),
            reason: "no attempt made".into(),
        }))
    }

    /// Fetches `url` into memory (for indices and Release files).
    pub fn get(&self, url: &str) -> Result<Vec<u8>, HttpError> {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let (mut body, len) = self.open(url)?;
            let mut buf = Vec::with_capacity(len.unwrap_or(0).min(256 << 20) as usize);
            match body.read_to_end(&mut buf) {
                Ok(_) if len.is_none_or(|l| l == buf.len() as u64) => return Ok(buf),
                Ok(_) => {
                    last = Some(HttpError::Io {
                        url: url.into(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "body shorter than Content-Length",
                        ),
                    })
                }
                Err(source) => {
                    last = Some(HttpError::Io {
                        url: url.into(),
                        source,
                    })
                }
            }
        }
        Err(last.unwrap_or(HttpError::Transport {
            url: url.into(),
            reason: "no attempt made".into(),
        }))
    }
}

/// Joins a base URL and a relative path with exactly one slash; a `rel` that is already a
/// URL (a package of an extra archive) is returned as it is.
pub fn join(base: &str, rel: &str) -> String {
    if ["http://", "https://", "file://"]
        .iter()
        .any(|p| rel.starts_with(p))
    {
        return rel.to_string();
    }
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        rel.trim_start_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_are_read_and_missing_files_are_not_found() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"hello").unwrap();
        let h = Http::new();
        let base = format!("file://{}", dir.path().display());
        assert_eq!(h.get(&join(&base, "a")).unwrap(), b"hello");
        assert!(h.get(&join(&base, "b")).unwrap_err().is_not_found());
    }

    #[test]
    fn refused_connection_is_a_transport_error_naming_the_url() {
        let e = Http::new().get("http://127.0.0.1:9/x").unwrap_err();
        assert!(matches!(e, HttpError::Transport { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains("127.0.0.1:9/x"), "{text}");
        // Named once, not once by us and again by ureq.
        assert_eq!(text.matches("127.0.0.1:9/x").count(), 1, "{text}");
    }
}
