//! README.md cannot drift from the code: its spec reference is the table the spec's types
//! give, its command reference is the binary's own help, every subcommand and long option is
//! described, and every troubleshooting row quotes a message the source really has.
//!
//! After changing the CLI or the spec, `PISTEMCELL_BLESS=1 cargo test --test readme` rewrites
//! the generated sections (between the `<!-- spec-reference:* -->` and
//! `<!-- command-reference:* -->` markers).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

#[path = "readme/text.rs"]
mod text;

use text::{code_spans, diff_head, in_order, pieces, rust_strings, table_rows};

const SPEC_START: &str = "<!-- spec-reference:start -->";
const SPEC_END: &str = "<!-- spec-reference:end -->";
const CMD_START: &str = "<!-- command-reference:start -->";
const CMD_END: &str = "<!-- command-reference:end -->";

/// Words that stand for a variable part in a troubleshooting row's quoted message.
const PLACEHOLDERS: &[&str] = &[
    "N", "NN", "X", "ARCH", "CPU", "HOST", "NAME", "STAGE", "WORK", "FILE", "DIR", "PATH", "URL",
    "HEX", "KEY", "VERSION", "FIELD", "PROVIDER",
];

/// Serialises rewriting README.md between the tests that bless it.
static README_LOCK: Mutex<()> = Mutex::new(());

fn readme_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")
}

fn readme() -> String {
    std::fs::read_to_string(readme_path()).unwrap()
}

fn blessing() -> bool {
    std::env::var("PISTEMCELL_BLESS").is_ok_and(|v| v == "1")
}

/// Byte range of the text between the `start` marker's line and the `end` marker.
fn region_range(text: &str, start: &str, end: &str) -> Option<(usize, usize)> {
    let s = text.find(start)? + start.len();
    let s = if text[s..].starts_with('\n') {
        s + 1
    } else {
        s
    };
    let e = s + text[s..].find(end)?;
    Some((s, e))
}

/// README.md without the generated command reference (what a person wrote).
fn handwritten(text: &str) -> String {
    match region_range(text, CMD_START, CMD_END) {
        Some((s, e)) => format!("{}{}", &text[..s], &text[e..]),
        None => text.to_string(),
    }
}

/// Checks a generated region of README.md, or rewrites it with `PISTEMCELL_BLESS=1`.
fn check_or_bless(
    name: &str,
    start: &str,
    end: &str,
    expected: &str,
    explain: &dyn Fn(&str) -> String,
) {
    let _guard = README_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let text = readme();
    let Some((s, e)) = region_range(&text, start, end) else {
        panic!("README.md lacks the {name}'s markers: a line `{start}`, then `{end}`");
    };
    let actual = &text[s..e];
    if actual == expected {
        return;
    }
    if blessing() {
        let new = format!("{}{}{}", &text[..s], expected, &text[e..]);
        let tmp = readme_path().with_extension("md.blessing");
        std::fs::write(&tmp, new).unwrap();
        std::fs::rename(&tmp, readme_path()).unwrap();
        eprintln!("README.md: rewrote the {name}");
        return;
    }
    panic!(
        "README.md's {name} is out of date: {}\n\
         after checking the change, run `PISTEMCELL_BLESS=1 cargo test --test readme` to rewrite it",
        explain(actual)
    );
}

/// Trailing spaces removed from every line, one final newline.
fn normalise(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    format!("{}\n", lines.join("\n").trim_end_matches('\n'))
}

/// Runs the built binary without a terminal, at 100 columns, with none of the environment
/// (clap shows the values of `env =` options in the help).
fn pistemcell(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_pistemcell"))
        .args(args)
        .env_clear()
        .env("COLUMNS", "100")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pistemcell {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    normalise(&String::from_utf8(out.stdout).unwrap())
}

/// The lines of a help section (`Options:`), up to the next section title.
fn help_section<'a>(help: &'a str, title: &str) -> Vec<&'a str> {
    help.lines()
        .skip_while(|l| *l != title)
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .collect()
}

/// The subcommands `pistemcell --help` lists (without `help`).
fn subcommands(top: &str) -> Vec<String> {
    help_section(top, "Commands:")
        .iter()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(String::from)
        .collect()
}

