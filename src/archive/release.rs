//! The `Release` file of a suite (the content of `InRelease` once its signature is checked):
//! suite metadata and the SHA-256 of every index under `dists/SUITE/`.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::packages::{field, parse_paragraphs};

/// Errors reading a Release file or checking a file against it.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The text still carries its OpenPGP armor.
    #[error(
        "{origin}: the Release text still carries its OpenPGP signature armor; \
         it must be verified and stripped (signature::verify_inrelease) before parsing"
    )]
    StillSigned {
        /// The Release file (URL or path).
        origin: String,
    },
    /// The text has no fields at all.
    #[error(
        "{origin}: the Release file is empty; check the suite name and the mirror (`--mirror`)"
    )]
    Empty {
        /// The Release file (URL or path).
        origin: String,
    },
    /// The Release file lists no SHA-256 digests.
    #[error(
        "{origin}: the Release file has no SHA256 section, so its indices cannot be verified; \
         the archive is too old or not a Debian-format archive, check `--mirror` and the suite"
    )]
    NoSha256 {
        /// The Release file (URL or path).
        origin: String,
    },
    /// A line of the SHA256 section is malformed.
    #[error("{origin}: bad SHA256 line `{line}`: {reason}; the Release file is corrupt, check the mirror (`--mirror`)")]
    BadSha256Line {
        /// The Release file (URL or path).
        origin: String,
        /// The offending line.
        line: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A downloaded file does not match the size or digest it should have.
    #[error(
        "{name}: expected {expected_size} bytes with sha256 {expected_sha256}, got {actual_size} bytes \
         with sha256 {actual_sha256}; the mirror may be mid-sync (retry in a while) or serving a tampered \
         file (try another `--mirror`)"
    )]
    Mismatch {
        /// The file that was checked.
        name: String,
        /// Size the signed metadata gives.
        expected_size: u64,
        /// Size of the data received.
        actual_size: u64,
        /// Digest the signed metadata gives.
        expected_sha256: String,
        /// Digest of the data received.
        actual_sha256: String,
    },
}

/// A parsed Release file.
#[derive(Debug, Clone)]
pub struct Release {
    /// The Origin field.
    pub origin: Option<String>,
    /// The Suite field (e.g. `stable`).
    pub suite: Option<String>,
    /// The Codename field (e.g. `bookworm`).
    pub codename: Option<String>,
    /// The Date field, as written.
    pub date: Option<String>,
    /// The Valid-Until field, as written.
    pub valid_until: Option<String>,
    /// Architectures the suite carries.
    pub architectures: Vec<String>,
    /// Components the suite carries (e.g. `main`, `contrib`).
    pub components: Vec<String>,
    /// Whether indices may be fetched by hash (`Acquire-By-Hash: yes`).
    pub acquire_by_hash: bool,
    /// Path relative to `dists/SUITE/` → (size, lowercase hex SHA-256).
    pub sha256: BTreeMap<String, (u64, String)>,
}

impl Release {
    /// The size and SHA-256 the Release file gives for `path` (relative to `dists/SUITE/`).
    pub fn index_entry(&self, path: &str) -> Option<(u64, &str)> {
        self.sha256
            .get(path)
            .map(|(size, digest)| (*size, digest.as_str()))
    }

    /// The `by-hash` path (relative to `dists/SUITE/`) for `path`, if the Release lists it.
    pub fn by_hash_path(&self, path: &str) -> Option<String> {
        let (_, digest) = self.index_entry(path)?;
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        Some(if dir.is_empty() {
            format!("by-hash/SHA256/{digest}")
        } else {
            format!("{dir}/by-hash/SHA256/{digest}")
        })
    }
}

