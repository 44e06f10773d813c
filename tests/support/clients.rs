//! Stand-in sources for the blobstore clients: a tiny Go module per provider, named as the
//! real repository (`module github.com/cloudfoundry/bosh-davcli`), its main package where the
//! real one is, with an empty `vendor/modules.txt` (no dependencies), built offline with the
//! host's Go. It prints `NAME VERSION` and exits 0, as `-v` does for the real ones.

use std::path::{Path, PathBuf};

use pistemcell::spec::clients::{Provider, PROVIDERS};

/// Writes the stand-in tree of `p` under `dir` and returns it.
pub fn stand_in(dir: &Path, p: &Provider) -> PathBuf {
    let root = dir.join(p.module);
    let main = root.join(
        p.main_package
            .trim_start_matches("./")
            .trim_start_matches('.'),
    );
    std::fs::create_dir_all(&main).unwrap();
    std::fs::create_dir_all(root.join("vendor")).unwrap();
    std::fs::write(
        root.join("go.mod"),
        format!("module github.com/cloudfoundry/{}\n\ngo 1.22\n", p.module),
    )
    .unwrap();
    std::fs::write(root.join("vendor/modules.txt"), "").unwrap();
    std::fs::write(
        main.join("main.go"),
        format!(
            "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nvar version string\n\nfunc main() {{\n\tfmt.Println(\"{} stand-in\", version, len(os.Args))\n}}\n",
            p.program()
        ),
    )
    .unwrap();
    root
}

/// The Go toolchain the stand-ins build with: `PISTEMCELL_TEST_GO`, else the one the build
/// finds itself (`go` on PATH or `doctor --fix`'s); `None` (with the reason printed) without.
pub fn go() -> Option<String> {
    if let Ok(go) = std::env::var("PISTEMCELL_TEST_GO") {
        return Some(go);
    }
    let default = pistemcell::spec::inputs::AgentSource::default();
    match pistemcell::steps::agent_build::check_go(&default) {
        Ok(_) => {
            let venv = format!("{}/bin/go", pistemcell::steps::agent_build::GO_VENV);
            Some(if Path::new(&venv).is_file() {
                venv
            } else {
                "go".into()
            })
        }
        Err(e) => {
            eprintln!("SKIPPED: no Go toolchain for the blobstore clients' stand-ins: {e}");
            None
        }
    }
}

/// `--set` flags giving every provider its stand-in tree under `dir`, built with `go`.
pub fn sets(dir: &Path, go: &str) -> Vec<String> {
    PROVIDERS
        .iter()
        .flat_map(|p| {
            let tree = stand_in(dir, p);
            [
                format!(
                    "blobstore_clients.{}.source.path={}",
                    p.name,
                    tree.display()
                ),
                format!("blobstore_clients.{}.source.go={go}", p.name),
            ]
        })
        .collect()
}
