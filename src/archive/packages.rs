//! deb822 paragraphs and the `Packages` index: package records and their relation fields.

use std::cmp::Ordering;
use std::io::Read;

use super::version;

/// Errors reading a Packages index or a relation field.
#[derive(Debug, thiserror::Error)]
pub enum PackagesError {
    /// A relation field (Depends, Pre-Depends, Provides…) could not be parsed.
    #[error("cannot parse relation `{text}`: {reason}")]
    Relation {
        /// The offending relation text.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A paragraph of the index lacks the `Package` field.
    #[error(
        "{origin}: paragraph {index} has no Package field; the index is malformed, \
         check the mirror (`--mirror`) or delete the cached index and retry"
    )]
    MissingPackage {
        /// The index (URL or file) being read.
        origin: String,
        /// The 1-based paragraph number.
        index: usize,
    },
    /// A package record lacks a field every Packages index entry must have.
    #[error(
        "{origin}: package `{package}` has no {field} field; the index is malformed or is not \
         a Packages index, check the mirror (`--mirror`) or delete the cached index and retry"
    )]
    MissingField {
        /// The index (URL or file) being read.
        origin: String,
        /// The package whose record is incomplete.
        package: String,
        /// The missing field.
        field: &'static str,
    },
    /// A package record has a field whose value cannot be used.
    #[error(
        "{origin}: package `{package}` has an invalid {field} field: {reason}; \
         check the mirror (`--mirror`) or delete the cached index and retry"
    )]
    InvalidField {
        /// The index (URL or file) being read.
        origin: String,
        /// The package whose record is invalid.
        package: String,
        /// The invalid field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A compressed index could not be decompressed.
    #[error(
        "{name}: cannot decompress ({format}): {source}; the file may be truncated or corrupt, \
         delete it from the download cache and retry"
    )]
    Decompress {
        /// The index file name.
        name: String,
        /// The compression format tried.
        format: &'static str,
        /// The decoder's error.
        source: std::io::Error,
    },
    /// The index uses a compression this tool does not read.
    #[error(
        "{name}: compression `{format}` is not supported; use the .xz, .gz or uncompressed index"
    )]
    UnsupportedCompression {
        /// The index file name.
        name: String,
        /// The file's suffix.
        format: String,
    },
}

/// Splits deb822 text into paragraphs of `(field, value)` pairs in file order.
///
/// Paragraphs are separated by blank lines. Field names are kept as written. A value's
/// continuation lines (lines starting with a space or tab) are appended with `'\n'`, each
/// without its first whitespace character and trailing whitespace; when the first line's
/// value is empty (as in `SHA256:`), the value starts with the first continuation line.
/// Lines starting with `#` and lines that are neither fields nor continuations are skipped.
pub fn parse_paragraphs(text: &str) -> Vec<Vec<(String, String)>> {
    let mut paragraphs = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for raw in text.lines() {
        let line = raw.trim_end();
        if line.is_empty() {
            if !current.is_empty() {
                paragraphs.push(std::mem::take(&mut current));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some((_, value)) = current.last_mut() {
                let cont = &line[1..];
                if !value.is_empty() {
                    value.push('\n');
                }
                value.push_str(cont);
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if !name.is_empty() && !name.contains(char::is_whitespace) {
                current.push((name.to_string(), value.trim().to_string()));
            }
        }
    }
    if !current.is_empty() {
        paragraphs.push(current);
    }
    paragraphs
}

/// The value of field `name` in a paragraph, matching the name case-insensitively.
pub fn field<'a>(para: &'a [(String, String)], name: &str) -> Option<&'a str> {
    para.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A version relation operator in a dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relation {
    /// `<<`: strictly earlier.
    Lt,
    /// `<=` (or the obsolete `<`): earlier or equal.
    Le,
    /// `=`: exactly equal.
    Eq,
    /// `>=` (or the obsolete `>`): later or equal.
    Ge,
    /// `>>`: strictly later.
    Gt,
}

impl Relation {
    /// Whether an ordering of (candidate version vs. constraint version) satisfies this relation.
    pub fn holds(&self, ord: Ordering) -> bool {
        match self {
            Relation::Lt => ord == Ordering::Less,
            Relation::Le => ord != Ordering::Greater,
            Relation::Eq => ord == Ordering::Equal,
            Relation::Ge => ord != Ordering::Less,
            Relation::Gt => ord == Ordering::Greater,
        }
    }

    /// The operator as written in control files.
    pub fn as_str(&self) -> &'static str {
        match self {
            Relation::Lt => "<<",
            Relation::Le => "<=",
            Relation::Eq => "=",
            Relation::Ge => ">=",
            Relation::Gt => ">>",
        }
    }
}

