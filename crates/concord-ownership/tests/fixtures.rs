//! Data-driven checks of ownership rules, read from `tests/fixtures/*.txt`.
//!
//! Each fixture file runs against a fresh, empty [`OwnershipMap`], one line
//! at a time. Blank lines and lines starting with `#` are ignored; tokens are
//! separated by whitespace.
//!
//! Tokens:
//! - region: `r<u16>`, e.g. `r0`.
//! - key: the token's UTF-8 bytes, or `hex:<hex digits>` for raw bytes
//!   (`hex:` alone is the empty key).
//! - number: decimal, `0x` hexadecimal, or `max` for `u64::MAX`.
//! - error: `NotAnInteger`, `NoOwner`, `UnknownCollection`,
//!   `InvalidRule(<defect>)` with defect `NoRegions`, `NoRanges`,
//!   `UnsortedBounds(<index>)` or `LastBoundNotMax(<bound>)`,
//!   `EpochConflict(<epoch>)`, `Fenced(<write>,<current>)`, `EpochOverflow`,
//!   `SelfTakeover`, `NothingToTakeOver`.
//!
//! Lines:
//! - `rule <collection> modulo <region>...`
//! - `rule <collection> hash <number>:<region>...` (inclusive upper bounds)
//! - `rule <collection> table [default=<region>] <key>=<region>...` (split on the last `=`)
//! - `move <collection> <region> <key>...` moves the keys to the region.
//!
//!   `rule` and `move` may end in `-> <error>`: the change must fail with
//!   exactly that error and leave the map unchanged.
//! - `takeover <from region> <to region> <after seq> <collection>...` is a
//!   forced takeover (may end in `-> <error>` too).
//! - `fenced <collection> <origin region> <seq> <write epoch> -> yes | no`
//!   asks whether a write falls behind a fence.
//! - `owner <collection> <key> -> <region>`
//! - `error <collection> <key> -> <error>` (the error's key/collection must match too)
//! - `hash <key> -> <number>` pins `key_hash`.
//! - `epoch -> <number>`
//! - `route <local region> <collection> <key> -> local | forward <region> | <error>`
//! - `check <write epoch> -> ok | <error>`
//! - `save <name>` / `load <name>` copy the map to / from a named slot;
//!   `merge <name> -> KeptLocal | AdoptedRemote | Identical | <error>`
//!   merges the named map into the current one (an error must leave it unchanged).
//! - `reset` replaces the map with a fresh one.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use concord_crdt::RegionId;
use concord_ownership::{
    MergeOutcome, OwnershipError, OwnershipMap, Route, Rule, RuleDefect, check_epoch, key_hash,
    route,
};

fn region(token: &str) -> Result<RegionId, String> {
    token
        .strip_prefix('r')
        .and_then(|n| n.parse().ok())
        .map(RegionId::new)
        .ok_or_else(|| format!("bad region {token:?}"))
}

fn key(token: &str) -> Result<Vec<u8>, String> {
    let Some(hex) = token.strip_prefix("hex:") else {
        return Ok(token.as_bytes().to_vec());
    };
    if hex.len() % 2 != 0 {
        return Err(format!("odd hex key {token:?}"));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|e| format!("{token:?}: {e}")))
        .collect()
}

fn number(token: &str) -> Result<u64, String> {
    let parsed = if token == "max" {
        Ok(u64::MAX)
    } else if let Some(hex) = token.strip_prefix("0x") {
        u64::from_str_radix(hex, 16)
    } else {
        token.parse()
    };
    parsed.map_err(|e| format!("bad number {token:?}: {e}"))
}

fn render_defect(defect: &RuleDefect) -> String {
    match defect {
        RuleDefect::NoRegions => "NoRegions".into(),
        RuleDefect::NoRanges => "NoRanges".into(),
        RuleDefect::UnsortedBounds { index } => format!("UnsortedBounds({index})"),
        RuleDefect::LastBoundNotMax { last } => format!("LastBoundNotMax({last})"),
    }
}

fn render_error(error: &OwnershipError) -> String {
    match error {
        OwnershipError::NotAnInteger { .. } => "NotAnInteger".into(),
        OwnershipError::NoOwner { .. } => "NoOwner".into(),
        OwnershipError::UnknownCollection { .. } => "UnknownCollection".into(),
        OwnershipError::InvalidRule { defect } => format!("InvalidRule({})", render_defect(defect)),
        OwnershipError::EpochConflict { epoch } => format!("EpochConflict({epoch})"),
        OwnershipError::Fenced {
            write_epoch,
            current,
        } => format!("Fenced({write_epoch},{current})"),
        OwnershipError::EpochOverflow => "EpochOverflow".into(),
        OwnershipError::SelfTakeover { .. } => "SelfTakeover".into(),
        OwnershipError::NothingToTakeOver => "NothingToTakeOver".into(),
    }
}

