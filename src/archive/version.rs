//! Debian version comparison, exactly as dpkg does it (`dpkg --compare-versions`).
//!
//! A version is `[epoch:]upstream[-revision]`. Epochs compare numerically; upstream and
//! revision compare with dpkg's `verrevcmp`: alternating runs of non-digits (compared
//! character by character, `~` before everything including the end of the string, letters
//! before non-letters) and digits (compared numerically, leading zeros ignored).

use std::cmp::Ordering;

/// Compares two Debian versions the way dpkg does.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| verrevcmp(ua.as_bytes(), ub.as_bytes()))
        .then_with(|| verrevcmp(ra.as_bytes(), rb.as_bytes()))
}

/// Splits a version into (epoch, upstream, revision) as dpkg's `parseversion` does.
///
/// The epoch is the part before the first `:` when it is all digits (otherwise the colon is
/// left in the upstream version, which dpkg would reject but we compare leniently); the
/// revision is the part after the last `-`, empty when there is none.
fn split(version: &str) -> (u64, &str, &str) {
    let version = version.trim();
    let (epoch, rest) = match version.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit()) => {
            (e.parse::<u64>().unwrap_or(u64::MAX), rest)
        }
        _ => (0, version),
    };
    match rest.rsplit_once('-') {
        Some((upstream, revision)) => (epoch, upstream, revision),
        None => (epoch, rest, ""),
    }
}

/// The sort weight of one non-digit character (0 stands for the end of the string).
fn order(c: u8) -> i32 {
    if c.is_ascii_digit() {
        0
    } else if c.is_ascii_alphabetic() {
        i32::from(c)
    } else if c == b'~' {
        -1
    } else if c != 0 {
        i32::from(c) + 256
    } else {
        0
    }
}

/// dpkg's `verrevcmp` on one version part.
fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let at = |i: usize| a.get(i).copied().unwrap_or(0);
    let bt = |j: usize| b.get(j).copied().unwrap_or(0);
    let (mut i, mut j) = (0usize, 0usize);
    while i < a.len() || j < b.len() {
        // Non-digit prefix, character by character.
        while (at(i) != 0 && !at(i).is_ascii_digit()) || (bt(j) != 0 && !bt(j).is_ascii_digit()) {
            let (ac, bc) = (order(at(i)), order(bt(j)));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        // Numeric part: skip leading zeros, then the longer run wins, else the first difference.
        while at(i) == b'0' {
            i += 1;
        }
        while bt(j) == b'0' {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while at(i).is_ascii_digit() && bt(j).is_ascii_digit() {
            if first_diff == Ordering::Equal {
                first_diff = at(i).cmp(&bt(j));
            }
            i += 1;
            j += 1;
        }
        if at(i).is_ascii_digit() {
            return Ordering::Greater;
        }
        if bt(j).is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::{Equal, Greater, Less};

    /// Pairs checked against `dpkg --compare-versions`.
    const TABLE: &[(&str, &str, Ordering)] = &[
        ("1.0~rc1", "1.0", Less),
        ("1.0~rc1", "1.0~rc2", Less),
        ("1.0~~", "1.0~", Less),
        ("1.0~", "1.0", Less),
        ("1:0.1", "2.0", Greater),
        ("0:1.0", "1.0", Equal),
        ("2.36-9+deb12u4", "2.36-9+deb12u10", Less),
        ("1.0-1", "1.0-1.1", Less),
        ("1.0-1", "1.0-1", Equal),
        ("1.0", "1.0-0", Equal),
        ("1.0", "1.0-1", Less),
        ("1.0a", "1.0", Greater),
        ("1.0a", "1.0+", Less),
        ("1.0+", "1.0.", Less),
        ("1.0-1", "1.0+1-1", Less),
        ("1.10", "1.9", Greater),
        ("1.002", "1.2", Equal),
        ("1.2.3", "1.2.3.0", Less),
        ("2:1.0", "1:9.9", Greater),
        ("10:1", "9:1", Greater),
        ("1.0-1ubuntu1", "1.0-1", Greater),
        ("1.0-1~bpo1", "1.0-1", Less),
        ("7.88.1-10+deb12u5", "7.88.1-10+deb12u12", Less),
        ("252.22-1~deb12u1", "252.22-1", Less),
        ("1.2-3-4", "1.2-3-5", Less),
        ("1.2-3-4", "1.2-3", Greater),
        ("a", "b", Less),
        ("", "", Equal),
        ("0", "", Equal),
        ("1.0.0+dfsg", "1.0.0", Greater),
        ("2.0~beta1+really1.9", "2.0", Less),
        ("1:2.1-3", "1:2.1-3", Equal),
        (" 1.0 ", "1.0", Equal),
        ("99999999999999999999", "1", Greater),
    ];

    #[test]
    fn matches_dpkg_on_known_pairs() {
        for (a, b, want) in TABLE {
            assert_eq!(compare(a, b), *want, "compare({a:?}, {b:?})");
            assert_eq!(compare(b, a), want.reverse(), "compare({b:?}, {a:?})");
        }
    }

    #[test]
    fn sorting_gives_dpkg_order() {
        let mut v = vec!["1.0", "1.0~rc1", "1:0.1", "1.0-1", "1.0+b1", "0.9", "1.0~"];
        v.sort_by(|a, b| compare(a, b));
        assert_eq!(
            v,
            ["0.9", "1.0~", "1.0~rc1", "1.0", "1.0-1", "1.0+b1", "1:0.1"]
        );
    }

    #[test]
    fn non_numeric_epoch_is_compared_leniently_without_panic() {
        assert_eq!(compare("x:1", "x:1"), Equal);
        assert_eq!(compare("x:1", "x:2"), Less);
    }
}