/// Every help text: `("pistemcell", top)`, then `("pistemcell SUB", help)` per subcommand.
fn helps() -> Vec<(String, String)> {
    let top = pistemcell(&["--help"]);
    let mut all = vec![("pistemcell".to_string(), top.clone())];
    for sub in subcommands(&top) {
        all.push((format!("pistemcell {sub}"), pistemcell(&["help", &sub])));
    }
    all
}

/// The command reference README.md carries: each help under its heading.
fn command_reference(helps: &[(String, String)]) -> String {
    let blocks: Vec<String> = helps
        .iter()
        .map(|(title, help)| format!("### {title}\n\n```text\n{help}```\n"))
        .collect();
    blocks.join("\n")
}

/// `### title` -> its block, in order.
fn blocks(reference: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in reference.lines() {
        if let Some(title) = line.strip_prefix("### ") {
            out.push((title.to_string(), String::new()));
        } else if let Some(last) = out.last_mut() {
            last.1.push_str(line);
            last.1.push('\n');
        }
    }
    out
}

#[test]
fn spec_reference_is_generated_from_the_spec_types() {
    let expected = pistemcell::spec::reference::markdown_table();
    let explain = |actual: &str| {
        format!(
            "the table differs from src/spec/fields.rs (README `-`, generated `+`):\n{}",
            diff_head(actual, &expected, 20)
        )
    };
    check_or_bless("spec reference", SPEC_START, SPEC_END, &expected, &explain);
}

#[test]
fn check_os_table_is_generated_from_the_checks_registry() {
    let expected = pistemcell::checkos::registry::not_applicable_table();
    let explain = |actual: &str| {
        format!(
            "the table differs from src/checkos's registry (README `-`, generated `+`):\n{}",
            diff_head(actual, &expected, 20)
        )
    };
    check_or_bless(
        "check-os table",
        "<!-- check-os-not-applicable:start -->",
        "<!-- check-os-not-applicable:end -->",
        &expected,
        &explain,
    );
}

#[test]
fn command_reference_is_the_binarys_help() {
    let helps = helps();
    let expected = command_reference(&helps);
    let explain = |actual: &str| {
        let (old, new) = (blocks(actual), blocks(&expected));
        for (title, help) in &new {
            match old.iter().find(|(t, _)| t == title) {
                None => return format!("it has no `### {title}` (a new subcommand?)"),
                Some((_, was)) if was != help => {
                    return format!(
                        "`{title}` changed (README `-`, help `+`):\n{}",
                        diff_head(was, help, 20)
                    )
                }
                _ => {}
            }
        }
        if let Some((title, _)) = old.iter().find(|(t, _)| !new.iter().any(|(n, _)| n == t)) {
            return format!("it has `### {title}`, which `pistemcell --help` no longer lists");
        }
        "the headings are in another order than `pistemcell --help` lists them".into()
    };
    check_or_bless("command reference", CMD_START, CMD_END, &expected, &explain);
}

/// The entries of a help's Arguments, Options and Commands sections that have no description.
fn undescribed(help: &str) -> Vec<String> {
    let lines: Vec<&str> = help.lines().collect();
    let mut section = "";
    let mut missing = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line;
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let entry = line.trim();
        let is_entry = match section {
            "Arguments:" | "Options:" => {
                (2..=6).contains(&indent) && entry.starts_with(['-', '<', '['])
            }
            "Commands:" => indent == 2,
            _ => false,
        };
        if !is_entry {
            continue;
        }
        let same_line = entry
            .split_once("  ")
            .is_some_and(|(_, desc)| !desc.trim().is_empty());
        let next_line = lines.get(i + 1).is_some_and(|next| {
            let next_indent = next.len() - next.trim_start().len();
            next_indent >= indent + 4 && !next.trim().is_empty()
        });
        if !same_line && !next_line {
            missing.push(entry.to_string());
        }
    }
    missing
}

#[test]
fn every_option_argument_and_subcommand_has_a_description() {
    let mut missing = Vec::new();
    for (title, help) in helps() {
        for entry in undescribed(&help) {
            missing.push(format!("{title}: `{entry}`"));
        }
    }
    assert!(
        missing.is_empty(),
        "these have no help text (give each a doc comment in the clap definitions):\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn undescribed_finds_entries_without_text() {
    let help = "Usage: x\n\nArguments:\n  [SPEC]\n\nOptions:\n      --a <A>\n          The a\n\n      --b\n\n  -c, --cc  C\n";
    assert_eq!(undescribed(help), ["[SPEC]", "--b"]);
}

/// The lines of README.md's `## heading` section.
fn readme_section<'a>(text: &'a str, heading: &str) -> Vec<&'a str> {
    let title = format!("## {heading}");
    let lines: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != title)
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .collect();
    assert!(!lines.is_empty(), "README.md has no `{title}` section");
    lines
}

