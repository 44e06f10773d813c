//! Every check, in report order, and the views of the registry the README and `--list` print.

use super::{
    accounts, accounts_more, agent, agent_clouds, auditd, kernel, logging, pam, stemcell, system,
    Applies, Check,
};

/// Every check, applicable or not.
pub fn all() -> Vec<Check> {
    let mut v = Vec::new();
    v.extend(accounts::checks());
    v.extend(accounts_more::checks());
    v.extend(pam::checks());
    v.extend(auditd::checks());
    v.extend(kernel::checks());
    v.extend(logging::checks());
    v.extend(system::checks());
    v.extend(agent::checks());
    v.extend(stemcell::checks());
    v.extend(agent_clouds::checks());
    v
}

/// The README's table of checks that do not apply, with the reason, generated from here.
pub fn not_applicable_table() -> String {
    let mut out = String::from(
        "| check | upstream | what it requires | why it does not apply here |\n|---|---|---|---|\n",
    );
    for c in all() {
        if let Applies::No(why) = c.applies {
            out.push_str(&format!(
                "| `{}` | `{}` | {} | {} |\n",
                c.id,
                c.source,
                c.title.replace('|', "\\|"),
                why.replace('|', "\\|")
            ));
        }
    }
    out
}

/// `check-os --list`: every check with its upstream file and what it looks at.
pub fn list_text() -> String {
    let mut out = String::new();
    for c in all() {
        out.push_str(&format!(
            "{:<34} {:<44} {}\n    looks at: {}{}\n",
            c.id,
            c.source,
            c.title,
            c.test.describe(),
            match c.applies {
                Applies::Yes => String::new(),
                Applies::No(why) => format!("\n    not applicable: {why}"),
                Applies::Only(l) => format!("\n    only for {} stemcells", l.join(", ")),
                Applies::Except(l) => format!("\n    not for {} stemcells", l.join(", ")),
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_every_pattern_compiles() {
        let all = all();
        let mut ids: Vec<&str> = all.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(before, ids.len(), "a check id is used twice");
        fn patterns(t: &super::super::Test, out: &mut Vec<&'static str>) {
            match t {
                super::super::Test::Matches { pattern, .. }
                | super::super::Test::NotMatches { pattern, .. } => out.push(pattern),
                super::super::Test::All(ts) => ts.iter().for_each(|t| patterns(t, out)),
                _ => {}
            }
        }
        for c in &all {
            let mut ps = Vec::new();
            patterns(&c.test, &mut ps);
            for p in ps {
                assert!(
                    super::super::test::first_match("", p).is_ok(),
                    "{}: `{p}` does not compile",
                    c.id
                );
            }
            assert!(!c.source.is_empty() && !c.title.is_empty(), "{}", c.id);
        }
    }
}