/// Parses Release text (already verified and stripped of its signature).
pub fn parse_release(text: &str, origin: &str) -> Result<Release, ReleaseError> {
    if text.trim_start().starts_with("-----BEGIN PGP") {
        return Err(ReleaseError::StillSigned {
            origin: origin.to_string(),
        });
    }
    let paragraphs = parse_paragraphs(text);
    let para = paragraphs.first().ok_or_else(|| ReleaseError::Empty {
        origin: origin.to_string(),
    })?;
    let text_field = |name: &str| field(para, name).map(str::to_string);
    let list = |name: &str| {
        field(para, name).map_or_else(Vec::new, |v| {
            v.split_whitespace().map(str::to_string).collect()
        })
    };
    let sums = field(para, "SHA256").ok_or_else(|| ReleaseError::NoSha256 {
        origin: origin.to_string(),
    })?;

    let mut sha256 = BTreeMap::new();
    for line in sums.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let bad = |reason: &str| ReleaseError::BadSha256Line {
            origin: origin.to_string(),
            line: line.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [digest, size, path] = parts[..] else {
            return Err(bad("expected `<sha256> <size> <path>`"));
        };
        if digest.len() != 64 || !digest.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad("the digest is not 64 hex digits"));
        }
        let size = size
            .parse::<u64>()
            .map_err(|_| bad("the size is not a number"))?;
        sha256.insert(path.to_string(), (size, digest.to_ascii_lowercase()));
    }
    if sha256.is_empty() {
        return Err(ReleaseError::NoSha256 {
            origin: origin.to_string(),
        });
    }
    Ok(Release {
        origin: text_field("Origin"),
        suite: text_field("Suite"),
        codename: text_field("Codename"),
        date: text_field("Date"),
        valid_until: text_field("Valid-Until"),
        architectures: list("Architectures"),
        components: list("Components"),
        acquire_by_hash: field(para, "Acquire-By-Hash")
            .is_some_and(|v| v.eq_ignore_ascii_case("yes")),
        sha256,
    })
}

/// Checks `data` (named `name` in errors) against the expected size and SHA-256.
pub fn check_digest(name: &str, data: &[u8], size: u64, sha256: &str) -> Result<(), ReleaseError> {
    let actual = sha256_hex(data);
    if data.len() as u64 == size && actual.eq_ignore_ascii_case(sha256.trim()) {
        return Ok(());
    }
    Err(ReleaseError::Mismatch {
        name: name.to_string(),
        expected_size: size,
        actual_size: data.len() as u64,
        expected_sha256: sha256.trim().to_ascii_lowercase(),
        actual_sha256: actual,
    })
}

