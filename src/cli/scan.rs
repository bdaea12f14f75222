//! Go's `flag` scanning rules, once for the three programs.
//!
//! Scripts written for the Go originals pass flags in every form Go's
//! `FlagSet.Parse` accepts: `-name value`, `-name=value`, `--name value`,
//! `--name=value`, a boolean as `-name` or `-name=false`. Parsing stops at
//! the first argument that is not a flag (a lone `-` is one) or after `--`,
//! which is consumed. Every occurrence of a flag is checked and applied in
//! argument order, so the first bad flag is the one reported and the last
//! good value wins. GNU-style long options (`--data-root DIR`) are the same
//! forms, so they need nothing extra. The error texts are Go's.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;

/// What a flag takes; decides scanning and Go's usage line.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    /// `-name` sets it; `-name=V` takes a Go boolean (`-name false` does
    /// not: `false` is then the first positional argument).
    Bool,
    /// A value; shown as `-name string` in Go's usage, default quoted.
    Str,
    /// A value with a check, like a Go `flag.Value` (`-name value` in the
    /// usage, default unquoted). The check's error is the text Go prints
    /// after `invalid value "X" for flag -name: `.
    Value(fn(&str) -> Result<(), String>),
}

/// One flag definition.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Flag {
    /// Name without dashes.
    pub name: &'static str,
    /// What it takes.
    pub kind: Kind,
    /// Help text for Go's generated usage (may contain newlines); empty for
    /// a program that writes its own help text.
    pub usage: &'static str,
    /// Default as text for Go's generated usage (`""` for an empty string,
    /// `"false"` for an unset bool).
    pub default: &'static str,
}

impl Flag {
    /// A boolean flag documented elsewhere.
    pub(crate) const fn bool(name: &'static str) -> Flag {
        Flag {
            name,
            kind: Kind::Bool,
            usage: "",
            default: "false",
        }
    }

    /// A flag that takes a value, documented elsewhere; the program checks
    /// and converts the value when it is set.
    pub(crate) const fn value(name: &'static str) -> Flag {
        Flag {
            name,
            kind: Kind::Str,
            usage: "",
            default: "",
        }
    }
}

/// What one occurrence of a flag sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Setting<'a> {
    /// A boolean flag, already read as Go's `strconv.ParseBool` reads it.
    Bool(bool),
    /// The value of any other flag, as given (it may be empty or start
    /// with a dash).
    Value(&'a OsStr),
}

