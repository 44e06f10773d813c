//! Where the image's agent puts `/var/vcap/data`, read from its `agent.json`, and the check of
//! a raw stemcell's SD card after the agent partitioned it: swap and an ext4 data partition
//! after the root partition, the boot and root partitions as the image has them.

/// Where `/var/vcap/data` goes, by the image's `agent.json` (`Platform.Linux`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataPlan {
    /// On the ephemeral disk the settings name (the VM gets one).
    EphemeralDisk,
    /// On partitions the agent adds to the root disk after the root partition (a Pi's card:
    /// `CreatePartitionIfNoEphemeralDisk`, and the VM has no other disk).
    RootCard(Card),
    /// Nowhere the test can check: the image's agent is told not to set up disks (why).
    Skipped(String),
}

/// The card as the image has it: its device name and the first two partitions (sectors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    /// The card's kernel name (`mmcblk0`).
    pub disk: String,
    /// Partition 1 (the FAT boot partition): first sector and sectors.
    pub boot: (u64, u64),
    /// Partition 2 (root): first sector and sectors.
    pub root: (u64, u64),
}

/// The plan for an image whose agent.json is `agent_json` (`None`: unreadable), booted with
/// its root on an SD card (`card`) or on a virtio disk (`None`).
pub fn plan(agent_json: Option<&serde_json::Value>, card: Option<Card>) -> DataPlan {
    let linux = agent_json.map(|v| &v["Platform"]["Linux"]);
    let flag = |k: &str| linux.is_some_and(|l| l[k] == serde_json::Value::Bool(true));
    if flag("SkipDiskSetup") {
        return DataPlan::Skipped("the image's agent.json sets SkipDiskSetup: its agent leaves /var/vcap/data on the root filesystem and makes no swap (for a raw stemcell, the spec's raw.partition_card: false)".into());
    }
    match card {
        Some(c) if flag("CreatePartitionIfNoEphemeralDisk") => DataPlan::RootCard(c),
        Some(_) => DataPlan::Skipped("the image boots from an SD card with no other disk, and its agent.json neither sets CreatePartitionIfNoEphemeralDisk nor SkipDiskSetup: its agent would stop with \"No ephemeral disk found\"".into()),
        None => DataPlan::EphemeralDisk,
    }
}

/// One partition of the card as the probe read it (`/sys/block`, `blkid -p`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Its number.
    pub number: u32,
    /// First sector.
    pub start: u64,
    /// Sectors.
    pub size: u64,
    /// The MBR type (`0xc`), as blkid prints it.
    pub kind: String,
    /// The filesystem blkid finds (`vfat`, `ext4`, `swap`), or "".
    pub fstype: String,
}

/// Parses the probe's `parts=` field: `N:START:SIZE:TYPE:FSTYPE` joined by commas.
pub fn parse_layout(parts: &str) -> Vec<Part> {
    parts
        .split(',')
        .filter_map(|p| {
            let f: Vec<&str> = p.split(':').collect();
            (f.len() == 5).then_some(())?;
            Some(Part {
                number: f[0].parse().ok()?,
                start: f[1].parse().ok()?,
                size: f[2].parse().ok()?,
                kind: f[3].to_string(),
                fstype: f[4].to_string(),
            })
        })
        .collect()
}

