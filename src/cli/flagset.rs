//! Go's `flag.FlagSet` for string-valued flags, with Go's generated usage:
//! what the two test tools need, whose originals printed Go's texts.

use super::scan::{go_quote, parse_bool, scan, Flag, FlagError, Kind, Setting};

/// A named set of flags, like Go's `flag.FlagSet`.
#[derive(Clone, Debug)]
pub(crate) struct FlagSet {
    /// Name used in `Usage of <name>:`.
    pub name: String,
    /// Definitions, in any order (the usage lists them sorted by name).
    pub flags: Vec<Flag>,
}

/// The result of a successful parse.
#[derive(Debug, Clone, Default)]
pub(crate) struct Parsed {
    /// Values set on the command line, in order (a repeated flag appears
    /// several times; the last one wins in [`Parsed::get`]); a boolean as
    /// `"true"` or `"false"`.
    pub set: Vec<(&'static str, String)>,
    /// The arguments left after the flags (the first is the first non-flag).
    pub rest: Vec<String>,
}

impl Parsed {
    /// The value given for `name`, the last one if given several times.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.set
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The string value of `name`, or `default` when it was not given.
    pub(crate) fn str_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.get(name).unwrap_or(default)
    }

    /// The boolean value of `name`, or `default` when it was not given.
    pub(crate) fn bool_or(&self, name: &str, default: bool) -> bool {
        self.get(name).and_then(parse_bool).unwrap_or(default)
    }
}

impl FlagSet {
    /// A flag set with the given name and definitions.
    pub(crate) fn new(name: &str, flags: Vec<Flag>) -> Self {
        FlagSet {
            name: name.to_string(),
            flags,
        }
    }

    /// Go's `FlagSet.Parse`: flags first, stop at the first non-flag or
    /// after `--`; messages quote values as Go does.
    pub(crate) fn parse(&self, args: &[String]) -> Result<Parsed, FlagError> {
        let mut set = Vec::new();
        let n = scan(&self.flags, args, go_quote, |flag, s| {
            let v = match s {
                Setting::Bool(b) => b.to_string(),
                // The arguments are strings, so the value is one too.
                Setting::Value(v) => v.to_string_lossy().into_owned(),
            };
            set.push((flag.name, v));
            Ok(())
        })?;
        Ok(Parsed {
            set,
            rest: args[n..].to_vec(),
        })
    }

    /// Go's `PrintDefaults` output: one entry per flag, sorted by name.
    pub(crate) fn defaults(&self) -> String {
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
    pub(crate) fn usage(&self) -> String {
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
    fn values_and_rest() {
        let s = set();
        let p = s.parse(&args(&["--client", "X", "pos"])).unwrap();
        assert_eq!(p.get("client"), Some("X"));
        assert_eq!(p.str_or("filter", "none"), "none");
        assert_eq!(p.rest, args(&["pos"]));
        let p = s.parse(&args(&["-trace", "-trace=F", "x"])).unwrap();
        assert!(!p.bool_or("trace", true));
        assert!(s.parse(&args(&[])).unwrap().bool_or("trace", true));
        // Go reads `-client --filter` as client "--filter".
        let p = s.parse(&args(&["-client", "--filter"])).unwrap();
        assert_eq!(p.get("client"), Some("--filter"));
        assert_eq!(p.get("filter"), None);
        let p = set().parse(&args(&["uuid", "--client", "X"])).unwrap();
        assert_eq!(p.get("client"), None);
        assert_eq!(p.rest, args(&["uuid", "--client", "X"]));
    }

    #[test]
    fn errors_are_gos() {
        let e = |a: &[&str]| match set().parse(&args(a)) {
            Err(FlagError::Bad(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            e(&["--filter", "running"]),
            "invalid value \"running\" for flag -filter: exited, pending, active expected"
        );
        assert_eq!(
            e(&["-trace=maybe"]),
            "invalid boolean value \"maybe\" for -trace: parse error"
        );
        assert_eq!(set().parse(&args(&["-h"])).unwrap_err(), FlagError::Help);
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
