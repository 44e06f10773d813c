//! placeholder

use super::Check;

/// The checks of this topic.
pub fn checks() -> Vec<Check> {
    Vec::new()
}