/// The SHA-256 of `data` as lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use std::fmt::Write;
    Sha256::digest(data)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn sample() -> String {
        format!(
            "Origin: Debian\nLabel: Debian\nSuite: stable\nCodename: bookworm\n\
             Date: Sat, 10 Feb 2024 09:41:50 UTC\nValid-Until: Sat, 17 Feb 2024 09:41:50 UTC\n\
             Acquire-By-Hash: yes\nArchitectures: all amd64 arm64 armhf\n\
             Components: main contrib non-free-firmware non-free\nDescription: Debian 12.5\n\
             MD5Sum:\n d41d8cd98f00b204e9800998ecf8427e 0 main/binary-arm64/Packages\n\
             SHA256:\n {} 0 main/binary-arm64/Packages\n \
             {} 123 main/binary-arm64/Packages.xz\n",
            EMPTY_SHA,
            "AB".repeat(32)
        )
    }

    #[test]
    fn parses_fields_and_sha256_section() {
        let r = parse_release(&sample(), "test").unwrap();
        assert_eq!(r.origin.as_deref(), Some("Debian"));
        assert_eq!(r.suite.as_deref(), Some("stable"));
        assert_eq!(r.codename.as_deref(), Some("bookworm"));
        assert_eq!(r.date.as_deref(), Some("Sat, 10 Feb 2024 09:41:50 UTC"));
        assert!(r.valid_until.is_some());
        assert!(r.acquire_by_hash);
        assert_eq!(r.architectures, ["all", "amd64", "arm64", "armhf"]);
        assert_eq!(r.components.len(), 4);
        assert_eq!(r.sha256.len(), 2);
        assert_eq!(
            r.index_entry("main/binary-arm64/Packages.xz"),
            Some((123, "ab".repeat(32).as_str()))
        );
        assert_eq!(
            r.index_entry("main/binary-arm64/Packages"),
            Some((0, EMPTY_SHA))
        );
        assert_eq!(r.index_entry("main/binary-armhf/Packages"), None);
        assert_eq!(
            r.by_hash_path("main/binary-arm64/Packages").unwrap(),
            format!("main/binary-arm64/by-hash/SHA256/{EMPTY_SHA}")
        );
    }

    #[test]
    fn missing_or_bad_sha256_is_an_error_naming_the_file() {
        let text = "Origin: X\nMD5Sum:\n d41d8cd98f00b204e9800998ecf8427e 0 main/Packages\n";
        let err = parse_release(text, "http://m.invalid/dists/x/InRelease").unwrap_err();
        assert!(matches!(err, ReleaseError::NoSha256 { .. }));
        assert!(err
            .to_string()
            .contains("http://m.invalid/dists/x/InRelease"));

        let text = sample().replace(" 123 ", " lots ");
        assert!(matches!(
            parse_release(&text, "t"),
            Err(ReleaseError::BadSha256Line { .. })
        ));
        assert!(matches!(
            parse_release("", "t"),
            Err(ReleaseError::Empty { .. })
        ));
        let signed = format!(
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n{}",
            sample()
        );
        assert!(matches!(
            parse_release(&signed, "t"),
            Err(ReleaseError::StillSigned { .. })
        ));
    }

    #[test]
    fn digest_check_accepts_match_and_reports_mismatch() {
        assert_eq!(sha256_hex(b""), EMPTY_SHA);
        check_digest("empty", b"", 0, &EMPTY_SHA.to_uppercase()).unwrap();
        let err = check_digest("main/binary-arm64/Packages", b"x", 0, EMPTY_SHA).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("main/binary-arm64/Packages"), "{msg}");
        assert!(
            msg.contains(EMPTY_SHA) && msg.contains(&sha256_hex(b"x")),
            "{msg}"
        );
        assert!(msg.contains("0 bytes") && msg.contains("1 bytes"), "{msg}");
        assert!(
            msg.contains("mid-sync") && msg.contains("tampered"),
            "{msg}"
        );
        // Right size, wrong digest.
        assert!(check_digest("f", b"y", 1, &sha256_hex(b"x")).is_err());
    }
}

/// Parses a Release `Date`/`Valid-Until` value (RFC 2822, e.g. `Sat, 01 Nov 2025 00:00:00 UTC`)
/// into seconds since the epoch; `None` when it does not parse.
pub fn parse_date(text: &str) -> Option<i64> {
    let text = text.trim();
    let text = text.split_once(',').map_or(text, |(_, rest)| rest).trim();
    let mut parts = text.split_whitespace();
    let day: i64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|x| x.parse::<i64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    let offset = match parts.next() {
        None | Some("UTC" | "GMT" | "Z") => 0,
        Some(z) if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
            let v: i64 = z[1..].parse().ok()?;
            let secs = (v / 100) * 3600 + (v % 100) * 60;
            if z.starts_with('-') {
                -secs
            } else {
                secs
            }
        }
        Some(_) => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + s - offset)
}

#[cfg(test)]
mod date_tests {
    use super::parse_date;

    #[test]
    fn release_dates_parse_to_epoch_seconds() {
        assert_eq!(parse_date("Thu, 01 Jan 1970 00:00:00 UTC"), Some(0));
        assert_eq!(
            parse_date("Sat, 01 Nov 2025 00:00:00 UTC"),
            Some(1_761_955_200)
        );
        assert_eq!(
            parse_date("Sat, 10 Jun 2023 08:54:45 +0100"),
            Some(1_686_383_685)
        );
        assert_eq!(parse_date("not a date"), None);
    }
}
