//! A small transcription of Go's `flag` package: the parsing rules and the
//! usage format that the original `ciaolc` and `ciao-launcher-server` exposed.
//!
//! Scripts written for the originals pass flags in every form Go accepts
//! (`-name value`, `-name=value`, `--name value`, `--name=value`, `-bool`,
//! `-bool=false`), and parsing stops at the first argument that is not a flag
//! (test-tools.md §1.2, §2.2, defect C8). pico-args does not follow these
//! rules (it accepts options after positionals), so both tools share this
//! parser. The error and usage texts are Go's, byte for byte, because they
//! are user-visible output the spec pins down.

use std::fmt;

/// What kind of value a flag takes; decides parsing and the usage line.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A string (`-name string` in the usage; default shown quoted).
    Str,
    /// A boolean: `-name` sets it, `-name=false` clears it.
    Bool,
    /// A Go `flag.Value` with a custom check (`-name value` in the usage;
    /// default shown unquoted). The check returns the text Go prints after
    /// `invalid value "X" for flag -name: `.
    Value(fn(&str) -> Result<(), String>),
}

/// One flag definition.
#[derive(Clone, Debug)]
pub struct Flag {
    /// Name without dashes.
    pub name: &'static str,
    /// Value kind.
    pub kind: Kind,
    /// Help text (may contain newlines).
    pub usage: &'static str,
    /// Default value as text (`""` for an empty string, `"false"` for an unset
    /// bool). Shown as `(default ...)` unless it is the zero value.
    pub default: &'static str,
}

/// A named set of flags, like Go's `flag.FlagSet`.
#[derive(Clone, Debug)]
pub struct FlagSet {
    /// Name used in `Usage of <name>:`.
    pub name: String,
    /// Definitions, in any order (usage lists them sorted by name).
    pub flags: Vec<Flag>,
}

