//! What the agent and stemcell check modules share: building a check, and a few tree tests.

use super::test::Verdict;
use super::tree::Tree;
use super::{Applies, Check, Test};

/// An applicable check.
pub fn check(id: &'static str, source: &'static str, title: &'static str, test: Test) -> Check {
    Check {
        id,
        source,
        title,
        test,
        applies: Applies::Yes,
    }
}

/// A check that does not apply here, for reason `why`.
pub fn not_here(
    id: &'static str,
    source: &'static str,
    title: &'static str,
    test: Test,
    why: &'static str,
) -> Check {
    Check {
        id,
        source,
        title,
        test,
        applies: Applies::No(why),
    }
}

/// A check with its own applicability (an infrastructure scope).
pub fn only(
    id: &'static str,
    source: &'static str,
    title: &'static str,
    test: Test,
    applies: Applies,
) -> Check {
    Check {
        id,
        source,
        title,
        test,
        applies,
    }
}

/// Passes when `path` is not a regular file (missing, or something else).
pub fn not_a_file(t: &Tree, path: &str) -> Verdict {
    match t.meta_followed(path)? {
        Some(m) if m.file => Err(format!("{path} is a file")),
        _ => Ok(format!("{path} is not a file")),
    }
}
