//! Reading what an ELF file says about the CPU it needs: class, byte order, machine, the ARM
//! float ABI flags and, for 32-bit ARM, the build attributes (`Tag_CPU_arch`, `Tag_FP_arch`,
//! `Tag_Advanced_SIMD_arch`) from the `.ARM.attributes` section.

use std::io::{Read, Seek, SeekFrom};

/// `e_machine` of 32-bit x86.
pub const EM_386: u16 = 3;
/// `e_machine` of 32-bit ARM.
pub const EM_ARM: u16 = 40;
/// `e_machine` of x86-64.
pub const EM_X86_64: u16 = 62;
/// `e_machine` of AArch64.
pub const EM_AARCH64: u16 = 183;
/// ARM EABI flag: hard-float calling convention.
pub const EF_ARM_ABI_FLOAT_HARD: u32 = 0x400;
/// ARM EABI flag: soft-float calling convention.
pub const EF_ARM_ABI_FLOAT_SOFT: u32 = 0x200;
/// Section type of `.ARM.attributes`.
const SHT_ARM_ATTRIBUTES: u32 = 0x7000_0003;

/// What an ELF header (and ARM attributes) say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ElfInfo {
    /// 32 or 64.
    pub bits: u8,
    /// Little-endian.
    pub little_endian: bool,
    /// `e_type` (1 relocatable, 2 executable, 3 shared object/PIE, 4 core).
    pub kind: u16,
    /// `e_machine`.
    pub machine: u16,
    /// `e_flags`.
    pub flags: u32,
    /// `Tag_CPU_arch` for 32-bit ARM, when recorded.
    pub cpu_arch: Option<u64>,
    /// `Tag_FP_arch` for 32-bit ARM, when recorded.
    pub fp_arch: Option<u64>,
    /// `Tag_Advanced_SIMD_arch` (NEON) for 32-bit ARM, when recorded.
    pub simd_arch: Option<u64>,
    /// Why the 32-bit ARM section table or `.ARM.attributes` could not be read, when it
    /// could not (a damaged or hostile file: its CPU floor is unknown).
    pub attributes_unreadable: Option<String>,
}

/// A human name for an `e_machine`.
pub fn machine_name(machine: u16) -> String {
    match machine {
        EM_386 => "i386".into(),
        EM_ARM => "ARM".into(),
        EM_X86_64 => "x86-64".into(),
        EM_AARCH64 => "AArch64".into(),
        8 => "MIPS".into(),
        20 => "PowerPC".into(),
        21 => "PowerPC64".into(),
        22 => "S/390".into(),
        243 => "RISC-V".into(),
        other => format!("machine {other}"),
    }
}

/// A human name for a `Tag_CPU_arch` value.
pub fn cpu_arch_name(v: u64) -> String {
    const NAMES: &[&str] = &[
        "pre-v4", "ARMv4", "ARMv4T", "ARMv5T", "ARMv5TE", "ARMv5TEJ", "ARMv6", "ARMv6KZ",
        "ARMv6T2", "ARMv6K", "ARMv7", "ARMv6-M", "ARMv6S-M", "ARMv7E-M", "ARMv8-A",
    ];
    NAMES
        .get(v as usize)
        .map_or_else(|| format!("CPU arch {v}"), |n| n.to_string())
}

/// Reads `file`'s ELF information; `Ok(None)` when it is not an ELF file.
pub fn read<R: Read + Seek>(file: &mut R) -> std::io::Result<Option<ElfInfo>> {
    let mut ident = [0u8; 64];
    let n = read_up_to(file, &mut ident)?;
    if n < 52 || &ident[..4] != b"\x7fELF" {
        return Ok(None);
    }
    let bits = match ident[4] {
        1 => 32,
        2 => 64,
        _ => return Ok(None),
    };
    let le = match ident[5] {
        1 => true,
        2 => false,
        _ => return Ok(None),
    };
    if bits == 64 && n < 64 {
        return Ok(None);
    }
    let h = Header { b: &ident, le };
    let mut info = ElfInfo {
        bits,
        little_endian: le,
        kind: h.u16(16),
        machine: h.u16(18),
        flags: if bits == 32 { h.u32(36) } else { h.u32(48) },
        ..Default::default()
    };
    if bits == 32 && info.machine == EM_ARM && le {
        // No section table or no attributes section: unknown. A damaged one: said so.
        match arm_attributes(file, &h) {
            Ok(Some(attrs)) => {
                info.cpu_arch = attrs.0;
                info.fp_arch = attrs.1;
                info.simd_arch = attrs.2;
            }
            Ok(None) => {}
            Err(why) => info.attributes_unreadable = Some(why),
        }
    }
    Ok(Some(info))
}

fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

struct Header<'a> {
    b: &'a [u8],
    le: bool,
}

impl Header<'_> {
    fn u16(&self, at: usize) -> u16 {
        let x = [self.b[at], self.b[at + 1]];
        if self.le {
            u16::from_le_bytes(x)
        } else {
            u16::from_be_bytes(x)
        }
    }
    fn u32(&self, at: usize) -> u32 {
        let x = [self.b[at], self.b[at + 1], self.b[at + 2], self.b[at + 3]];
        if self.le {
            u32::from_le_bytes(x)
        } else {
            u32::from_be_bytes(x)
        }
    }
}

