//! Tests of the boot test's checks.
use super::super::guest::parse_line;
use super::*;
use crate::boottest::card::{Card, DataPlan};

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn the_agent_must_stay_up_and_a_crash_loop_fails() {
    let mut c = Checks::new(Some("5.2.5".into()), None, DataPlan::EphemeralDisk);
    c.probe(&parse_line("PSTC agent pid=10 age=3").unwrap(), s(20));
    assert!(c.pending(CheckId::AgentStarted));
    c.probe(&parse_line("PSTC agent pid=10 age=11").unwrap(), s(28));
    assert_eq!(
        c.get(CheckId::AgentStarted),
        &Status::Passed(s(28), "pid 10, up 11 s".into())
    );

    // Up once, then exiting: the checks that wait on it fail at once.
    let mut c = Checks::new(None, None, DataPlan::EphemeralDisk);
    c.probe(&parse_line("PSTC agent pid=10 age=12").unwrap(), s(30));
    for (i, pid) in ["11", "12", "13", "14"].iter().enumerate() {
        c.probe(
            &parse_line(&format!("PSTC agent pid={pid} age=2")).unwrap(),
            s(40 + i as u64),
        );
    }
    assert!(matches!(c.get(CheckId::AgentStarted), Status::Passed(..)));
    assert!(matches!(c.get(CheckId::Ping), Status::Failed(_, m) if m.contains("keeps exiting")));

    let mut c = Checks::new(None, None, DataPlan::EphemeralDisk);
    for i in 0..4 {
        let l = "PSTC agent none sv=down:_/etc/sv/agent:_1s,_normally_up,_want_up";
        c.probe(&parse_line(l).unwrap(), s(i));
    }
    assert!(
        matches!(c.get(CheckId::AgentStarted), Status::Failed(_, m) if m.contains("does not stay up"))
    );

    let mut c = Checks::new(None, None, DataPlan::EphemeralDisk);
    for (i, pid) in ["1", "2", "3", "4", "5"].iter().enumerate() {
        c.probe(
            &parse_line(&format!("PSTC agent pid={pid} age=1")).unwrap(),
            s(i as u64),
        );
    }
    assert!(
        matches!(c.get(CheckId::AgentStarted), Status::Failed(_, m) if m.contains("does not stay up"))
    );
}

