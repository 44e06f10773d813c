//! The HTTP side of the monit proof: requests sent byte for byte as Go's net/http sends the
//! agent's (HTTP/1.1, Basic auth, `Content-Type: application/x-www-form-urlencoded`,
//! `Accept-Encoding: gzip`), and answers read as Go's client reads them (Content-Length or
//! chunked bodies, transparent gzip).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Where the agent's monit client connects.
pub const MONIT_ADDR: &str = "127.0.0.1:2822";

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub code: u16,
    /// The status line's text after the code.
    pub reason: String,
    /// The body.
    pub body: Vec<u8>,
}

/// Sends one request the way Go's net/http does for the agent, and reads the answer.
pub fn request(
    method: &str,
    target: &str,
    user: &str,
    password: &str,
    body: &str,
) -> Result<Answer, String> {
    use std::fmt::Write as _;
    let mut stream = TcpStream::connect_timeout(
        &MONIT_ADDR.parse().map_err(|e| format!("{e}"))?,
        Duration::from_secs(5),
    )
    .map_err(|e| format!("cannot connect to {MONIT_ADDR}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let auth = base64(format!("{user}:{password}").as_bytes());
    let mut req = String::new();
    let _ = write!(
        req,
        "{method} {target} HTTP/1.1\r\nHost: {MONIT_ADDR}\r\nUser-Agent: Go-http-client/1.1\r\n"
    );
    if method == "POST" {
        let _ = write!(req, "Content-Length: {}\r\n", body.len());
    }
    let _ = write!(
        req,
        "Authorization: Basic {auth}\r\nContent-Type: application/x-www-form-urlencoded\r\nAccept-Encoding: gzip\r\n\r\n{body}"
    );
    stream
        .write_all(req.as_bytes())
        .map_err(|e| format!("sending: {e}"))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if raw.is_empty() => return Err(format!("reading the answer: {e}")),
            Err(_) => break,
        }
        if let Some(done) = complete(&raw) {
            raw.truncate(done);
            break;
        }
    }
    parse_answer(&raw)
}

/// The length of a complete response in `raw` (headers plus Content-Length), if known.
fn complete(raw: &[u8]) -> Option<usize> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    if is_chunked(&head) {
        return raw.ends_with(b"0\r\n\r\n").then_some(raw.len());
    }
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))?
        .trim()
        .parse()
        .ok()?;
    (raw.len() >= end + len).then_some(end + len)
}

fn parse_answer(raw: &[u8]) -> Result<Answer, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            format!(
                "not an HTTP answer: {:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(200)])
            )
        })?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head.lines().next().unwrap_or_default();
    let mut parts = status.splitn(3, ' ');
    let _version = parts.next();
    let code = parts
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line `{status}`"))?;
    let body = &raw[end + 4..];
    let body = if is_chunked(&head.to_ascii_lowercase()) {
        dechunk(body).ok_or("a malformed chunked body")?
    } else {
        body.to_vec()
    };
    // Go's transport asks for gzip itself and inflates the answer transparently.
    let gzipped = head
        .to_ascii_lowercase()
        .lines()
        .any(|l| l.starts_with("content-encoding:") && l.contains("gzip"));
    let body = if gzipped {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .map_err(|e| format!("a gzip body that does not inflate: {e}"))?;
        out
    } else {
        body
    };
    Ok(Answer {
        code,
        reason: parts.next().unwrap_or_default().to_string(),
        body,
    })
}

fn is_chunked(head_lower: &str) -> bool {
    head_lower
        .lines()
        .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"))
}

/// Decodes an HTTP/1.1 chunked body (as Go's client does for the agent).
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&body[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

fn base64(data: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The words of an answer body (monit's error pages are HTML), at most 200 characters.
pub fn body_text(body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .filter(|c| !c.is_control() || *c == ' ')
        .collect();
    // monit's error pages are HTML: keep the words.
    let mut plain = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                plain.push(' ');
            }
            c if !in_tag => plain.push(c),
            _ => {}
        }
    }
    let words: Vec<&str> = plain.split_whitespace().collect();
    let joined = words.join(" ");
    if joined.len() > 200 {
        format!(
            "{}…",
            &joined[..joined.char_indices().nth(200).map_or(joined.len(), |x| x.0)]
        )
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b"vcap:pw"), "dmNhcDpwdw==");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b"ab"), "YWI=");
    }

    #[test]
    fn answers_are_parsed() {
        let a = parse_answer(b"HTTP/1.0 403 Forbidden\r\nContent-Length: 3\r\n\r\nabc").unwrap();
        assert_eq!(
            (a.code, a.reason.as_str(), a.body.as_slice()),
            (403, "Forbidden", &b"abc"[..])
        );
        assert_eq!(
            complete(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nab"),
            None
        );
        assert_eq!(
            complete(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc"),
            Some(41)
        );
    }
}