type Attrs = (Option<u64>, Option<u64>, Option<u64>);

/// The most bytes of a section header table read (4096 entries of 40 bytes fit).
const SECTION_TABLE_MAX: u64 = 256 << 10;
/// The most bytes of an `.ARM.attributes` section read.
const ATTRIBUTES_MAX: u64 = 1 << 20;

/// Finds `.ARM.attributes` (32-bit little-endian ELF) and reads the CPU, FP and SIMD tags:
/// `Ok(None)` when the file has no section table or no such section, `Err` (why) when either
/// cannot be read. Nothing larger than the caps above is read, nor anything past the end.
fn arm_attributes<R: Read + Seek>(file: &mut R, h: &Header) -> Result<Option<Attrs>, String> {
    let io = |e: std::io::Error| format!("reading it failed: {e}");
    let len = file.seek(SeekFrom::End(0)).map_err(io)?;
    let shoff = u64::from(h.u32(32));
    let shentsize = u64::from(h.u16(46));
    let shnum = u64::from(h.u16(48));
    if shoff == 0 || shnum == 0 {
        return Ok(None);
    }
    if shentsize < 40 {
        return Err(format!(
            "section headers of {shentsize} bytes, fewer than ELF's 40"
        ));
    }
    let size = shentsize * shnum;
    if size > SECTION_TABLE_MAX {
        return Err(format!(
            "a section table of {size} bytes, over the {SECTION_TABLE_MAX}-byte limit"
        ));
    }
    if shoff.saturating_add(size) > len {
        return Err(format!(
            "the section table ({size} bytes at offset {shoff}) ends past the file's {len} bytes"
        ));
    }
    let mut table = vec![0u8; size as usize];
    file.seek(SeekFrom::Start(shoff)).map_err(io)?;
    if read_up_to(file, &mut table).map_err(io)? < table.len() {
        return Err("the section table is cut short".into());
    }
    for i in 0..shnum as usize {
        let s = Header {
            b: &table[i * shentsize as usize..],
            le: true,
        };
        if s.u32(4) != SHT_ARM_ATTRIBUTES {
            continue;
        }
        let (off, size) = (u64::from(s.u32(16)), u64::from(s.u32(20)));
        if size > ATTRIBUTES_MAX {
            return Err(format!(
                "an attributes section of {size} bytes, over the {ATTRIBUTES_MAX}-byte limit"
            ));
        }
        if off.saturating_add(size) > len {
            return Err(format!(
                "the attributes section ({size} bytes at offset {off}) ends past the file's {len} bytes"
            ));
        }
        let mut data = vec![0u8; size as usize];
        file.seek(SeekFrom::Start(off)).map_err(io)?;
        if read_up_to(file, &mut data).map_err(io)? < data.len() {
            return Err("the attributes section is cut short".into());
        }
        return parse_attributes(&data)
            .map(Some)
            .ok_or_else(|| "the attributes section is malformed".to_string());
    }
    Ok(None)
}

/// Parses an `.ARM.attributes` section: format `A`, then `aeabi` subsections with a File
/// (tag 1) sub-subsection of tag/value pairs.
pub fn parse_attributes(data: &[u8]) -> Option<Attrs> {
    if data.first() != Some(&b'A') {
        return None;
    }
    let mut out: Attrs = (None, None, None);
    let mut p = 1;
    while p + 4 <= data.len() {
        let len = u32::from_le_bytes(data[p..p + 4].try_into().ok()?) as usize;
        if len < 5 || p + len > data.len() {
            return None;
        }
        let sub = &data[p + 4..p + len];
        let name_end = sub.iter().position(|&b| b == 0)?;
        if &sub[..name_end] == b"aeabi" {
            let mut q = name_end + 1;
            while q < sub.len() {
                let (tag, n) = uleb(&sub[q..])?;
                let size = u32::from_le_bytes(sub.get(q + n..q + n + 4)?.try_into().ok()?) as usize;
                if size < n + 4 || q + size > sub.len() {
                    return None;
                }
                if tag == 1 {
                    read_file_tags(&sub[q + n + 4..q + size], &mut out)?;
                }
                q += size;
            }
        }
        p += len;
    }
    Some(out)
}

fn read_file_tags(mut d: &[u8], out: &mut Attrs) -> Option<()> {
    while !d.is_empty() {
        let (tag, n) = uleb(d)?;
        d = &d[n..];
        // String-valued tags: 4, 5, 67; tag 32 is a number then a string; else odd > 32 are strings.
        let string = tag == 4 || tag == 5 || tag == 67 || (tag > 32 && tag % 2 == 1);
        if tag == 32 {
            let (_, n) = uleb(d)?;
            d = &d[n..];
        }
        if string || tag == 32 {
            let end = d.iter().position(|&b| b == 0)?;
            d = &d[end + 1..];
            continue;
        }
        let (value, n) = uleb(d)?;
        d = &d[n..];
        match tag {
            6 => out.0 = Some(value),
            10 => out.1 = Some(value),
            12 => out.2 = Some(value),
            _ => {}
        }
    }
    Some(())
}

fn uleb(d: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, b) in d.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}
