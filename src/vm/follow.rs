//! Following the files a VM writes (its console, its virtio serial ports) as they grow.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Follows a growing file, handing out whole lines.
pub struct Follow {
    path: PathBuf,
    pos: u64,
    partial: String,
    /// Every line read so far (bounded to the last `KEEP`).
    pub lines: std::collections::VecDeque<String>,
}

/// How many lines a follower keeps for the report.
const KEEP: usize = 400;

impl Follow {
    /// Follows `path` (which may not exist yet).
    pub fn new(path: &Path) -> Follow {
        Follow {
            path: path.to_path_buf(),
            pos: 0,
            partial: String::new(),
            lines: Default::default(),
        }
    }

    /// The new complete lines since the last call.
    pub fn poll(&mut self) -> Vec<String> {
        let Ok(mut f) = File::open(&self.path) else {
            return Vec::new();
        };
        let mut buf = Vec::new();
        if f.seek(SeekFrom::Start(self.pos)).is_err() || f.read_to_end(&mut buf).is_err() {
            return Vec::new();
        }
        self.pos += buf.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&buf));
        let mut out = Vec::new();
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            let line = strip_ansi(line.trim_end_matches(['\n', '\r']));
            self.lines.push_back(line.clone());
            if self.lines.len() > KEEP {
                self.lines.pop_front();
            }
            out.push(line);
        }
        out
    }

    /// The last `n` lines, with an unfinished last line.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let mut v: Vec<String> = self.lines.iter().rev().take(n).rev().cloned().collect();
        if !self.partial.trim().is_empty() {
            v.push(strip_ansi(self.partial.trim_end()));
        }
        v
    }
}

/// Removes terminal colour sequences (systemd colours its console status lines).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_codes_are_stripped() {
        assert_eq!(
            strip_ansi("[\u{1b}[0;32m  OK  \u{1b}[0m] Started \u{1b}[0;1;39mx\u{1b}[0m.\r"),
            "[  OK  ] Started x."
        );
    }

    #[test]
    fn a_follower_hands_out_whole_lines_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        let mut f = Follow::new(&p);
        assert!(f.poll().is_empty());
        std::fs::write(&p, "one\ntw").unwrap();
        assert_eq!(f.poll(), ["one"]);
        std::fs::write(&p, "one\ntwo\n").unwrap();
        assert_eq!(f.poll(), ["two"]);
        assert!(f.poll().is_empty());
        assert_eq!(f.tail(5), ["one", "two"]);
    }
}
