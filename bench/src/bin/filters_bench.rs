//! Load the cinder + nova filter sets and decide a mixed command corpus; print load
//! time and per-match median as JSON (bench/filters.sh puts it next to rootwrap's).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use moor_bench::stats;
use moor_filters::config::parse_dir_list;
use moor_filters::{LoadOptions, RealSystem};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let filters_path = args
        .next()
        .context("usage: filters_bench FILTERS_PATH EXEC_DIRS CORPUS.jsonl [ROUNDS]")?;
    let exec_dirs = parse_dir_list(&args.next().context("exec dirs")?, "exec_dirs")?;
    let corpus_path = PathBuf::from(args.next().context("corpus")?);
    let rounds: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(200);
    let dirs = parse_dir_list(&filters_path, "filters_path")?;
    let opts = LoadOptions {
        trusted_owner: std::fs::metadata(&dirs[0])?.uid_owner(),
    };

    let corpus: Vec<Vec<String>> = std::fs::read_to_string(&corpus_path)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;

    let mut load_times = Vec::new();
    let mut loaded = None;
    for _ in 0..50 {
        let t = Instant::now();
        let l = moor_filters::load(&dirs, &opts);
        load_times.push(t.elapsed());
        loaded = Some(l);
    }
    let loaded = loaded.context("no load")?;
    anyhow::ensure!(
        loaded.is_clean(),
        "filter set has errors: {:?}",
        loaded.errors().collect::<Vec<_>>()
    );
    let set = &loaded.set;

    let mut match_times = Vec::with_capacity(rounds * corpus.len());
    let mut allowed = 0;
    for round in 0..rounds {
        for argv in &corpus {
            let t = Instant::now();
            let d = set.decide(argv, &exec_dirs, &RealSystem);
            match_times.push(t.elapsed());
            if round == 0 && d.allowed() {
                allowed += 1;
            }
        }
    }
    let l = stats(&mut load_times);
    let m = stats(&mut match_times);
    println!(
        "{}",
        serde_json::json!({
            "impl": "moor",
            "filters": set.filters.len(),
            "commands": corpus.len(),
            "allowed": allowed,
            "load_median_us": l.median.as_secs_f64() * 1e6,
            "match_median_us": m.median.as_secs_f64() * 1e6,
            "match_p99_us": m.p99.as_secs_f64() * 1e6,
            "match_samples": m.samples,
        })
    );
    Ok(())
}

trait UidOwner {
    fn uid_owner(&self) -> u32;
}

impl UidOwner for std::fs::Metadata {
    fn uid_owner(&self) -> u32 {
        std::os::unix::fs::MetadataExt::uid(self)
    }
}
