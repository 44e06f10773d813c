//! The few pieces of HTTP/1.1 the dav blobstore needs: a request head read under caps, a
//! body streamed from a `Content-Length` or `Transfer-Encoding: chunked` request, and a
//! response head. Enough for Go's `net/http` client (bosh-davcli) and ureq, nothing more.

use std::io::{self, BufRead, Read, Write};

/// The longest request line or header line accepted.
pub const LINE_MAX: usize = 8 << 10;
/// The most header lines accepted in one request.
pub const HEADERS_MAX: usize = 100;

/// One request's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// `GET`, `PUT`, …
    pub method: String,
    /// The request target as sent (`/ab/ID`).
    pub target: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Header names lower-cased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the client wants the connection kept open after this request.
    pub fn keep_alive(&self) -> bool {
        let conn = self.header("connection").unwrap_or("").to_ascii_lowercase();
        if self.version == "HTTP/1.0" {
            conn.contains("keep-alive")
        } else {
            !conn.contains("close")
        }
    }

    /// Whether the body is sent chunked.
    pub fn chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }
}

/// Reads one line ending in `\n` of at most [`LINE_MAX`] bytes, without the line ending.
/// `Ok(None)` at a clean end of stream before any byte.
pub fn read_line<R: BufRead>(r: &mut R) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = r.take(LINE_MAX as u64 + 1).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        let why = if buf.len() > LINE_MAX {
            "a line longer than 8 KiB"
        } else {
            "the connection closed in the middle of a line"
        };
        return Err(io::Error::new(io::ErrorKind::InvalidData, why));
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a line that is not UTF-8"))
}

fn bad(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// Reads a request head. `Ok(None)` when the client closed the connection between requests.
pub fn read_head<R: BufRead>(r: &mut R) -> io::Result<Option<Head>> {
    let line = loop {
        match read_line(r)? {
            None => return Ok(None),
            Some(l) if l.is_empty() => continue, // a stray CRLF between requests is allowed
            Some(l) => break l,
        }
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(format!("a malformed request line {line:?}")));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(bad(format!("an unsupported HTTP version {version:?}")));
    }
    let mut headers = Vec::new();
    loop {
        let Some(l) = read_line(r)? else {
            return Err(bad("the connection closed inside a request head".into()));
        };
        if l.is_empty() {
            break;
        }
        if headers.len() == HEADERS_MAX {
            return Err(bad(format!("more than {HEADERS_MAX} header lines")));
        }
        let Some((n, v)) = l.split_once(':') else {
            return Err(bad(format!("a header line without a colon {l:?}")));
        };
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Ok(Some(Head {
        method: method.to_string(),
        target: target.to_string(),
        version: version.to_string(),
        headers,
    }))
}

/// Why a request body was not copied whole.
#[derive(Debug)]
pub enum BodyError {
    /// The body is larger than the cap.
    TooLarge,
    /// Reading the connection or writing the destination failed, or the framing was bad.
    Io(io::Error),
}

impl From<io::Error> for BodyError {
    fn from(e: io::Error) -> Self {
        BodyError::Io(e)
    }
}

/// Copies the body `head` announces from `r` into `w`, refusing more than `cap` bytes before
/// reading them where the length is announced. Returns the bytes copied.
pub fn copy_body<R: BufRead, W: Write>(
    head: &Head,
    r: &mut R,
    w: &mut W,
    cap: u64,
) -> Result<u64, BodyError> {
    if head.chunked() {
        return copy_chunked(r, w, cap);
    }
    let len = match head.header("content-length") {
        None => 0,
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| bad(format!("a bad Content-Length {v:?}")))?,
    };
    if len > cap {
        return Err(BodyError::TooLarge);
    }
    copy_exact(r, w, len)?;
    Ok(len)
}

fn copy_exact<R: Read, W: Write>(r: &mut R, w: &mut W, len: u64) -> io::Result<()> {
    let n = io::copy(&mut r.take(len), w)?;
    if n != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the body ended after {n} of {len} bytes"),
        ));
    }
    Ok(())
}

fn copy_chunked<R: BufRead, W: Write>(r: &mut R, w: &mut W, cap: u64) -> Result<u64, BodyError> {
    let mut total = 0u64;
    loop {
        let line =
            read_line(r)?.ok_or_else(|| bad("the body ended before its last chunk".into()))?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size_text, 16)
            .map_err(|_| bad(format!("a bad chunk size {line:?}")))?;
        if size == 0 {
            // Trailers, up to the empty line.
            while let Some(l) = read_line(r)? {
                if l.is_empty() {
                    break;
                }
            }
            return Ok(total);
        }
        total = total.checked_add(size).ok_or(BodyError::TooLarge)?;
        if total > cap {
            return Err(BodyError::TooLarge);
        }
        copy_exact(r, w, size)?;
        if read_line(r)?.as_deref() != Some("") {
            return Err(bad("a chunk not followed by CRLF".into()).into());
        }
    }
}

/// Writes a response head with `Content-Length: len` (the body, if any, follows).
pub fn write_head<W: Write>(
    w: &mut W,
    status: u16,
    reason: &str,
    len: u64,
    keep_alive: bool,
    extra: &[(&str, &str)],
) -> io::Result<()> {
    let mut s = format!("HTTP/1.1 {status} {reason}\r\nContent-Length: {len}\r\n");
    s.push_str(if keep_alive {
        "Connection: keep-alive\r\n"
    } else {
        "Connection: close\r\n"
    });
    for (n, v) in extra {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    s.push_str("\r\n");
    w.write_all(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        read_head(&mut text.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn reads_a_head_and_a_chunked_body() {
        let text = "PUT /ab/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;ext\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let mut r = text.as_bytes();
        let h = read_head(&mut r).unwrap().unwrap();
        assert_eq!((h.method.as_str(), h.target.as_str()), ("PUT", "/ab/x"));
        assert!(h.chunked() && h.keep_alive());
        let mut out = Vec::new();
        assert_eq!(copy_body(&h, &mut r, &mut out, 100).unwrap(), 5);
        assert_eq!(out, b"abcde");
        assert_eq!(r, b"NEXT");
    }

    #[test]
    fn refuses_bodies_over_the_cap_before_reading_them() {
        let h = head("PUT / HTTP/1.1\r\nContent-Length: 11\r\n\r\n");
        let mut out = Vec::new();
        let r = copy_body(&h, &mut &b"0123456789a"[..], &mut out, 10);
        assert!(matches!(r, Err(BodyError::TooLarge)));
        assert!(out.is_empty());
        let h = head("PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        let r = copy_body(
            &h,
            &mut &b"6\r\n012345\r\n6\r\n012345\r\n0\r\n\r\n"[..],
            &mut out,
            10,
        );
        assert!(matches!(r, Err(BodyError::TooLarge)));
    }

    #[test]
    fn refuses_malformed_heads_and_short_bodies() {
        assert!(read_head(&mut &b"GET /\r\n\r\n"[..]).is_err());
        assert!(read_head(&mut &b"GET / SPDY/3\r\n\r\n"[..]).is_err());
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(LINE_MAX));
        assert!(read_head(&mut long.as_bytes()).is_err());
        assert!(read_head(&mut &b""[..]).unwrap().is_none());
        let h = head("PUT / HTTP/1.0\r\nContent-Length: 9\r\n\r\n");
        assert!(!h.keep_alive());
        let r = copy_body(&h, &mut &b"abc"[..], &mut Vec::new(), 100);
        assert!(matches!(r, Err(BodyError::Io(_))));
    }
}
