//! OpenPGP ASCII armor: public key blocks (dearmoring for gpgv) and clearsigned messages
//! (split into the signed text and its signature, as apt does).

use super::SignatureError;

const BEGIN_KEY: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
const END_KEY: &str = "-----END PGP PUBLIC KEY BLOCK-----";
const BEGIN_SIGNED: &str = "-----BEGIN PGP SIGNED MESSAGE-----";
const BEGIN_SIG: &str = "-----BEGIN PGP SIGNATURE-----";
const END_SIG: &str = "-----END PGP SIGNATURE-----";

/// Converts an ASCII-armored public key file to binary; binary input passes through unchanged.
pub fn dearmor(data: &[u8]) -> Result<Vec<u8>, SignatureError> {
    dearmor_named(data, "the key data")
}

/// [`dearmor`], naming `what` in errors.
pub(super) fn dearmor_named(data: &[u8], what: &str) -> Result<Vec<u8>, SignatureError> {
    let bad = |reason: &str| SignatureError::BadKey {
        what: what.to_string(),
        reason: reason.to_string(),
    };
    let text = String::from_utf8_lossy(data);
    if !text.contains(BEGIN_KEY) {
        if text.trim_start().starts_with("-----BEGIN PGP") {
            return Err(bad(
                "it is armored but holds no PUBLIC KEY BLOCK (a secret key or a signature?)",
            ));
        }
        let is_keybox = data.get(8..12) == Some(b"KBXf".as_slice());
        return match data.first() {
            _ if is_keybox => Err(bad(
                "it is a GnuPG keybox (.kbx); export the key with `gpg --export FINGERPRINT`",
            )),
            Some(b) if b & 0x80 != 0 && packet_tag(*b) == 6 => Ok(data.to_vec()),
            Some(b) if b & 0x80 != 0 && packet_tag(*b) == 5 => {
                Err(bad("it is a secret key; export the public key"))
            }
            _ => Err(bad(
                "it is neither an armored nor a binary OpenPGP public key",
            )),
        };
    }
    let mut out = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while lines.by_ref().any(|l| l == BEGIN_KEY) {
        let mut body = String::new();
        let mut crc = None;
        let mut ended = false;
        for line in lines.by_ref() {
            if line == END_KEY {
                ended = true;
                break;
            }
            if line.is_empty() || line.contains(':') {
                continue; // blank separator or armor header such as `Comment: …`
            }
            if let Some(sum) = line.strip_prefix('=').filter(|s| s.len() == 4) {
                crc = Some(sum.to_string());
            } else if crc.is_none() {
                body.push_str(line);
            } else {
                return Err(bad("text after the armor checksum line"));
            }
        }
        if !ended {
            return Err(bad(
                "the armored block has no END line (truncated download?)",
            ));
        }
        let bytes =
            base64_decode(&body).ok_or_else(|| bad("the armored block is not valid base64"))?;
        if let Some(sum) = crc {
            let want =
                base64_decode(&sum).ok_or_else(|| bad("the armor checksum is not valid base64"))?;
            let got = crc24(&bytes);
            if want != [(got >> 16) as u8, (got >> 8) as u8, got as u8] {
                return Err(bad("the armor checksum does not match (corrupt download?)"));
            }
        }
        if bytes.is_empty() {
            return Err(bad("the armored block is empty"));
        }
        out.extend(bytes);
    }
    Ok(out)
}

/// The OpenPGP packet tag of a packet's first byte (old or new format).
fn packet_tag(b: u8) -> u8 {
    if b & 0x40 != 0 {
        b & 0x3f
    } else {
        (b >> 2) & 0x0f
    }
}

/// Decodes standard base64 (whitespace ignored); `None` if invalid.
pub(super) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits, mut pad) = (0u32, 0u32, 0usize);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                pad += 1;
                continue;
            }
            _ => return None,
        };
        if pad > 0 {
            return None; // data after padding
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be padding zeros; 6 leftover bits means a truncated quantum.
    (bits < 6 && acc == 0 && pad <= 2).then_some(out)
}

/// The OpenPGP armor checksum (RFC 4880 §6.1).
pub(super) fn crc24(data: &[u8]) -> u32 {
    let mut crc: u32 = 0xB7_04CE;
    for &b in data {
        crc ^= u32::from(b) << 16;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x100_0000 != 0 {
                crc ^= 0x186_4CFB;
            }
        }
    }
    crc & 0xFF_FFFF
}

/// Splits a clearsigned text into (signed text without its final newline, signature armor).
pub(super) fn split_clearsigned(text: &str) -> Result<(String, String), String> {
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    match lines.by_ref().find(|l| !l.trim().is_empty()) {
        Some(l) if l.trim_end() == BEGIN_SIGNED => {}
        _ => return Err(format!("it does not start with `{BEGIN_SIGNED}`")),
    }
    for line in lines.by_ref() {
        if line.trim().is_empty() {
            break;
        }
        if !line.starts_with("Hash:") {
            return Err(format!("unexpected armor header `{line}`"));
        }
    }
    let mut body: Vec<&str> = Vec::new();
    let mut in_body = true;
    for line in lines.by_ref() {
        if line.trim_end() == BEGIN_SIG {
            in_body = false;
            break;
        }
        let line = match line.strip_prefix("- ") {
            Some(rest) => rest,
            None if line.starts_with('-') => {
                return Err(format!("line `{line}` starts with an unescaped dash"))
            }
            None => line,
        };
        body.push(line.trim_end_matches([' ', '\t']));
    }
    if in_body {
        return Err(format!("the signed text is not followed by `{BEGIN_SIG}`"));
    }
    let mut signature = format!("{BEGIN_SIG}\n");
    let mut ended = false;
    for line in lines.by_ref() {
        signature.push_str(line.trim_end());
        signature.push('\n');
        if line.trim_end() == END_SIG {
            ended = true;
            break;
        }
    }
    if !ended {
        return Err(format!(
            "the signature has no `{END_SIG}` line (truncated download?)"
        ));
    }
    if lines.any(|l| !l.trim().is_empty()) {
        return Err("there is unsigned text after the signature".to_string());
    }
    Ok((body.join("\n"), signature))
}
