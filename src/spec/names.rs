//! The spec's one-word choices (`architecture`, `cpu`, `infrastructure`, `image.method`):
//! read from a plain string only, so a list, a map or a tag gets a message naming the
//! accepted words instead of serde's "expected a YAML tag".
//! [`word_enum!`] implements it.

use std::fmt::Write;

/// Whether `name` is a valid Debian package name (policy 5.6.1).
pub fn valid_package_name(name: &str) -> bool {
    name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

/// Checks that a mirror URL has a scheme pistemcell can fetch from.
pub fn check_url(url: &str) -> Result<(), String> {
    if url.starts_with("http://") || url.starts_with("https://") || url.starts_with("file://") {
        Ok(())
    } else {
        Err("expected an http://, https:// or file:// URL".into())
    }
}

/// `` `a`, `b` or `c` ``.
pub(crate) fn list(words: &[&str]) -> String {
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push_str(if i + 1 == words.len() { " or " } else { ", " });
        }
        let _ = write!(out, "`{w}`");
    }
    out
}

/// Implements `Deserialize` for a unit-variant enum from its spec words.
macro_rules! word_enum {
    ($ty:ty, $($word:literal => $variant:expr),+ $(,)?) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                const WORDS: &[&str] = &[$($word),+];
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        write!(f, "one plain word: {}", $crate::spec::names::list(WORDS))
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$ty, E> {
                        match v {
                            $($word => Ok($variant),)+
                            other => Err(E::unknown_variant(other, WORDS)),
                        }
                    }
                    fn visit_enum<A: serde::de::EnumAccess<'de>>(
                        self,
                        a: A,
                    ) -> Result<$ty, A::Error> {
                        let (word, v): (String, _) = a.variant()?;
                        serde::de::VariantAccess::unit_variant(v)?;
                        self.visit_str(&word)
                    }
                }
                // Formats that are not text (the spec reference's field lister) use the enum
                // protocol; YAML gives a plain string or the error naming the words.
                if d.is_human_readable() {
                    d.deserialize_str(V)
                } else {
                    d.deserialize_enum(stringify!($ty), WORDS, V)
                }
            }
        }
    };
}

use super::inputs::ImageMethod;
use super::{Arch, Cpu, Infrastructure};

word_enum!(Arch, "armhf" => Arch::Armhf, "arm64" => Arch::Arm64);
word_enum!(Cpu, "armv6" => Cpu::Armv6, "armv7" => Cpu::Armv7, "armv8" => Cpu::Armv8);
word_enum!(
    Infrastructure,
    "bakery" => Infrastructure::Bakery,
    "raw" => Infrastructure::Raw,
    "warden" => Infrastructure::Warden,
);
word_enum!(ImageMethod, "loop" => ImageMethod::Loop, "rootless" => ImageMethod::Rootless);

#[cfg(test)]
mod tests {
    use crate::spec::{Arch, Cpu, Infrastructure};

    #[test]
    fn words_only_with_the_accepted_ones_named() {
        assert_eq!(super::list(&["a", "b", "c"]), "`a`, `b` or `c`");
        let a: Arch = serde_norway::from_str("arm64").unwrap();
        assert_eq!(a, Arch::Arm64);
        let e = serde_norway::from_str::<Arch>("[armhf]")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sequence") && e.contains("`armhf` or `arm64`"),
            "{e}"
        );
        assert!(!e.contains("YAML tag"), "{e}");
        let e = serde_norway::from_str::<Cpu>("{a: 1}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`armv6`, `armv7` or `armv8`"), "{e}");
        let e = serde_norway::from_str::<Infrastructure>("cloud")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`cloud`") && e.contains("`bakery`"), "{e}");
    }
}