/// The layout in words: `1 vfat 256 MiB at 8192, …`.
pub fn describe(layout: &[Part]) -> String {
    layout
        .iter()
        .map(|p| {
            format!(
                "p{} {} {} MiB at sector {}",
                p.number,
                if p.fstype.is_empty() { "-" } else { &p.fstype },
                p.size / 2048,
                p.start
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the probe saw of `/var/vcap/data` and swap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Data {
    /// The data mount's source (`/dev/mmcblk0p4`).
    pub source: String,
    /// Its filesystem.
    pub fstype: String,
    /// The disk it is on (`mmcblk0`).
    pub disk: String,
    /// Active swap devices.
    pub swap: Vec<String>,
}

/// Judges the card: `Ok(detail)` when the agent made swap and ext4 `/var/vcap/data` after the
/// root partition and left the boot and root partitions as imaged; `Err(why)` otherwise.
pub fn judge(card: &Card, data: &Data, layout: &[Part]) -> Result<String, String> {
    let what = describe(layout);
    if data.disk != card.disk {
        return Err(format!(
            "/var/vcap/data is {} on {} (disk `{}`), not a partition of the card {}",
            data.fstype, data.source, data.disk, card.disk
        ));
    }
    if data.fstype != "ext4" {
        return Err(format!(
            "/var/vcap/data is {} on {}, not ext4",
            data.fstype, data.source
        ));
    }
    let part = |n: u32| layout.iter().find(|p| p.number == n);
    match part(1) {
        Some(p) if (p.start, p.size) == card.boot && p.kind == "0xc" && p.fstype == "vfat" => {}
        other => {
            return Err(format!(
                "the card's boot partition is not as imaged (FAT32, type 0xc, sectors {}+{}): {}; the card: {what}",
                card.boot.0,
                card.boot.1,
                other.map_or("gone".to_string(), |p| format!("{} type {} at {}+{}", p.fstype, p.kind, p.start, p.size))
            ))
        }
    }
    match part(2) {
        Some(p) if (p.start, p.size) == card.root => {}
        other => {
            return Err(format!(
                "the card's root partition moved or changed size (imaged at sectors {}+{}): {}; the card: {what}",
                card.root.0,
                card.root.1,
                other.map_or("gone".to_string(), |p| format!("{}+{}", p.start, p.size))
            ))
        }
    }
    let root_end = card.root.0 + card.root.1;
    let number = |dev: &str| {
        dev.strip_prefix(&format!("/dev/{}p", card.disk))
            .and_then(|n| n.parse::<u32>().ok())
    };
    let data_part = number(&data.source)
        .and_then(part)
        .filter(|p| p.number > 2 && p.start >= root_end)
        .ok_or_else(|| {
            format!(
                "/var/vcap/data is on {}, not a partition after the root partition; the card: {what}",
                data.source
            )
        })?;
    let swap = data
        .swap
        .iter()
        .filter_map(|s| number(s).and_then(part))
        .find(|p| p.number > 2 && p.start >= root_end && p.fstype == "swap")
        .ok_or_else(|| {
            format!(
                "no swap partition after the root partition is in use (swap: {}); the card: {what}",
                if data.swap.is_empty() {
                    "none".to_string()
                } else {
                    data.swap.join(" ")
                }
            )
        })?;
    Ok(format!(
        "ext4 on {} ({} MiB), swap /dev/{}p{} ({} MiB), both after the root partition; boot and root as imaged; the card: {what}",
        data.source,
        data_part.size / 2048,
        card.disk,
        swap.number,
        swap.size / 2048
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> Card {
        Card {
            disk: "mmcblk0".into(),
            boot: (8192, 524288),
            root: (532480, 3000000),
        }
    }

    const LAYOUT: &str = "1:8192:524288:0xc:vfat,2:532480:3000000:0x83:ext4,3:3534848:2097152:0x83:swap,4:5632000:11145216:0x83:ext4";

    fn data() -> Data {
        Data {
            source: "/dev/mmcblk0p4".into(),
            fstype: "ext4".into(),
            disk: "mmcblk0".into(),
            swap: vec!["/dev/mmcblk0p3".into()],
        }
    }

    #[test]
    fn the_plan_follows_agent_json() {
        let j = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap();
        let create = j(r#"{"Platform":{"Linux":{"CreatePartitionIfNoEphemeralDisk":true}}}"#);
        let skip = j(r#"{"Platform":{"Linux":{"SkipDiskSetup":true}}}"#);
        let plain = j(r#"{"Platform":{"Linux":{"PartitionerType":"parted"}}}"#);
        assert_eq!(
            plan(Some(&create), Some(card())),
            DataPlan::RootCard(card())
        );
        assert_eq!(plan(Some(&create), None), DataPlan::EphemeralDisk);
        assert_eq!(plan(Some(&plain), None), DataPlan::EphemeralDisk);
        assert!(
            matches!(plan(Some(&skip), Some(card())), DataPlan::Skipped(w) if w.contains("SkipDiskSetup"))
        );
        assert!(matches!(plan(Some(&skip), None), DataPlan::Skipped(_)));
        assert!(
            matches!(plan(Some(&plain), Some(card())), DataPlan::Skipped(w) if w.contains("No ephemeral disk found"))
        );
    }

    #[test]
    fn a_card_partitioned_by_the_agent_passes() {
        let l = parse_layout(LAYOUT);
        assert_eq!(l.len(), 4);
        let ok = judge(&card(), &data(), &l).unwrap();
        assert!(ok.contains("ext4 on /dev/mmcblk0p4 (5442 MiB)"), "{ok}");
        assert!(ok.contains("swap /dev/mmcblk0p3 (1024 MiB)"), "{ok}");
        assert!(ok.contains("p1 vfat 256 MiB at sector 8192"), "{ok}");
    }

    #[test]
    fn a_wrong_card_fails_naming_what_is_wrong() {
        let l = parse_layout(LAYOUT);
        // The data on the root filesystem's disk, but not ext4.
        let d = Data {
            fstype: "xfs".into(),
            ..data()
        };
        assert!(judge(&card(), &d, &l).unwrap_err().contains("not ext4"));
        // Another disk.
        let d = Data {
            disk: "vdb".into(),
            source: "/dev/vdb2".into(),
            ..data()
        };
        assert!(judge(&card(), &d, &l)
            .unwrap_err()
            .contains("not a partition of the card"));
        // The boot partition reformatted or retyped.
        let bad = parse_layout(&LAYOUT.replace("0xc:vfat", "0x83:ext4"));
        assert!(judge(&card(), &data(), &bad)
            .unwrap_err()
            .contains("boot partition is not as imaged"));
        // The root partition grown.
        let grown = parse_layout(&LAYOUT.replace("532480:3000000", "532480:3000001"));
        assert!(judge(&card(), &data(), &grown)
            .unwrap_err()
            .contains("root partition moved"));
        // Data on the root partition itself.
        let d = Data {
            source: "/dev/mmcblk0p2".into(),
            ..data()
        };
        assert!(judge(&card(), &d, &l)
            .unwrap_err()
            .contains("not a partition after the root"));
        // No swap.
        let d = Data {
            swap: Vec::new(),
            ..data()
        };
        assert!(judge(&card(), &d, &l).unwrap_err().contains("swap: none"));
        // Garbage in the layout is ignored, not a panic.
        assert!(parse_layout("x:y,1:2").is_empty());
    }
}