/// Why the command line gives no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagError {
    /// `-h`, `-help`, `--h` or `--help`, none of them a defined flag: print
    /// the help and exit 0.
    Help,
    /// A bad flag or value: Go's one-line message (the program prints it
    /// with its usage and exits 2).
    Bad(String),
}

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlagError::Help => f.write_str("flag: help requested"),
            FlagError::Bad(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for FlagError {}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// How a program quotes a value in its error messages.
pub(crate) type Quote = fn(&str) -> String;

/// Go's `%q` for the simple strings that appear as values and defaults:
/// the quoting of the test tools, whose messages are Go's byte for byte.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Rust's `{:?}` quoting: the launcher's. It differs from [`go_quote`] only
/// for control and unusual Unicode characters, and each program keeps the
/// messages it always printed.
pub(crate) fn debug_quote(s: &str) -> String {
    format!("{s:?}")
}

/// Go's `FlagSet.Parse` over `args` (without the program name): calls `set`
/// for every flag occurrence, in order, and returns the index of the first
/// argument after the flags.
///
/// `set` returns the reason a value is refused; it becomes Go's
/// `invalid value "X" for flag -name: reason`, with X quoted by `quote`. A
/// [`Kind::Value`] check runs before `set`. Names and values need not be
/// UTF-8 (a name that is not cannot be defined; messages show such bytes
/// as U+FFFD).
pub(crate) fn scan<A: AsRef<OsStr>>(
    flags: &[Flag],
    args: &[A],
    quote: Quote,
    mut set: impl FnMut(&Flag, Setting<'_>) -> Result<(), String>,
) -> Result<usize, FlagError> {
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_ref();
        let s = arg.as_bytes();
        if s.len() < 2 || s[0] != b'-' {
            break;
        }
        let dashes = if s[1] == b'-' { 2 } else { 1 };
        if dashes == 2 && s.len() == 2 {
            // "--" ends the flags and is consumed.
            i += 1;
            break;
        }
        let body = &s[dashes..];
        if body.is_empty() || body[0] == b'-' || body[0] == b'=' {
            return Err(FlagError::Bad(format!(
                "bad flag syntax: {}",
                arg.to_string_lossy()
            )));
        }
        let (name, inline) = match body.iter().position(|&b| b == b'=') {
            Some(p) => (&body[..p], Some(OsStr::from_bytes(&body[p + 1..]))),
            None => (body, None),
        };
        let name = String::from_utf8_lossy(name);
        i += 1;
        let Some(flag) = flags.iter().find(|f| f.name == name) else {
            if name == "h" || name == "help" {
                return Err(FlagError::Help);
            }
            return Err(FlagError::Bad(format!(
                "flag provided but not defined: -{name}"
            )));
        };
        if let Kind::Bool = flag.kind {
            let text = inline.map_or("true".into(), OsStr::to_string_lossy);
            inline
                .map_or(Some(true), |v| v.to_str().and_then(parse_bool))
                .ok_or_else(|| "parse error".to_string())
                .and_then(|b| set(flag, Setting::Bool(b)))
                .map_err(|e| {
                    FlagError::Bad(format!(
                        "invalid boolean value {} for -{name}: {e}",
                        quote(&text)
                    ))
                })?;
            continue;
        }
        let value: &OsStr = match inline {
            Some(v) => v,
            None => match args.get(i) {
                Some(v) => {
                    i += 1;
                    v.as_ref()
                }
                None => return Err(FlagError::Bad(format!("flag needs an argument: -{name}"))),
            },
        };
        let checked = match flag.kind {
            Kind::Value(check) => check(&value.to_string_lossy()),
            Kind::Bool | Kind::Str => Ok(()),
        };
        checked
            .and_then(|()| set(flag, Setting::Value(value)))
            .map_err(|e| {
                FlagError::Bad(format!(
                    "invalid value {} for flag -{name}: {e}",
                    quote(&value.to_string_lossy())
                ))
            })?;
    }
    Ok(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(v: &str) -> Result<(), String> {
        v.parse::<u8>()
            .map(drop)
            .map_err(|_| "a small number".into())
    }

    const FLAGS: [Flag; 3] = [
        Flag::value("name"),
        Flag::bool("on"),
        Flag {
            name: "v",
            kind: Kind::Value(level),
            usage: "",
            default: "0",
        },
    ];

    /// Every setting in order, then the arguments left.
    fn run(args: &[&str]) -> Result<(Vec<String>, Vec<String>), FlagError> {
        let mut seen = Vec::new();
        let n = scan(&FLAGS, args, go_quote, |f, s| {
            seen.push(match s {
                Setting::Bool(b) => format!("{}={b}", f.name),
                Setting::Value(v) => format!("{}:{}", f.name, v.to_string_lossy()),
            });
            Ok(())
        })?;
        Ok((seen, args[n..].iter().map(|s| s.to_string()).collect()))
    }

    fn bad(args: &[&str]) -> String {
        match run(args) {
            Err(FlagError::Bad(m)) => m,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn go_forms_in_order() {
        for a in [
            &["-name", "X", "pos"][..],
            &["-name=X", "pos"],
            &["--name", "X", "pos"],
            &["--name=X", "pos"],
        ] {
            assert_eq!(run(a).unwrap(), (vec!["name:X".into()], vec!["pos".into()]));
        }
        let (seen, rest) =
            run(&["-on", "-on=false", "--on=T", "-name=a=b", "-name", "-x"]).unwrap();
        assert_eq!(
            seen,
            ["on=true", "on=false", "on=true", "name:a=b", "name:-x"]
        );
        assert!(rest.is_empty());
        // A value equal to another flag's name is a value.
        let (seen, _) = run(&["-name", "--on", "-name", "--name"]).unwrap();
        assert_eq!(seen, ["name:--on", "name:--name"]);
    }

    #[test]
    fn stops_at_first_positional_and_double_dash() {
        assert_eq!(run(&["x", "-on"]).unwrap().1, ["x", "-on"]);
        assert_eq!(run(&["-", "-on"]).unwrap().1, ["-", "-on"]);
        assert_eq!(run(&["--", "-on"]).unwrap(), (vec![], vec!["-on".into()]));
        // "-on false": a bool takes no separate value.
        assert_eq!(run(&["-on", "false"]).unwrap().1, ["false"]);
    }

    #[test]
    fn errors_are_gos_and_the_first_wins() {
        assert_eq!(bad(&["-x"]), "flag provided but not defined: -x");
        assert_eq!(bad(&["--x=1"]), "flag provided but not defined: -x");
        assert_eq!(bad(&["-name"]), "flag needs an argument: -name");
        assert_eq!(bad(&["---x"]), "bad flag syntax: ---x");
        assert_eq!(bad(&["-=x"]), "bad flag syntax: -=x");
        assert_eq!(
            bad(&["-on=maybe"]),
            "invalid boolean value \"maybe\" for -on: parse error"
        );
        assert_eq!(
            bad(&["-v", "x", "-x"]),
            "invalid value \"x\" for flag -v: a small number"
        );
        assert_eq!(
            bad(&["-v", "1", "-v", "300", "-v=2"]).split(':').next(),
            Some("invalid value \"300\" for flag -v")
        );
        assert_eq!(bad(&["-x", "-v", "x"]), "flag provided but not defined: -x");
        for h in ["-h", "-help", "--help", "--h", "-help=1"] {
            assert_eq!(run(&[h]), Err(FlagError::Help), "{h}");
        }
        assert_eq!(run(&["-name", "a", "-h", "-x"]), Err(FlagError::Help));
    }

    #[test]
    fn the_setter_refuses_with_the_programs_quoting() {
        let r = scan(&FLAGS, &["-name", "a\u{1}"], debug_quote, |_, _| {
            Err("no".to_string())
        });
        assert_eq!(
            r,
            Err(FlagError::Bad(
                "invalid value \"a\\u{1}\" for flag -name: no".into()
            ))
        );
    }

    #[test]
    fn go_bool() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(t), Some(true));
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(f), Some(false));
        }
        assert_eq!(parse_bool("yes"), None);
    }
}
