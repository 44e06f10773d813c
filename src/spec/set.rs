//! `--set key.sub=value` overrides, applied to the parsed YAML document before its types are
//! checked again.

use super::SpecError;

/// Applies one `key.sub=value` override to a YAML document; the value is read as YAML.
pub(super) fn apply_set(doc: &mut serde_norway::Value, arg: &str) -> Result<(), SpecError> {
    use serde_norway::Value;
    let err = |reason: &str| SpecError::Set {
        arg: arg.to_string(),
        reason: reason.to_string(),
    };
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| err("expected key=value, e.g. --set architecture=arm64"))?;
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(err(
            "the key is empty; expected key=value, e.g. --set architecture=arm64",
        ));
    }
    let value: Value = if value.is_empty() {
        Value::String(String::new())
    } else {
        crate::untrusted::check_yaml_depth(value, crate::untrusted::YAML_DEPTH_MAX)
            .map_err(|reason| err(&format!("the value: {reason}")))?;
        serde_norway::from_str(value)
            .map_err(|e| err(&format!("the value is not valid YAML: {e}")))?
    };
    if doc.is_null() {
        *doc = Value::Mapping(Default::default());
    }
    let mut node = doc;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let map = node
            .as_mapping_mut()
            .ok_or_else(|| err(&format!("`{}` is not a mapping", parts[..i].join("."))))?;
        let k = Value::String(part.to_string());
        if i + 1 == parts.len() {
            map.insert(k, value);
            return Ok(());
        }
        node = map
            .entry(k)
            .or_insert_with(|| Value::Mapping(Default::default()));
    }
    Ok(())
}