/// Checks that a lookup error names the collection or key that was asked about.
fn check_error_subject(error: &OwnershipError, collection: &str, k: &[u8]) -> Result<(), String> {
    match error {
        OwnershipError::NotAnInteger { key } | OwnershipError::NoOwner { key } if key != k => {
            Err(format!("error names key {key:?}, asked about {k:?}"))
        }
        OwnershipError::UnknownCollection { collection: c } if c != collection => Err(format!(
            "error names collection {c:?}, asked about {collection:?}"
        )),
        _ => Ok(()),
    }
}

fn parse_rule(kind: &str, args: &[&str]) -> Result<Rule, String> {
    match kind {
        "modulo" => Ok(Rule::Modulo {
            regions: args.iter().map(|t| region(t)).collect::<Result<_, _>>()?,
        }),
        "hash" => {
            let ranges = args
                .iter()
                .map(|t| {
                    let (bound, r) = t
                        .split_once(':')
                        .ok_or_else(|| format!("bad range {t:?}"))?;
                    Ok((number(bound)?, region(r)?))
                })
                .collect::<Result<_, String>>()?;
            Ok(Rule::HashRanges { ranges })
        }
        "table" => {
            let mut entries = BTreeMap::new();
            let mut default = None;
            for t in args {
                let (k, r) = t
                    .rsplit_once('=')
                    .ok_or_else(|| format!("bad entry {t:?}"))?;
                if k == "default" {
                    default = Some(region(r)?);
                } else {
                    entries.insert(key(k)?, region(r)?);
                }
            }
            Ok(Rule::Table { entries, default })
        }
        other => Err(format!("unknown rule kind {other:?}")),
    }
}