#[test]
fn a_foreign_agent_binary_fails_by_its_elf_machine() {
    let mut c = Checks::new(None, Some("no agent"), DataPlan::EphemeralDisk);
    c.expect_arch("armhf");
    c.probe(
        &parse_line("PSTC agent-elf machine=40 class=1").unwrap(),
        s(9),
    );
    assert!(c.pending(CheckId::AgentStarted));
    c.probe(
        &parse_line("PSTC agent-elf machine=62 class=2").unwrap(),
        s(9),
    );
    match c.get(CheckId::AgentStarted) {
        Status::Failed(_, m) => assert!(
            m.contains("exec format error")
                && m.contains("64-bit x86-64")
                && m.contains("needs a 32-bit ARM ELF"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_x86_agent_fails_naming_exec_format_error() {
    let mut c = Checks::new(None, Some("no agent"), DataPlan::EphemeralDisk);
    c.probe(
        &parse_line("PSTC agent-elf machine=62 class=2").unwrap(),
        s(9),
    );
    c.agent_log("2026-12-04_10:00:01 ./run: line 7: /var/vcap/bosh/bin/bosh-agent: cannot execute binary file: Exec format error", s(12));
    match c.get(CheckId::AgentStarted) {
        Status::Failed(_, m) => assert!(
            m.contains("exec format error") && m.contains("64-bit x86-64"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(c.get(CheckId::Ping), Status::Skipped(_)));
}

#[test]
fn monit_must_be_the_pinned_version_and_serve_http() {
    let mut c = Checks::new(Some("5.2.5".into()), None, DataPlan::EphemeralDisk);
    c.probe(
        &parse_line("PSTC monit pid=7 version=5.33.0 http=200").unwrap(),
        s(30),
    );
    assert!(matches!(c.get(CheckId::Monit), Status::Failed(_, m) if m.contains("pins 5.2.5")));
    let mut c = Checks::new(Some("5.2.5".into()), None, DataPlan::EphemeralDisk);
    c.probe(
        &parse_line("PSTC monit pid=7 version=5.2.5 http=none").unwrap(),
        s(30),
    );
    assert!(c.pending(CheckId::Monit));
    c.probe(
        &parse_line("PSTC monit pid=7 version=5.2.5 http=200").unwrap(),
        s(32),
    );
    assert!(matches!(c.get(CheckId::Monit), Status::Passed(t, _) if *t == s(32)));
}

#[test]
fn the_data_dir_must_be_ext4_on_the_ephemeral_disk() {
    let mut c = Checks::new(None, None, DataPlan::EphemeralDisk);
    c.probe(
        &parse_line("PSTC data source=/dev/vdb2 fstype=ext4 disk=vdb serial=other swap=").unwrap(),
        s(40),
    );
    assert!(c.pending(CheckId::EphemeralDisk));
    c.probe(&parse_line(&format!("PSTC data source=/dev/vdb2 fstype=ext4 disk=vdb serial={EPHEMERAL_SERIAL} swap=/dev/vdb1,")).unwrap(), s(41));
    assert!(
        matches!(c.get(CheckId::EphemeralDisk), Status::Passed(_, m) if m.contains("swap /dev/vdb1"))
    );
}

#[test]
fn a_read_only_root_or_a_panic_fails_the_first_check() {
    let mut c = Checks::new(None, None, DataPlan::EphemeralDisk);
    c.console(
        "[    0.000000] Linux version 6.1.0-50-armmp (debian-kernel@…)",
        s(1),
    );
    c.console(
        "[    7.5] EXT4-fs (vda2): mounted filesystem with ordered data mode.",
        s(8),
    );
    c.probe(
        &parse_line("PSTC root source=/dev/vda2 fstype=ext4 options=rw,relatime").unwrap(),
        s(9),
    );
    assert!(
        matches!(c.get(CheckId::KernelRoot), Status::Passed(t, m) if m.contains("6.1.0-50-armmp") && *t == s(8))
    );
    let mut c = Checks::new(None, None, DataPlan::EphemeralDisk);
    c.console(
        "[    3.1] Kernel panic - not syncing: VFS: Unable to mount root fs",
        s(3),
    );
    assert!(matches!(c.get(CheckId::KernelRoot), Status::Failed(..)));
}

#[test]
fn diagnosis_names_the_syslog_group_and_the_agents_own_error() {
    let log = vec![
        "a".to_string(),
        "[Main] 2026/12/04 ERROR - App setup Running bootstrap: Setting up logging: chown: invalid group: 'root:syslog'".to_string(),
    ];
    assert!(diagnose(&log, None, &[]).unwrap().contains("syslog"));
    let chown = "[main] ERROR - App setup Running bootstrap: Setting up log dir: Chowning root log dir: chown: invalid group: 'root:syslog'";
    let d = diagnose(&[], Some(chown), &[]).unwrap();
    assert!(
        d.starts_with("the image lacks") && d.contains("root:syslog"),
        "{d}"
    );
    let log = vec!["[main] ERROR - Platform not found: debian".to_string()];
    assert_eq!(
        diagnose(&log, None, &[]).unwrap(),
        "the agent's last error: [main] ERROR - Platform not found: debian"
    );
    assert_eq!(diagnose(&[], None, &[]), None);
}

fn card() -> Card {
    Card {
        disk: "mmcblk0".into(),
        boot: (8192, 524288),
        root: (532480, 3000000),
    }
}

#[test]
fn the_disk_check_that_cannot_pass_is_skipped_saying_why() {
    let c = Checks::new(None, None, DataPlan::EphemeralDisk);
    assert!(c.pending(CheckId::EphemeralDisk));
    assert!(
        matches!(c.get(CheckId::DataPartition), Status::Skipped(w) if w.contains("ephemeral disk"))
    );
    let c = Checks::new(None, None, DataPlan::RootCard(card()));
    assert!(c.pending(CheckId::DataPartition));
    assert!(
        matches!(c.get(CheckId::EphemeralDisk), Status::Skipped(w) if w.contains("only its SD card"))
    );
    let c = Checks::new(None, None, DataPlan::Skipped("SkipDiskSetup".into()));
    for id in [CheckId::EphemeralDisk, CheckId::DataPartition] {
        assert_eq!(c.get(id), &Status::Skipped("SkipDiskSetup".into()));
    }
    assert!(c.pending(CheckId::Ping));
    // No real agent: its reason wins.
    let c = Checks::new(None, Some("no agent"), DataPlan::RootCard(card()));
    assert_eq!(
        c.get(CheckId::DataPartition),
        &Status::Skipped("no agent".into())
    );
}

#[test]
fn the_card_check_passes_on_the_probes_data_and_layout() {
    let mut c = Checks::new(None, None, DataPlan::RootCard(card()));
    c.probe(&parse_line("PSTC data source=/dev/mmcblk0p4 fstype=ext4 disk=mmcblk0 serial=0xdeadbeef swap=/dev/mmcblk0p3,").unwrap(), s(60));
    assert!(c.pending(CheckId::DataPartition));
    c.probe(&parse_line("PSTC layout disk=mmcblk0 parts=1:8192:524288:0xc:vfat,2:532480:3000000:0x83:ext4,3:3534848:2097152:0x83:swap,4:5632000:11145216:0x83:ext4").unwrap(), s(60));
    assert!(
        matches!(c.get(CheckId::DataPartition), Status::Passed(t, m) if *t == s(60) && m.contains("/dev/mmcblk0p4") && m.contains("swap /dev/mmcblk0p3")),
        "{:?}",
        c.get(CheckId::DataPartition)
    );
}

#[test]
fn once_the_agent_answers_ping_a_pending_disk_check_fails_at_once() {
    let mut c = Checks::new(None, None, DataPlan::RootCard(card()));
    c.agent_log(
        "[main] 2026/12/05 12:00:01 ERROR - Partitioning root device: boom",
        s(50),
    );
    c.pass(CheckId::Ping, s(60), "pong");
    c.probe(&parse_line("PSTC agent pid=10 age=30").unwrap(), s(62));
    assert!(
        c.pending(CheckId::DataPartition),
        "the probe's lag is allowed"
    );
    c.probe(&parse_line("PSTC agent pid=10 age=35").unwrap(), s(67));
    assert!(
        matches!(c.get(CheckId::DataPartition), Status::Failed(t, m) if *t == s(67) && m.contains("not a mount") && m.contains("Partitioning root device: boom")),
        "{:?}",
        c.get(CheckId::DataPartition)
    );
    // The skipped check stays skipped.
    assert!(matches!(c.get(CheckId::EphemeralDisk), Status::Skipped(_)));
}

#[test]
fn a_failed_bootstrap_fails_the_agents_checks_with_its_line() {
    // An agent without the mmcblk patch on a Pi's card.
    let line = "[main] 2026/12/05 12:00:01 ERROR - App setup Running bootstrap: Setting up ephemeral disk: Creating ephemeral partitions on root device: Finding root partition device: Root partition has an invalid name/dev/mmcblk0p2";
    let mut c = Checks::new(None, None, DataPlan::RootCard(card()));
    c.probe(&parse_line("PSTC agent pid=10 age=4").unwrap(), s(40));
    c.agent_log(line, s(41));
    for id in [CheckId::Ping, CheckId::GetState, CheckId::DataPartition] {
        assert!(
            matches!(c.get(id), Status::Failed(t, m) if *t == s(41) && m.contains("invalid name/dev/mmcblk0p2") && m.contains("bootstrap failed")),
            "{id:?}: {:?}",
            c.get(id)
        );
    }
    assert!(matches!(c.get(CheckId::EphemeralDisk), Status::Skipped(_)));
    assert!(
        matches!(c.get(CheckId::AgentStarted), Status::Failed(_, m) if m.contains("invalid name"))
    );
    assert!(c.failed());
    // An agent that stayed up before its bootstrap failed keeps its service check.
    let mut c = Checks::new(None, None, DataPlan::RootCard(card()));
    c.probe(&parse_line("PSTC agent pid=10 age=12").unwrap(), s(40));
    c.agent_log(line, s(41));
    assert!(matches!(c.get(CheckId::AgentStarted), Status::Passed(..)));
    // Before the agent was ever seen up, the service check fails with it too.
    let mut c = Checks::new(None, None, DataPlan::EphemeralDisk);
    c.agent_log(line, s(30));
    assert!(
        matches!(c.get(CheckId::AgentStarted), Status::Failed(_, m) if m.contains("invalid name"))
    );
}
