//! The members of a stemcell nobody here built, as `inspect`, `diff` and `audit` read them:
//! plain relative names (no `..`, not absolute), regular (or GNU sparse) files only (a top `./` directory
//! entry aside), each name once; metadata members read under the size caps of `untrusted`.

use std::collections::HashSet;
use std::io::Read;

use crate::untrusted::{self, escape_bytes, CappedRead};

/// The members seen so far of one stemcell.
#[derive(Default)]
pub struct Members {
    seen: HashSet<Vec<u8>>,
}

/// The name of a member with `./` removed, as raw bytes.
pub fn raw_name<R: Read>(entry: &tar::Entry<'_, R>) -> Vec<u8> {
    let raw = entry.path_bytes();
    let mut b: &[u8] = &raw;
    while let Some(rest) = b.strip_prefix(b"./") {
        b = rest;
    }
    b.to_vec()
}

impl Members {
    /// Checks the next member: `Ok(None)` for the top directory entry, else its name (escaped
    /// for display when it is not plain UTF-8). Refuses names that escape (`../x`, `/abs`),
    /// anything not a regular file (links, devices, FIFOs, directories), and
    /// a name given twice, naming the member.
    pub fn check<R: Read>(&mut self, entry: &tar::Entry<'_, R>) -> Result<Option<String>, String> {
        let name = raw_name(entry);
        let shown = escape_bytes(&name);
        let t = entry.header().entry_type();
        if name.is_empty() || name == b"." {
            return if t.is_dir() {
                Ok(None)
            } else {
                Err(format!(
                    "member `{}`: an empty name",
                    escape_bytes(&entry.path_bytes())
                ))
            };
        }
        if name.starts_with(b"/") {
            return Err(format!(
                "member `{shown}`: an absolute name; a stemcell's members are relative, so it was not made by BOSH tooling"
            ));
        }
        if name.split(|b| *b == b'/').any(|c| c == b"..") {
            return Err(format!(
                "member `{shown}`: the name climbs out of the archive with `..`; refused"
            ));
        }
        if name.contains(&0) {
            return Err(format!("member `{shown}`: a NUL byte in the name"));
        }
        // pistemcell writes a disk `image` as a GNU sparse file: that is a regular file too.
        if !matches!(
            t,
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse
        ) {
            let kind = if t.is_symlink() {
                let target = entry.link_name_bytes().unwrap_or_default();
                format!("a symlink to `{}`", escape_bytes(&target))
            } else if t.is_hard_link() {
                let target = entry.link_name_bytes().unwrap_or_default();
                format!("a hard link to `{}`", escape_bytes(&target))
            } else if t.is_dir() {
                "a directory".to_string()
            } else if t.is_character_special() {
                "a character device".to_string()
            } else if t.is_block_special() {
                "a block device".to_string()
            } else if t.is_fifo() {
                "a FIFO".to_string()
            } else {
                format!("entry type {:?}", t.as_byte() as char)
            };
            return Err(format!(
                "member `{shown}` is {kind}, not a regular file; a stemcell holds only regular files"
            ));
        }
        if !self.seen.insert(name) {
            return Err(format!(
                "member `{shown}` appears twice; which one counts would be ambiguous"
            ));
        }
        Ok(Some(shown))
    }
}

/// Reads the metadata member `name` whole when it holds at most `cap` bytes (checked on its
/// header before reading, and while reading); `what` names the cap.
pub fn read_capped<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    name: &str,
    cap: u64,
    what: &str,
) -> Result<Vec<u8>, String> {
    let too_large = |size: u64| {
        format!(
            "member {name}: {size} bytes, over the {cap}-byte limit for {what}; it is not a file pistemcell wrote"
        )
    };
    let size = entry.header().size().unwrap_or(u64::MAX);
    if size > cap {
        return Err(too_large(size));
    }
    untrusted::read_stream_capped(entry, cap).map_err(|e| match e {
        CappedRead::Io(e) => format!("member {name}: {e}"),
        CappedRead::TooLarge => too_large(cap + 1),
    })
}

/// [`read_capped`] as text; invalid UTF-8 is refused, naming the member.
pub fn read_text<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    name: &str,
    cap: u64,
    what: &str,
) -> Result<String, String> {
    String::from_utf8(read_capped(entry, name, cap, what)?)
        .map_err(|e| format!("member {name}: not UTF-8 text ({e})"))
}

/// Parses the YAML manifest `text` after checking its nesting (see
/// [`untrusted::check_yaml_depth`]).
pub fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str, name: &str) -> Result<T, String> {
    untrusted::check_yaml_depth(text, untrusted::YAML_DEPTH_MAX)
        .map_err(|e| format!("member {name}: {e}"))?;
    serde_norway::from_str(text).map_err(|e| format!("member {name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(entries: &[(&[u8], tar::EntryType)]) -> Result<Vec<Option<String>>, String> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, t) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*t);
            h.set_size(0);
            let f = &mut h.as_old_mut().name;
            f[..name.len()].copy_from_slice(name);
            h.set_cksum();
            b.append(&h, &[][..]).unwrap();
        }
        let raw = b.into_inner().unwrap();
        let mut a = tar::Archive::new(&raw[..]);
        let mut m = Members::default();
        a.entries().unwrap().map(|e| m.check(&e.unwrap())).collect()
    }

    #[test]
    fn only_plain_regular_members_once() {
        use tar::EntryType as T;
        let ok = check(&[
            (b"./", T::Directory),
            (b"./image", T::Regular),
            (b"stemcell.MF", T::Regular),
        ]);
        assert_eq!(
            ok.unwrap(),
            vec![None, Some("image".into()), Some("stemcell.MF".into())]
        );
        for (name, t, needle) in [
            (&b"../x"[..], T::Regular, "`../x`: the name climbs"),
            (b"/etc/x", T::Regular, "`/etc/x`: an absolute"),
            (b"image", T::Symlink, "a symlink"),
            (b"image", T::Char, "a character device"),
            (b"image", T::Fifo, "a FIFO"),
            (b"image", T::Link, "a hard link"),
            (b"sub", T::Directory, "a directory"),
        ] {
            let e = check(&[(name, t)]).unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
        let e = check(&[(b"image", T::Regular), (b"./image", T::Regular)]).unwrap_err();
        assert!(e.contains("appears twice"), "{e}");
        assert_eq!(
            check(&[(b"a\n\xff", T::Regular)]).unwrap(),
            vec![Some("a\\n\\xff".into())]
        );
    }
}
