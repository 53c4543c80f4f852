//! Runs any number of simulation seeds:
//! `concord-sim --seeds 1000 [--from S] [--nodes 3] [--steps 400] [--clean-contexts] [--verbose]`.
//!
//! Prints progress; on the first failure prints `FAILED seed=<n>: <violation>`
//! and exits 1.

use std::process::ExitCode;
use std::time::Instant;

use concord_sim::{Sim, SimConfig};

const USAGE: &str = "usage: concord-sim [--seeds N] [--from S] [--nodes N] [--steps N] [--clean-contexts] [--verbose]";

struct Args {
    seeds: u64,
    from: u64,
    nodes: u16,
    steps: u32,
    verbose: bool,
    dirty_contexts: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        seeds: 200,
        from: 0,
        nodes: 3,
        steps: 400,
        verbose: false,
        dirty_contexts: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--verbose" || flag == "-v" {
            args.verbose = true;
            continue;
        }
        if flag == "--clean-contexts" {
            args.dirty_contexts = false;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_owned());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |e: std::num::ParseIntError| format!("{flag} {value}: {e}\n{USAGE}");
        match flag.as_str() {
            "--seeds" => args.seeds = value.parse().map_err(bad)?,
            "--from" => args.from = value.parse().map_err(bad)?,
            "--nodes" => args.nodes = value.parse().map_err(bad)?,
            "--steps" => args.steps = value.parse().map_err(bad)?,
            _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    if !(2..=16).contains(&args.nodes) {
        return Err(format!("--nodes must be 2 to 16\n{USAGE}"));
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let (mut writes, mut acked) = (0u64, 0u64);
    let last = args.from.saturating_add(args.seeds);
    for seed in args.from..last {
        let config = SimConfig::new(seed)
            .with_nodes(args.nodes)
            .with_steps(args.steps)
            .with_dirty_contexts(args.dirty_contexts);
        match Sim::new(config).and_then(Sim::run) {
            Ok(report) => {
                writes += report.writes;
                acked += report.acked;
                if args.verbose {
                    println!("ok {report}");
                }
            }
            Err(violation) => {
                println!("FAILED seed={seed}: {violation}");
                return ExitCode::FAILURE;
            }
        }
        let done = seed - args.from + 1;
        if !args.verbose && (done % 100 == 0 || seed + 1 == last) {
            println!(
                "{done}/{} seeds passed ({writes} writes, {acked} acknowledged, {:.1} s)",
                args.seeds,
                started.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "all {} seeds from {} passed in {:.1} s",
        args.seeds,
        args.from,
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
