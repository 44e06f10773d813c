//! Named checks and the exceptions a spec may grant them: the audit's rules ([`CHECKS`], each
//! with a [`Severity`]) and an allow-list entry ([`AllowEntry`]) that accepts a check failing on
//! a path, and the `check-os` exceptions ([`OsAllow`]). The spec validates its allow-lists against these names, and profiles carry entries
//! of their own, so they live below both.

use serde::{Deserialize, Serialize};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth a look; does not fail a build.
    Warn,
    /// The file cannot run on the target: fails a build.
    Fail,
}

/// One audit rule: (name, severity, what it checks).
pub const CHECKS: &[(&str, Severity, &str)] = &[
    ("machine", Severity::Fail, "the ELF machine, class and byte order are the target's (no x86, no 64-bit code on armhf)"),
    ("float-abi", Severity::Fail, "32-bit ARM code uses the hard-float ABI of armhf (no armel soft-float code)"),
    ("float-abi-unknown", Severity::Warn, "32-bit ARM programs record their float ABI (statically linked Go programs do not)"),
    ("cpu-arch", Severity::Fail, "the ARM build attribute Tag_CPU_arch is within the spec's CPU floor (ARMv7 code does not run on a Pi Zero/1)"),
    ("fp-arch", Severity::Fail, "the ARM build attribute Tag_FP_arch is within the floor (ARMv6 Pis have VFPv2)"),
    ("neon", Severity::Fail, "no NEON (Advanced SIMD) code when the floor is ARMv6"),
    ("attributes", Severity::Fail, "32-bit ARM files have a readable section table and `.ARM.attributes` (a damaged one hides the CPU the code needs)"),
];

/// One accepted audit exception.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AllowEntry {
    /// The path in the rootfs; `*` matches any run of characters.
    pub path: String,
    /// Only these checks are accepted for it (default: every check).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
    /// Why this is acceptable (required).
    #[serde(default)]
    pub reason: String,
}

impl AllowEntry {
    /// Whether the entry accepts `check` failing on `path`.
    pub fn accepts(&self, path: &str, check: &str) -> bool {
        (self.checks.is_empty() || self.checks.iter().any(|c| c == check))
            && glob_match(&self.path, path)
    }
}

/// One entry of a spec's `check_os.allow`: a `check-os` check that may fail, and why.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OsAllow {
    /// The check's id (`pistemcell check-os --list`).
    pub check: String,
    /// Why it may fail on this image (required).
    #[serde(default)]
    pub reason: String,
}

/// Matches `text` against `pattern`, where `*` matches any run of characters.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(glob_match(
            "/usr/lib/*/libgcrypt.so.20*",
            "/usr/lib/arm-linux-gnueabihf/libgcrypt.so.20.4.1"
        ));
        assert!(!glob_match(
            "/usr/lib/*/libgcrypt.so.20*",
            "/usr/lib/libz.so"
        ));
        assert!(glob_match("/a", "/a"));
        assert!(!glob_match("/a*b", "/a"));
        assert!(glob_match("*", "/anything"));
    }
}
