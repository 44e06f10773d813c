use std::fs;

use crate::context::{BuildContext, Settings};
use crate::pipeline::StageSource;
use crate::progress::{Reporter, Verbosity};
use crate::spec::{self, Infrastructure, Spec};

#[test]
fn the_pipeline_is_the_built_in_stages_and_the_data_stages_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    for (name, yml) in [
        ("30-c", "description: c\nrun: host\n"),
        ("10-a", "description: a\n"),
        ("20-b", "description: b\npackages: [less]\n"),
    ] {
        fs::create_dir_all(p.join("stages").join(name)).unwrap();
        fs::write(p.join("stages").join(name).join("stage.yml"), yml).unwrap();
        fs::write(p.join("stages").join(name).join("apply.sh"), "true").unwrap();
    }
    fs::create_dir_all(p.join("assets/infrastructure/bakery")).unwrap();
    fs::write(p.join("assets/infrastructure/bakery/agent.json"), "{}").unwrap();
    let spec = spec::resolve(
        "t".into(),
        Spec {
            infrastructure: Some(Infrastructure::Bakery),
            ..Default::default()
        },
    )
    .unwrap();
    let ctx = BuildContext::new(
        spec,
        Settings::new(&p.join("work"), &p.join("cache")),
        Reporter::new(Verbosity::Quiet),
    );
    let source = StageSource::new(Some(&p.join("stages")), Some(&p.join("assets")));
    let all = super::stages(&ctx, &source).unwrap();
    let names: Vec<&str> = all.iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        [
            super::bootstrap::BOOTSTRAP,
            "10-a",
            "20-b",
            "30-c",
            "54-initramfs",
            "55-monit",
            "56-agent",
            "57-blobstore-clients",
            "95-audit",
            "96-check-os"
        ]
    );
}