/// Splits `a b -> c d` into `([a, b], Some([c, d]))`.
fn split_arrow<'a>(tokens: &'a [&'a str]) -> (&'a [&'a str], Option<&'a [&'a str]>) {
    match tokens.iter().position(|t| *t == "->") {
        Some(i) => (&tokens[..i], Some(&tokens[i + 1..])),
        None => (tokens, None),
    }
}

fn one<'a>(expected: Option<&'a [&'a str]>) -> Result<&'a str, String> {
    match expected {
        Some([e]) => Ok(e),
        _ => Err("expected exactly one token after ->".into()),
    }
}

/// Applies a change that either must succeed (`expected` is `None`) or must
/// fail with the rendered error and leave the map unchanged.
fn expect_change(
    map: &mut OwnershipMap,
    expected: Option<&[&str]>,
    change: impl FnOnce(&mut OwnershipMap) -> Result<u64, OwnershipError>,
) -> Result<(), String> {
    let before = map.clone();
    let result = change(map);
    match (expected, result) {
        (None, Ok(epoch)) if epoch == before.epoch() + 1 && epoch == map.epoch() => Ok(()),
        (None, Ok(epoch)) => Err(format!(
            "change returned epoch {epoch}, map at {}, was {}",
            map.epoch(),
            before.epoch()
        )),
        (None, Err(e)) => Err(format!("unexpected error {e}")),
        (Some(_), Ok(_)) => Err("change succeeded, expected an error".into()),
        (Some(exp), Err(e)) => {
            let exp = one(Some(exp))?;
            if render_error(&e) != exp {
                Err(format!("got {}, expected {exp}", render_error(&e)))
            } else if *map != before {
                Err("failed change modified the map".into())
            } else {
                Ok(())
            }
        }
    }
}

struct Runner {
    map: OwnershipMap,
    slots: HashMap<String, OwnershipMap>,
}

impl Runner {
    fn run(&mut self, line: &str) -> Result<(), String> {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let (lhs, rhs) = split_arrow(&tokens);
        match lhs {
            ["rule", collection, kind, args @ ..] => {
                let rule = parse_rule(kind, args)?;
                let collection = collection.to_string();
                expect_change(&mut self.map, rhs, |m| m.set_rule(collection, rule))
            }
            ["move", collection, to, keys @ ..] => {
                let to = region(to)?;
                let keys = keys.iter().map(|k| key(k)).collect::<Result<Vec<_>, _>>()?;
                expect_change(&mut self.map, rhs, |m| m.move_keys(collection, keys, to))
            }
            ["takeover", from, to, after, collections @ ..] => {
                let (from, to, after) = (region(from)?, region(to)?, number(after)?);
                let collections: Vec<String> = collections.iter().map(|c| c.to_string()).collect();
                expect_change(&mut self.map, rhs, |m| {
                    m.take_over(collections, from, to, after)
                })
            }
            ["fenced", collection, origin, seq, write_epoch] => {
                let fenced = self
                    .map
                    .fence_for(
                        collection,
                        region(origin)?,
                        number(seq)?,
                        number(write_epoch)?,
                    )
                    .is_some();
                let got = if fenced { "yes" } else { "no" };
                let expected = one(rhs)?;
                if got == expected {
                    Ok(())
                } else {
                    Err(format!("fenced {got}, expected {expected}"))
                }
            }
            ["owner", collection, k] => {
                let expected = region(one(rhs)?)?;
                match self.map.owner(collection, &key(k)?) {
                    Ok(got) if got == expected => Ok(()),
                    Ok(got) => Err(format!("owner {got}, expected {expected}")),
                    Err(e) => Err(format!("unexpected error {e}")),
                }
            }
            ["error", collection, k] => {
                let expected = one(rhs)?;
                let k = key(k)?;
                match self.map.owner(collection, &k) {
                    Ok(got) => Err(format!("owner {got}, expected {expected}")),
                    Err(e) if render_error(&e) == expected => {
                        check_error_subject(&e, collection, &k)
                    }
                    Err(e) => Err(format!("got {}, expected {expected}", render_error(&e))),
                }
            }
            ["hash", k] => {
                let expected = number(one(rhs)?)?;
                let got = key_hash(&key(k)?);
                if got == expected {
                    Ok(())
                } else {
                    Err(format!("hash {got:#018x}, expected {expected:#018x}"))
                }
            }
            ["epoch"] => {
                let expected = number(one(rhs)?)?;
                if self.map.epoch() == expected {
                    Ok(())
                } else {
                    Err(format!("epoch {}, expected {expected}", self.map.epoch()))
                }
            }
            ["route", local, collection, k] => {
                let got = match route(&self.map, region(local)?, collection, &key(k)?) {
                    Ok(Route::Local) => "local".to_string(),
                    Ok(Route::Forward(r)) => format!("forward {r}"),
                    Err(e) => render_error(&e),
                };
                let expected = rhs.ok_or("route needs ->")?.join(" ");
                if got == expected {
                    Ok(())
                } else {
                    Err(format!("route {got}, expected {expected}"))
                }
            }
            ["check", write_epoch] => {
                let got = match check_epoch(&self.map, number(write_epoch)?) {
                    Ok(()) => "ok".to_string(),
                    Err(e) => render_error(&e),
                };
                let expected = one(rhs)?;
                if got == expected {
                    Ok(())
                } else {
                    Err(format!("check {got}, expected {expected}"))
                }
            }
            ["save", name] => {
                self.slots.insert(name.to_string(), self.map.clone());
                Ok(())
            }
            ["load", name] => {
                self.map = self
                    .slots
                    .get(*name)
                    .cloned()
                    .ok_or_else(|| format!("no saved map {name:?}"))?;
                Ok(())
            }
            ["merge", name] => {
                let other = self
                    .slots
                    .get(*name)
                    .ok_or_else(|| format!("no saved map {name:?}"))?;
                let before = self.map.clone();
                let got = match self.map.merge(other) {
                    Ok(MergeOutcome::KeptLocal) => "KeptLocal".to_string(),
                    Ok(MergeOutcome::AdoptedRemote) => "AdoptedRemote".to_string(),
                    Ok(MergeOutcome::Identical) => "Identical".to_string(),
                    Err(e) => {
                        if self.map != before {
                            return Err("failed merge modified the map".into());
                        }
                        render_error(&e)
                    }
                };
                let expected = one(rhs)?;
                if got == expected {
                    Ok(())
                } else {
                    Err(format!("merge {got}, expected {expected}"))
                }
            }
            ["reset"] => {
                self.map = OwnershipMap::new();
                Ok(())
            }
            _ => Err("unrecognised line".into()),
        }
    }
}

#[test]
fn every_fixture_line_holds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixture directory")
        .map(|entry| entry.expect("fixture entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    let names: Vec<_> = paths
        .iter()
        .filter_map(|p| p.file_name()?.to_str())
        .collect();
    for required in ["epochs.txt", "hash_ranges.txt", "modulo.txt", "table.txt"] {
        assert!(names.contains(&required), "missing fixture {required}");
    }

    let mut failures = Vec::new();
    for path in &paths {
        let text = std::fs::read_to_string(path).expect("readable fixture");
        let mut runner = Runner {
            map: OwnershipMap::new(),
            slots: HashMap::new(),
        };
        let mut checked = 0;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            checked += 1;
            if let Err(why) = runner.run(line) {
                failures.push(format!("{}:{}: {line}: {why}", path.display(), n + 1));
            }
        }
        assert!(checked > 0, "{} has no lines", path.display());
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