/// Why parsing stopped without a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagError {
    /// `-h`, `-help` (or `--h`, `--help`) and no such flag defined: print the
    /// usage and exit 0.
    Help,
    /// A parse error: Go prints this line, then the usage, and exits 2.
    Invalid(String),
}

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlagError::Help => f.write_str("flag: help requested"),
            FlagError::Invalid(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for FlagError {}

/// The result of a successful parse.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// Values that were set on the command line, in order (a repeated flag
    /// appears several times; the last one wins in [`Parsed::get`]).
    pub set: Vec<(&'static str, String)>,
    /// The arguments left after the flags (the first is the first non-flag).
    pub rest: Vec<String>,
}

impl Parsed {
    /// The value given for `name`, the last one if given several times.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.set
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The string value of `name`, or `default` when it was not given.
    pub fn str_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.get(name).unwrap_or(default)
    }

    /// The boolean value of `name` (already validated), or `default`.
    pub fn bool_or(&self, name: &str, default: bool) -> bool {
        match self.get(name) {
            Some(v) => parse_bool(v).unwrap_or(default),
            None => default,
        }
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `%q` for the simple strings that appear as flag defaults.
fn go_quote(s: &str) -> String {
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

impl FlagSet {
    /// A flag set with the given name and definitions.
    pub fn new(name: &str, flags: Vec<Flag>) -> Self {
        FlagSet {
            name: name.to_string(),
            flags,
        }
    }

    fn lookup(&self, name: &str) -> Option<&Flag> {
        self.flags.iter().find(|f| f.name == name)
    }

    /// Go's `FlagSet.Parse`: flags first, stop at the first non-flag or
    /// after `--`.
    pub fn parse(&self, args: &[String]) -> Result<Parsed, FlagError> {
        let mut parsed = Parsed::default();
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            if arg.len() < 2 || !arg.starts_with('-') {
                break;
            }
            let mut name = &arg[1..];
            if let Some(n) = name.strip_prefix('-') {
                if n.is_empty() {
                    // "--" terminates the flags and is consumed.
                    i += 1;
                    break;
                }
                name = n;
            }
            if name.is_empty() || name.starts_with('-') || name.starts_with('=') {
                return Err(FlagError::Invalid(format!("bad flag syntax: {arg}")));
            }
            i += 1;
            let (name, inline) = match name.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (name, None),
            };
            let Some(flag) = self.lookup(name) else {
                if name == "help" || name == "h" {
                    return Err(FlagError::Help);
                }
                return Err(FlagError::Invalid(format!(
                    "flag provided but not defined: -{name}"
                )));
            };
            let value = match flag.kind {
                Kind::Bool => match inline {
                    Some(v) => {
                        if parse_bool(v).is_none() {
                            return Err(FlagError::Invalid(format!(
                                "invalid boolean value {} for -{name}: parse error",
                                go_quote(v)
                            )));
                        }
                        v.to_string()
                    }
                    None => "true".to_string(),
                },
                Kind::Str | Kind::Value(_) => {
                    let v = match inline {
                        Some(v) => v.to_string(),
                        None => {
                            let Some(v) = args.get(i) else {
                                return Err(FlagError::Invalid(format!(
                                    "flag needs an argument: -{name}"
                                )));
                            };
                            i += 1;
                            v.clone()
                        }
                    };
                    if let Kind::Value(check) = flag.kind {
                        if let Err(e) = check(&v) {
                            return Err(FlagError::Invalid(format!(
                                "invalid value {} for flag -{name}: {e}",
                                go_quote(&v)
                            )));
                        }
                    }
                    v
                }
            };
            parsed.set.push((flag.name, value));
        }
        parsed.rest = args[i..].to_vec();
        Ok(parsed)
    }

    /// Go's `PrintDefaults` output: one entry per flag, sorted by name.
    pub fn defaults(&self) -> String {
        let mut flags: Vec<&Flag> = self.flags.iter().collect();
        flags.sort_by_key(|f| f.name);
        let mut out = String::new();
        for f in flags {
            let mut line = format!("  -{}", f.name);
            match f.kind {
                Kind::Str => line.push_str(" string"),
                Kind::Value(_) => line.push_str(" value"),
                Kind::Bool => {}
            }
            // One-letter flags without a type keep their usage on the same line.
            if line.len() <= 4 {
                line.push('\t');
            } else {
                line.push_str("\n    \t");
            }
            line.push_str(&f.usage.replace('\n', "\n    \t"));
            let zero = match f.kind {
                Kind::Bool => f.default == "false",
                Kind::Str | Kind::Value(_) => f.default.is_empty(),
            };
            if !zero {
                match f.kind {
                    Kind::Str => line.push_str(&format!(" (default {})", go_quote(f.default))),
                    _ => line.push_str(&format!(" (default {})", f.default)),
                }
            }
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// Go's default usage: `Usage of <name>:` and the defaults.
    pub fn usage(&self) -> String {
        format!("Usage of {}:\n{}", self.name, self.defaults())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter_check(v: &str) -> Result<(), String> {
        match v {
            "none" | "exited" | "pending" | "active" => Ok(()),
            _ => Err("exited, pending, active expected".into()),
        }
    }

    fn set() -> FlagSet {
        FlagSet::new(
            "istats",
            vec![
                Flag {
                    name: "filter",
                    kind: Kind::Value(filter_check),
                    usage: "Can be exited, pending or running",
                    default: "none",
                },
                Flag {
                    name: "client",
                    kind: Kind::Str,
                    usage: "UUID of client",
                    default: "",
                },
                Flag {
                    name: "trace",
                    kind: Kind::Bool,
                    usage: "trace",
                    default: "false",
                },
            ],
        )
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn go_forms() {
        let s = set();
        for a in [
            &["-client", "X", "pos"][..],
            &["-client=X", "pos"],
            &["--client", "X", "pos"],
            &["--client=X", "pos"],
        ] {
            let p = s.parse(&args(a)).unwrap();
            assert_eq!(p.get("client"), Some("X"));
            assert_eq!(p.rest, args(&["pos"]));
        }
        let p = s.parse(&args(&["-trace", "-trace=false", "x"])).unwrap();
        assert!(!p.bool_or("trace", true));
    }

    #[test]
    fn stops_at_first_positional_and_double_dash() {
        let p = set().parse(&args(&["uuid", "--client", "X"])).unwrap();
        assert_eq!(p.get("client"), None);
        assert_eq!(p.rest, args(&["uuid", "--client", "X"]));
        let p = set().parse(&args(&["--", "-client"])).unwrap();
        assert_eq!(p.rest, args(&["-client"]));
        let p = set().parse(&args(&["-", "x"])).unwrap();
        assert_eq!(p.rest, args(&["-", "x"]));
    }

    #[test]
    fn errors_are_gos() {
        let s = set();
        let e = |a: &[&str]| match s.parse(&args(a)) {
            Err(FlagError::Invalid(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(e(&["-x"]), "flag provided but not defined: -x");
        assert_eq!(e(&["-filter"]), "flag needs an argument: -filter");
        assert_eq!(
            e(&["--filter", "running"]),
            "invalid value \"running\" for flag -filter: exited, pending, active expected"
        );
        assert_eq!(e(&["---x"]), "bad flag syntax: ---x");
        assert_eq!(
            e(&["-trace=maybe"]),
            "invalid boolean value \"maybe\" for -trace: parse error"
        );
        assert_eq!(s.parse(&args(&["-h"])).unwrap_err(), FlagError::Help);
        assert_eq!(s.parse(&args(&["--help"])).unwrap_err(), FlagError::Help);
    }

    #[test]
    fn usage_matches_go() {
        assert_eq!(
            set().usage(),
            "Usage of istats:\n  -client string\n    \tUUID of client\n  -filter value\n    \tCan be exited, pending or running (default none)\n  -trace\n    \ttrace\n"
        );
        let s = FlagSet::new(
            "x",
            vec![
                Flag {
                    name: "server",
                    kind: Kind::Str,
                    usage: "IP port of server",
                    default: "127.0.0.1:9000",
                },
                Flag {
                    name: "v",
                    kind: Kind::Bool,
                    usage: "short",
                    default: "false",
                },
            ],
        );
        assert_eq!(
            s.defaults(),
            "  -server string\n    \tIP port of server (default \"127.0.0.1:9000\")\n  -v\tshort\n"
        );
    }
}
