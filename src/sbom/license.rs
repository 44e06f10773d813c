//! A package's license from its `/usr/share/doc/NAME/copyright`, where that file is in the
//! machine-readable format (DEP-5): the `License:` of the `Files: *` paragraph, as an SPDX
//! expression. Debian's short names are mapped to SPDX identifiers; anything not mapped
//! (exceptions, custom licenses, free text) gives `None`, never a guess.

/// Debian short license names and the SPDX identifiers they mean.
const MAP: &[(&str, &str)] = &[
    ("gpl-1", "GPL-1.0-only"),
    ("gpl-1+", "GPL-1.0-or-later"),
    ("gpl-2", "GPL-2.0-only"),
    ("gpl-2+", "GPL-2.0-or-later"),
    ("gpl-3", "GPL-3.0-only"),
    ("gpl-3+", "GPL-3.0-or-later"),
    ("lgpl-2", "LGPL-2.0-only"),
    ("lgpl-2+", "LGPL-2.0-or-later"),
    ("lgpl-2.1", "LGPL-2.1-only"),
    ("lgpl-2.1+", "LGPL-2.1-or-later"),
    ("lgpl-3", "LGPL-3.0-only"),
    ("lgpl-3+", "LGPL-3.0-or-later"),
    ("agpl-3", "AGPL-3.0-only"),
    ("agpl-3+", "AGPL-3.0-or-later"),
    ("gfdl-1.2", "GFDL-1.2-only"),
    ("gfdl-1.2+", "GFDL-1.2-or-later"),
    ("gfdl-1.3", "GFDL-1.3-only"),
    ("gfdl-1.3+", "GFDL-1.3-or-later"),
    ("expat", "MIT"),
    ("mit", "MIT"),
    ("x11", "X11"),
    ("isc", "ISC"),
    ("bsd-2-clause", "BSD-2-Clause"),
    ("bsd-3-clause", "BSD-3-Clause"),
    ("bsd-4-clause", "BSD-4-Clause"),
    ("apache-2", "Apache-2.0"),
    ("apache-2.0", "Apache-2.0"),
    ("artistic", "Artistic-1.0-Perl"),
    ("artistic-2.0", "Artistic-2.0"),
    ("mpl-1.1", "MPL-1.1"),
    ("mpl-2.0", "MPL-2.0"),
    ("cc0-1.0", "CC0-1.0"),
    ("cc0", "CC0-1.0"),
    ("zlib", "Zlib"),
    ("openssl", "OpenSSL"),
    ("psf-2", "PSF-2.0"),
    ("psf-2.0", "PSF-2.0"),
    ("python-2.0", "Python-2.0"),
    ("bsl-1.0", "BSL-1.0"),
    ("curl", "curl"),
    ("fsfap", "FSFAP"),
    ("fsful", "FSFUL"),
    ("fsfullr", "FSFULLR"),
    ("sleepycat", "Sleepycat"),
    ("unicode-dfs-2016", "Unicode-DFS-2016"),
    ("bzip2-1.0.6", "bzip2-1.0.6"),
    ("ofl-1.1", "OFL-1.1"),
    ("wtfpl", "WTFPL"),
];

/// `text` (a DEP-5 `License:` first line) as an SPDX expression, if every part is known.
pub fn spdx_expression(text: &str) -> Option<String> {
    let mut out = Vec::new();
    for (i, tok) in text.split_whitespace().enumerate() {
        let t = tok.trim_matches(|c| c == '(' || c == ')' || c == ',');
        if i % 2 == 1 {
            out.push(match t.to_ascii_lowercase().as_str() {
                "or" => "OR".to_string(),
                "and" => "AND".to_string(),
                _ => return None,
            });
        } else {
            let id = MAP.iter().find(|(d, _)| d.eq_ignore_ascii_case(t))?.1;
            out.push(id.to_string());
        }
    }
    // An expression ends with a license, never with an operator.
    (out.len() % 2 == 1).then(|| out.join(" "))
}

/// The declared license a package's copyright file states (`text`: the file's content, read
/// by the caller inside the image, under a cap).
pub fn of_copyright_text(text: &str) -> Option<String> {
    if !text
        .lines()
        .next()
        .is_some_and(|l| l.starts_with("Format:") && l.contains("copyright-format/1.0"))
    {
        return None;
    }
    let paras: Vec<&str> = text.split("\n\n").collect();
    let license_of = |p: &str| {
        p.lines()
            .find_map(|l| l.strip_prefix("License:"))
            .map(|l| l.trim().to_string())
    };
    let files_star = paras.iter().find(|p| {
        p.lines()
            .any(|l| l.strip_prefix("Files:").is_some_and(|v| v.trim() == "*"))
    });
    let first_files = paras
        .iter()
        .find(|p| p.lines().any(|l| l.starts_with("Files:")));
    let line = files_star.or(first_files).and_then(|p| license_of(p))?;
    spdx_expression(&line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_names_become_spdx_expressions_or_nothing() {
        assert_eq!(
            spdx_expression("GPL-2+").as_deref(),
            Some("GPL-2.0-or-later")
        );
        assert_eq!(
            spdx_expression("GPL-1+ or Artistic").as_deref(),
            Some("GPL-1.0-or-later OR Artistic-1.0-Perl")
        );
        assert_eq!(
            spdx_expression("Expat and BSD-3-clause").as_deref(),
            Some("MIT AND BSD-3-Clause")
        );
        assert_eq!(spdx_expression("GPL-2+ with OpenSSL exception"), None);
        assert_eq!(spdx_expression("public-domain"), None);
        assert_eq!(spdx_expression("GPL-2 or"), None);
        assert_eq!(spdx_expression(""), None);
    }

    #[test]
    fn reads_the_files_star_paragraph_of_a_dep5_file_only() {
        let t = "Format: https://example.invalid/copyright-format/1.0/\nUpstream-Name: x\n\nFiles: debian/*\nLicense: GPL-3+\n\nFiles: *\nCopyright: 2020 someone\nLicense: LGPL-2.1+\n long text\n";
        assert_eq!(of_copyright_text(t).as_deref(), Some("LGPL-2.1-or-later"));
        let t = "This package was debianized by someone.\nLicense: GPL\n";
        assert_eq!(of_copyright_text(t), None);
    }
}