#[test]
fn subcommands_table_lists_every_subcommand() {
    let text = readme();
    let listed: Vec<String> = table_rows(&readme_section(&text, "Subcommands"))
        .iter()
        .filter_map(|row| code_spans(row.first()?).into_iter().next())
        .filter_map(|span| span.split_whitespace().next().map(String::from))
        .collect();
    let real = subcommands(&pistemcell(&["--help"]));
    let missing: Vec<&String> = real.iter().filter(|s| !listed.contains(s)).collect();
    assert!(
        missing.is_empty(),
        "README.md's \"Subcommands\" table has no row for {missing:?}; add one (`SUB [ARGS]` | what it does)"
    );
    let stale: Vec<&String> = listed.iter().filter(|s| !real.contains(s)).collect();
    assert!(
        stale.is_empty(),
        "README.md's \"Subcommands\" table lists {stale:?}, which `pistemcell --help` does not"
    );
}

/// The long options of a help's Options section (`--help` and `--version` left out).
fn long_options(help: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in help_section(help, "Options:") {
        let indent = line.len() - line.trim_start().len();
        if !(2..=6).contains(&indent) || !line.trim_start().starts_with('-') {
            continue;
        }
        let signature = line.trim().split("  ").next().unwrap_or_default();
        for part in signature.split([',', ' ']) {
            if part.starts_with("--") && part != "--help" && part != "--version" {
                out.push(part.to_string());
            }
        }
    }
    out
}

/// Whether `text` mentions `option` as a whole option (`--json`, not `--json-x`).
fn mentions(text: &str, option: &str) -> bool {
    text.match_indices(option).any(|(i, _)| {
        !text[i + option.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

#[test]
fn every_long_option_is_explained_outside_the_generated_help() {
    let text = handwritten(&readme());
    let mut missing = Vec::new();
    for (title, help) in helps() {
        for option in long_options(&help) {
            if !mentions(&text, &option) {
                missing.push(format!("{title} {option}"));
            }
        }
    }
    missing.dedup();
    assert!(
        missing.is_empty(),
        "README.md (outside the command reference) never mentions:\n  {}\nsay what each does, e.g. in the \"Subcommands\" table",
        missing.join("\n  ")
    );
}

/// Every line and string literal of the sources a message can come from: `src/**/*.rs`
/// (test modules in their own files left out) and the text files of `assets/` and `stages/`.
fn source_units() -> Vec<String> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, files);
            } else {
                files.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "assets", "stages"] {
        walk(&root.join(dir), &mut files);
    }
    let mut units = Vec::new();
    for file in files {
        let rel = file.strip_prefix(root).unwrap_or(&file);
        let is_rs = file.extension().is_some_and(|e| e == "rs");
        if rel.starts_with("src")
            && (!is_rs
                || file.file_name().is_some_and(|n| n == "tests.rs")
                || rel.components().any(|c| c.as_os_str() == "tests"))
        {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        if is_rs {
            units.extend(rust_strings(&text));
        }
        units.extend(text.lines().map(String::from));
    }
    units
}

#[test]
fn troubleshooting_rows_quote_real_messages() {
    let text = readme();
    let rows = table_rows(&readme_section(&text, "Troubleshooting"));
    assert!(
        !rows.is_empty(),
        "README.md's Troubleshooting has no table rows"
    );
    let units = source_units();
    let mut wrong = Vec::new();
    for row in &rows {
        let first = row.first().map(String::as_str).unwrap_or_default();
        let spans = code_spans(first);
        if spans.is_empty() {
            wrong.push(format!("{first}: quotes no message (put it in backticks)"));
        }
        for span in spans {
            let pieces = pieces(&span);
            if pieces.is_empty() {
                wrong.push(format!("`{span}`: quotes nothing but placeholders"));
            } else if !units.iter().any(|u| in_order(u, &pieces)) {
                wrong.push(format!("`{span}`: no line or string of src/, assets/ or stages/ has {pieces:?} in this order"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "README.md's Troubleshooting rows must quote real messages (`...` and {PLACEHOLDERS:?} stand for the variable parts):\n  {}",
        wrong.join("\n  ")
    );
}
