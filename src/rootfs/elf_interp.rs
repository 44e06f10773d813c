//! The two things the host toolbox needs from an ELF file: its machine, and its program
//! interpreter (`PT_INTERP`), which it rewrites in place to a shorter path, as
//! `patchelf --set-interpreter` does when the new path fits.

/// `p_type` of the program interpreter's segment.
const PT_INTERP: u32 = 3;

/// An ELF file's layout: word size and byte order.
struct Layout {
    bits64: bool,
    le: bool,
}

impl Layout {
    fn of(b: &[u8]) -> Option<Layout> {
        if b.len() < 52 || &b[..4] != b"\x7fELF" {
            return None;
        }
        let bits64 = match b[4] {
            1 => false,
            2 if b.len() >= 64 => true,
            _ => return None,
        };
        let le = match b[5] {
            1 => true,
            2 => false,
            _ => return None,
        };
        Some(Layout { bits64, le })
    }

    fn u16(&self, b: &[u8], at: usize) -> Option<u64> {
        let s: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(
            if self.le {
                u16::from_le_bytes(s)
            } else {
                u16::from_be_bytes(s)
            }
            .into(),
        )
    }

    fn u32(&self, b: &[u8], at: usize) -> Option<u64> {
        let s: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(
            if self.le {
                u32::from_le_bytes(s)
            } else {
                u32::from_be_bytes(s)
            }
            .into(),
        )
    }

    fn u64(&self, b: &[u8], at: usize) -> Option<u64> {
        let s: [u8; 8] = b.get(at..at.checked_add(8)?)?.try_into().ok()?;
        Some(if self.le {
            u64::from_le_bytes(s)
        } else {
            u64::from_be_bytes(s)
        })
    }

    fn word(&self, b: &[u8], at: usize) -> Option<u64> {
        if self.bits64 {
            self.u64(b, at)
        } else {
            self.u32(b, at)
        }
    }
}

/// The `e_machine` of an ELF file's header bytes; `None` when they are not ELF.
pub fn machine(b: &[u8]) -> Option<u16> {
    let l = Layout::of(b)?;
    l.u16(b, 18).map(|m| m as u16)
}

/// The `e_machine` of the file at `path`, if it is ELF.
pub fn machine_of_file(path: &std::path::Path) -> Option<u16> {
    let mut head = [0u8; 64];
    let mut f = std::fs::File::open(path).ok()?;
    let n = std::io::Read::read(&mut f, &mut head).ok()?;
    machine(&head[..n])
}

/// This program's ELF machine: read from `/proc/self/exe`, which stays readable when the
/// binary is replaced while it runs (its path then ends in " (deleted)").
pub fn host_machine() -> Option<u16> {
    machine_of_file(std::path::Path::new("/proc/self/exe"))
        .or_else(|| machine_of_file(&std::env::current_exe().ok()?))
}

/// Where the interpreter path lies in the file: offset and size (with its NUL), when the file
/// has a `PT_INTERP` segment inside it.
fn interp_range(b: &[u8]) -> Option<(usize, usize)> {
    let l = Layout::of(b)?;
    let (phoff, phentsize, phnum) = if l.bits64 {
        (l.u64(b, 32)?, l.u16(b, 54)?, l.u16(b, 56)?)
    } else {
        (l.u32(b, 28)?, l.u16(b, 42)?, l.u16(b, 44)?)
    };
    for i in 0..phnum {
        let at = usize::try_from(phoff.checked_add(i.checked_mul(phentsize)?)?).ok()?;
        if l.u32(b, at)? != u64::from(PT_INTERP) {
            continue;
        }
        let field = |off: usize| l.word(b, at.checked_add(off)?);
        let (offset, size) = if l.bits64 {
            (field(8)?, field(32)?)
        } else {
            (field(4)?, field(16)?)
        };
        let (offset, size) = (usize::try_from(offset).ok()?, usize::try_from(size).ok()?);
        b.get(offset..offset.checked_add(size)?)?;
        return Some((offset, size));
    }
    None
}

/// The program interpreter an ELF file names (`/lib64/ld-linux-x86-64.so.2`), if any.
pub fn interp(b: &[u8]) -> Option<String> {
    let (offset, size) = interp_range(b)?;
    let raw = &b[offset..offset + size];
    let end = raw.iter().position(|&c| c == 0)?;
    String::from_utf8(raw[..end].to_vec()).ok()
}

/// Rewrites the interpreter path to `new`, which must fit where the old one was (the rest is
/// filled with NULs). Errors say why it cannot.
pub fn set_interp(b: &mut [u8], new: &str) -> Result<(), String> {
    let (offset, size) = interp_range(b).ok_or("it has no program interpreter")?;
    if new.len() + 1 > size || new.as_bytes().contains(&0) {
        return Err(format!(
            "the interpreter path {new} does not fit in {size} bytes"
        ));
    }
    let slot = &mut b[offset..offset + size];
    slot.fill(0);
    slot[..new.len()].copy_from_slice(new.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal 64-bit little-endian ELF header with one PT_INTERP segment.
    fn elf64(interp_path: &str) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[18..20].copy_from_slice(&62u16.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&1u16.to_le_bytes());
        let off = b.len() as u64;
        let mut path = interp_path.as_bytes().to_vec();
        path.push(0);
        b[64..68].copy_from_slice(&PT_INTERP.to_le_bytes());
        b[72..80].copy_from_slice(&off.to_le_bytes());
        b[96..104].copy_from_slice(&(path.len() as u64).to_le_bytes());
        b.extend_from_slice(&path);
        b
    }

    #[test]
    fn reads_and_rewrites_the_interpreter() {
        let mut b = elf64("/lib64/ld-linux-x86-64.so.2");
        assert_eq!(machine(&b), Some(62));
        assert_eq!(interp(&b).as_deref(), Some("/lib64/ld-linux-x86-64.so.2"));
        set_interp(&mut b, "/.x/ld.so").unwrap();
        assert_eq!(interp(&b).as_deref(), Some("/.x/ld.so"));
        let e = set_interp(&mut b, "/a/path/longer/than/the/old/one/ld.so").unwrap_err();
        assert!(e.contains("does not fit"), "{e}");
        assert_eq!(interp(&b).as_deref(), Some("/.x/ld.so"));
    }

    #[test]
    fn the_host_executable_has_an_interpreter_or_none() {
        // Whatever the test binary is, reading it never panics, and a rewrite of a copy to a
        // shorter path reads back.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(machine(&exe).is_some());
        if let Some(old) = interp(&exe) {
            let mut copy = exe.clone();
            set_interp(&mut copy, "/l").unwrap();
            assert_eq!(interp(&copy).as_deref(), Some("/l"));
            assert!(old.len() > 2);
        }
    }

    #[test]
    fn truncated_or_hostile_headers_are_not_elf() {
        assert_eq!(machine(b"\x7fELF"), None);
        let mut b = elf64("/l");
        // A program header table pointing past the end.
        b[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(interp(&b), None);
        let mut b = elf64("/l");
        b[96..104].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(interp(&b), None);
        assert!(set_interp(&mut b, "/x").is_err());
    }
}
