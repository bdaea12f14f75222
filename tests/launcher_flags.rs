//! `ciao-launcher --help` and `man/ciao-launcher.8` document the same flags,
//! in the same order, with the same descriptions and defaults; and logging
//! set-up writes where the flags say.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::Path;

use ciao::launcher::config::{setup_logging, LauncherConfig, FLAG_NAMES, USAGE};

/// One documented option: its spellings (`-cacert`, `--data-root`,
/// `-h`, `-help`, `--help`) and its description, whitespace collapsed.
#[derive(Debug)]
struct Entry {
    flags: Vec<String>,
    text: String,
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// USAGE: a flag line is indented by exactly two spaces and starts with
/// '-'; its description follows, indented by eight.
fn usage_entries() -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for line in USAGE.lines() {
        if line.starts_with("  -") {
            let flags = line
                .trim()
                .split(", ")
                .map(|f| f.split_whitespace().next().unwrap().to_string())
                .collect();
            out.push(Entry {
                flags,
                text: String::new(),
            });
        } else if line.starts_with("        ") {
            let e = out.last_mut().expect("description before any flag");
            e.text.push(' ');
            e.text.push_str(line.trim());
        } else if let Some(e) = out.last_mut() {
            e.text = collapse(&e.text);
        }
    }
    for e in &mut out {
        e.text = collapse(&e.text);
    }
    out
}

/// Removes the roff escapes the page uses in running text.
fn unroff(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('-') => out.push('-'),
            Some('e') => out.push('\\'),
            Some('%') | Some('&') => {}
            Some('f') => {
                chars.next(); // font letter: B, I, R or P
            }
            Some(other) => panic!("unexpected roff escape \\{other} in {s:?}"),
            None => {}
        }
    }
    out
}

/// The words of a macro line's arguments, honouring double quotes.
fn macro_args(line: &str) -> Vec<String> {
    let rest = line.split_once(' ').map(|x| x.1).unwrap_or("");
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in rest.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    args.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        args.push(cur);
    }
    args
}

/// The man page's OPTIONS section: `.TP`, a tag line (`.B`, `.BI` or
/// `.BR`), then the description up to the next macro that starts a
/// paragraph.
fn man_entries(page: &str) -> Vec<Entry> {
    let section: Vec<&str> = page
        .lines()
        .skip_while(|l| *l != ".SH OPTIONS")
        .skip(1)
        .take_while(|l| !l.starts_with(".SH "))
        .collect();
    assert!(!section.is_empty(), "no OPTIONS section");
    let mut out: Vec<Entry> = Vec::new();
    let mut i = 0;
    while i < section.len() {
        let l = section[i];
        if l == ".TP" {
            let tag = section[i + 1];
            assert!(
                tag.starts_with(".B ") || tag.starts_with(".BI ") || tag.starts_with(".BR "),
                "tag line {tag:?}"
            );
            let flags = macro_args(tag)
                .iter()
                .map(|a| unroff(a))
                .filter(|a| a.starts_with('-'))
                .map(|a| a.trim_end_matches(',').to_string())
                .collect();
            out.push(Entry {
                flags,
                text: String::new(),
            });
            i += 2;
            continue;
        }
        if l.starts_with(".SS ") || l.starts_with(".PP") {
            i += 1;
            continue;
        }
        assert!(!l.starts_with('.'), "unexpected macro in OPTIONS: {l:?}");
        let e = out.last_mut().expect("text before the first .TP");
        e.text.push(' ');
        e.text.push_str(&unroff(l));
        i += 1;
    }
    for e in &mut out {
        e.text = collapse(&e.text);
    }
    out
}

fn default_of(text: &str) -> Option<&str> {
    text.find("Default: ").map(|i| &text[i..])
}

fn man_page() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("man/ciao-launcher.8");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn usage_and_man_page_agree() {
    let usage = usage_entries();
    let man = man_entries(&man_page());

    let names = |v: &[Entry]| -> Vec<Vec<String>> { v.iter().map(|e| e.flags.clone()).collect() };
    assert_eq!(
        names(&usage),
        names(&man),
        "flags (and their order) differ between --help and the man page"
    );
    for (u, m) in usage.iter().zip(&man) {
        assert_eq!(
            default_of(&u.text),
            default_of(&m.text),
            "default of {:?} differs",
            u.flags
        );
        assert_eq!(u.text, m.text, "description of {:?} differs", u.flags);
    }

    // Every option except help states its default.
    for e in &usage {
        if e.flags[0] != "-h" {
            assert!(
                default_of(&e.text).is_some(),
                "{:?} has no default",
                e.flags
            );
        }
    }

    // The documented flags are exactly those the parser knows.
    let documented: BTreeSet<String> = usage
        .iter()
        .flat_map(|e| e.flags.iter())
        .map(|f| f.trim_start_matches('-').to_string())
        .filter(|f| f != "h" && f != "help")
        .collect();
    let known: BTreeSet<String> = FLAG_NAMES.iter().map(|s| s.to_string()).collect();
    assert_eq!(documented, known);
}

#[test]
fn every_documented_spelling_parses() {
    for e in usage_entries() {
        for f in &e.flags {
            let r = LauncherConfig::parse(vec![OsString::from(format!("{f}=x"))]);
            // Either accepted or rejected for its value, never unknown.
            if let Err(ciao::launcher::config::FlagError::Bad(m)) = r {
                assert!(!m.contains("not defined"), "{f}: {m}");
            }
        }
    }
}

#[test]
fn man_page_has_the_sections() {
    let page = man_page();
    for s in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH DESCRIPTION",
        ".SH OPTIONS",
        ".SH FILES",
        ".SH SIGNALS",
        ".SH EXIT STATUS",
        ".SH SEE ALSO",
    ] {
        assert!(page.contains(s), "missing {s}");
    }
    assert!(page.contains(".BR ciao-launcher-server (8)"));
    assert!(page.contains(".BR ciaolc (1)"));
}

/// The only test here that installs the global logger (one per process).
#[test]
fn logging_goes_to_the_file_under_the_data_root() {
    let root = std::env::temp_dir().join(format!("ciao-logtest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let cfg = LauncherConfig::parse(
        [
            "--data-root",
            root.to_str().unwrap(),
            "-v",
            "1",
            "-vmodule",
            "x=1",
            "-stderrthreshold=FATAL",
        ]
        .iter()
        .map(OsString::from)
        .collect(),
    )
    .unwrap();
    setup_logging(&cfg).unwrap();
    log::info!("hello from the test");
    log::debug!("debug is on with -v 1");
    log::trace!("trace stays off");
    log::logger().flush();
    let file = root.join("logs/launcher/ciao-launcher.log");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("hello from the test"), "{text}");
    assert!(text.contains("debug is on"), "{text}");
    assert!(!text.contains("trace stays off"), "{text}");
    assert!(
        text.contains("-vmodule=x=1 is accepted for compatibility and ignored"),
        "{text}"
    );
    // A second install fails cleanly instead of panicking.
    assert!(setup_logging(&cfg).is_err());
    std::fs::remove_dir_all(&root).unwrap();
}
