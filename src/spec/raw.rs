//! `raw`: the settings of the `raw` infrastructure, a Pi booting its own SD card.

use serde::{Deserialize, Serialize};

use super::Infrastructure;

/// The `raw` mapping.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawSpec {
    /// Whether the agent partitions the card at first boot (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_card: Option<bool>,
}

/// Whether the agent makes swap and `/var/vcap/data` on the card (default true), or why
/// `raw` may not be given: it applies to the `raw` infrastructure only.
pub fn partition_card(
    raw: Option<&RawSpec>,
    infrastructure: Infrastructure,
) -> Result<bool, String> {
    match raw {
        Some(r) if infrastructure != Infrastructure::Raw => Err(format!(
            "`raw: {{partition_card: {}}}` applies to `infrastructure: raw` only, and this spec's is `{}`: remove it, or set `infrastructure: raw`",
            r.partition_card.map_or("~".to_string(), |b| b.to_string()),
            infrastructure.name()
        )),
        r => Ok(r.and_then(|r| r.partition_card).unwrap_or(true)),
    }
}