/// One dependency on a package name, with an optional arch qualifier and version constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dep {
    /// The package (or virtual package) name.
    pub name: String,
    /// The arch qualifier after `:` (`any`, `native`, or an architecture), if any.
    pub arch: Option<String>,
    /// The version constraint, if any.
    pub constraint: Option<(Relation, String)>,
}

impl Dep {
    /// Whether a package at `version` satisfies this dependency's version constraint.
    pub fn satisfied_by(&self, version: &str) -> bool {
        match &self.constraint {
            None => true,
            Some((rel, want)) => rel.holds(version::compare(version, want)),
        }
    }
}

impl std::fmt::Display for Dep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        if let Some(arch) = &self.arch {
            write!(f, ":{arch}")?;
        }
        if let Some((rel, v)) = &self.constraint {
            write!(f, " ({} {v})", rel.as_str())?;
        }
        Ok(())
    }
}

/// Alternatives of one dependency (`a | b`): any one of them satisfies it.
pub type Alternatives = Vec<Dep>;

/// Parses a relation field such as `libc6 (>= 2.36), awk | mawk, foo:any [amd64] <!nocheck>`.
///
/// Architecture restrictions (`[…]`) and build profiles (`<…>`) are accepted and ignored;
/// empty entries (e.g. from a trailing comma) are skipped.
pub fn parse_relations(text: &str) -> Result<Vec<Alternatives>, PackagesError> {
    let mut out = Vec::new();
    for group in text.split(',') {
        if group.trim().is_empty() {
            continue;
        }
        let alts = group
            .split('|')
            .map(parse_dep)
            .collect::<Result<Vec<_>, _>>()?;
        out.push(alts);
    }
    Ok(out)
}

/// Parses one `name[:arch] [(op version)] [[archs]] [<profiles>]` term.
fn parse_dep(term: &str) -> Result<Dep, PackagesError> {
    let err = |reason: &str| PackagesError::Relation {
        text: term.trim().to_string(),
        reason: reason.to_string(),
    };
    let s = term.trim();
    let end = s
        .find(|c: char| c.is_whitespace() || matches!(c, '(' | '[' | '<'))
        .unwrap_or(s.len());
    let (full_name, mut rest) = (&s[..end], s[end..].trim_start());
    let (name, arch) = match full_name.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (full_name, None),
    };
    if name.is_empty() {
        return Err(err("empty package name"));
    }
    if name.contains(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_'))) {
        return Err(err("invalid character in package name"));
    }
    if arch.is_some_and(str::is_empty) {
        return Err(err("empty architecture qualifier after `:`"));
    }
    let mut constraint = None;
    if let Some(after) = rest.strip_prefix('(') {
        let close = after.find(')').ok_or_else(|| err("missing `)`"))?;
        let inner = after[..close].trim();
        rest = after[close + 1..].trim_start();
        let (rel, ver) = [
            ("<<", Relation::Lt),
            ("<=", Relation::Le),
            (">=", Relation::Ge),
            (">>", Relation::Gt),
            ("=", Relation::Eq),
            ("<", Relation::Le),
            (">", Relation::Ge),
        ]
        .into_iter()
        .find_map(|(op, rel)| inner.strip_prefix(op).map(|v| (rel, v.trim())))
        .ok_or_else(|| err("version constraint needs one of <<, <=, =, >=, >>"))?;
        if ver.is_empty() || ver.contains(char::is_whitespace) {
            return Err(err("version constraint needs exactly one version"));
        }
        constraint = Some((rel, ver.to_string()));
    }
    // Architecture restrictions and build profiles: skip balanced [...] and <...> groups.
    while !rest.is_empty() {
        let close = match rest.as_bytes()[0] {
            b'[' => ']',
            b'<' => '>',
            _ => return Err(err("unexpected text after the package name")),
        };
        let end = rest
            .find(close)
            .ok_or_else(|| err("unterminated `[` or `<` group"))?;
        rest = rest[end + 1..].trim_start();
    }
    Ok(Dep {
        name: name.to_string(),
        arch: arch.map(str::to_string),
        constraint,
    })
}

/// One binary package as described by a Packages index.
#[derive(Debug, Clone)]
pub struct Package {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Architecture (`arm64`, `armhf`, `all`…).
    pub architecture: String,
    /// Priority (`required`, `important`, `standard`, `optional`…), if given.
    pub priority: Option<String>,
    /// Whether `Essential: yes`.
    pub essential: bool,
    /// The Depends field.
    pub depends: Vec<Alternatives>,
    /// The Pre-Depends field.
    pub pre_depends: Vec<Alternatives>,
    /// The Provides field (virtual packages, possibly versioned with `=`).
    pub provides: Vec<Dep>,
    /// Path of the .deb relative to the archive root.
    pub filename: String,
    /// Size of the .deb in bytes.
    pub size: u64,
    /// SHA-256 of the .deb, lowercase hex.
    pub sha256: String,
    /// The Multi-Arch field, if any.
    pub multi_arch: Option<String>,
    /// The Source field as written (may carry a version in parentheses), if any.
    pub source: Option<String>,
}

/// Parses a Packages index; `origin` (the index URL or path) is named in errors.
pub fn parse_packages(text: &str, origin: &str) -> Result<Vec<Package>, PackagesError> {
    parse_paragraphs(text)
        .iter()
        .enumerate()
        .map(|(i, para)| parse_package(para, origin, i + 1))
        .collect()
}

/// Builds one [`Package`] from its paragraph.
fn parse_package(
    para: &[(String, String)],
    origin: &str,
    index: usize,
) -> Result<Package, PackagesError> {
    let name = field(para, "Package")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| PackagesError::MissingPackage {
            origin: origin.to_string(),
            index,
        })?;
    let missing = |field: &'static str| PackagesError::MissingField {
        origin: origin.to_string(),
        package: name.to_string(),
        field,
    };
    let invalid = |field: &'static str, reason: String| PackagesError::InvalidField {
        origin: origin.to_string(),
        package: name.to_string(),
        field,
        reason,
    };
    let required = |f: &'static str| {
        field(para, f)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| missing(f))
    };
    let relations = |f: &'static str| -> Result<Vec<Alternatives>, PackagesError> {
        field(para, f).map_or(Ok(Vec::new()), |v| {
            parse_relations(v).map_err(|e| invalid(f, e.to_string()))
        })
    };

    let version = required("Version")?;
    let architecture = required("Architecture")?;
    let filename = required("Filename")?;
    let size_text = required("Size")?;
    let size = size_text
        .parse::<u64>()
        .map_err(|e| invalid("Size", format!("`{size_text}`: {e}")))?;
    let sha256 = required("SHA256")?.to_ascii_lowercase();
    if sha256.len() != 64 || !sha256.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(invalid(
            "SHA256",
            format!("`{sha256}` is not 64 hex digits"),
        ));
    }
    let mut provides = Vec::new();
    for group in relations("Provides")? {
        if group.len() != 1 {
            return Err(invalid(
                "Provides",
                "alternatives (`|`) are not allowed in Provides".to_string(),
            ));
        }
        provides.extend(group);
    }
    Ok(Package {
        name: name.to_string(),
        version: version.to_string(),
        architecture: architecture.to_string(),
        priority: field(para, "Priority").map(str::to_string),
        essential: field(para, "Essential").is_some_and(|v| v.eq_ignore_ascii_case("yes")),
        depends: relations("Depends")?,
        pre_depends: relations("Pre-Depends")?,
        provides,
        filename: filename.to_string(),
        size,
        sha256,
        multi_arch: field(para, "Multi-Arch").map(str::to_string),
        source: field(para, "Source").map(str::to_string),
    })
}

/// Decompresses an index according to its file name's suffix (`.xz`, `.gz`, `.zst`, or none).
///
/// Invalid UTF-8 (only ever seen in descriptions) is replaced, not rejected: digests are
/// checked on the raw bytes before this.
pub fn decompress_index(name: &str, bytes: &[u8]) -> Result<String, PackagesError> {
    let mut out = Vec::new();
    let decode = |format: &'static str, result: std::io::Result<usize>| {
        result
            .map(|_| ())
            .map_err(|source| PackagesError::Decompress {
                name: name.to_string(),
                format,
                source,
            })
    };
    if name.ends_with(".xz") {
        decode(
            "xz",
            xz2::read::XzDecoder::new_multi_decoder(bytes).read_to_end(&mut out),
        )?;
    } else if name.ends_with(".gz") {
        decode(
            "gzip",
            flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out),
        )?;
    } else if name.ends_with(".zst") {
        decode(
            "zstd",
            zstd::stream::read::Decoder::new(bytes).and_then(|mut d| d.read_to_end(&mut out)),
        )?;
    } else if let Some(ext) = [".bz2", ".lzma", ".lz4"]
        .iter()
        .find(|e| name.ends_with(*e))
    {
        return Err(PackagesError::UnsupportedCompression {
            name: name.to_string(),
            format: ext.to_string(),
        });
    } else {
        out = bytes.to_vec();
    }
    Ok(match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

#[cfg(test)]
mod tests;
