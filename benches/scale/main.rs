//! Scale harness: N sources on a loopback server, `pivotwatch once --json`
//! run as a child process under `/usr/bin/time -v`.
//!
//! ```sh
//! cargo bench --bench scale -- --sources 10000
//! cargo bench --bench scale -- --sources 2000 --no-conditional
//! cargo bench --bench scale -- --history 1000      # store growth of one source
//! ```
//!
//! Sources mode: writes a watchlist with N/2 entities (a catalogue and a
//! registry record each), then runs four passes against a fresh state folder:
//! `startup` (`pivotwatch check`: load and validate the watchlists),
//! `initial` (generation 0, empty store: every source `new`), `nochange`
//! (generation 0 again: every source `unchanged`) and `changed` (generation
//! 1: `--fraction` of the pages changed inside the selected region, another
//! `--noise-fraction` only outside it or cosmetically; the `changed` set must
//! equal the oracle). Reports wall, CPU (user+sys), peak RSS, the store's size,
//! the server's request counts and CPU, the machine load, and missed / false
//! changes. Results go to `--out` (default `target/scale/<run>/`) as
//! `results.jsonl` and `summary.md`; the summary is also printed.
//!
//! History mode: one catalogue page of about 50 KB checked K times, its body
//! different every time (outside the region), with a real change every 100th
//! check; reports the store size after K checks.

#[path = "pages.rs"]
mod pages;
mod server;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clap::Parser;
use serde::Serialize;

use pages::{Model, PageState, entity_toml, source_of};
use server::Server;

#[derive(Parser, Debug)]
#[command(about = "pivotwatch loopback scale harness")]
struct Args {
    /// Number of sources (N/2 catalogues + N/2 registry records).
    #[arg(long, default_value_t = 1000)]
    sources: usize,
    /// Fraction of sources really changed in generation 1.
    #[arg(long, default_value_t = 0.01)]
    fraction: f64,
    /// Fraction of sources changed only outside the region (or cosmetically).
    #[arg(long, default_value_t = 0.01)]
    noise_fraction: f64,
    /// Seed label of the page generator.
    #[arg(long, default_value = "pivotwatch")]
    seed: String,
    /// `[http] concurrency` for pivotwatch (default: pivotwatch's own).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Server ignores If-None-Match and sends no ETag (every pass fetches
    /// every body, as with registries that do not support validators).
    #[arg(long)]
    no_conditional: bool,
    /// Server gzips bodies when asked (costs server CPU).
    #[arg(long)]
    gzip: bool,
    /// Pass `--no-deliver` to `once` (default: alerts are written to the spool).
    #[arg(long)]
    no_deliver: bool,
    /// History mode: check one ~50 KB catalogue page this many times.
    #[arg(long)]
    history: Option<u32>,
    /// pivotwatch binary (default: the one cargo built with this bench).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Output folder (default: target/scale/<mode>-<N>-<unix time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Bound of one pass, in seconds.
    #[arg(long, default_value_t = 1800)]
    timeout: u64,
    /// Run only these passes (comma-separated: startup,initial,nochange,changed).
    #[arg(long, value_delimiter = ',')]
    passes: Option<Vec<String>>,
    /// Prefix pivotwatch's command line with this (split on spaces), e.g.
    /// `perf record -F 999 -g -o /tmp/pw.perf --` (see `--wrap-pass`).
    #[arg(long, allow_hyphen_values = true)]
    wrap: Option<String>,
    /// The pass that `--wrap` applies to (default: every pass).
    #[arg(long)]
    wrap_pass: Option<String>,
    /// Port of the loopback server (default: any free one). With
    /// `--reuse-state`, the port of the run that built the state.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Run `nochange` and `changed` again on the state folder a previous
    /// run left in `--out` (same `--sources`, `--seed` and `--port`), which
    /// is at generation `--generation`: `nochange` serves that generation,
    /// `changed` the next. Saves the first pass (~17 min at 100k) when only
    /// the later passes are being measured.
    #[arg(long, requires = "out")]
    reuse_state: bool,
    /// The generation the reused state was last checked at (see
    /// `--reuse-state`; a full run leaves it at 1).
    #[arg(long, default_value_t = 1)]
    generation: u32,
    /// Ignored (cargo bench passes it).
    #[arg(long, hide = true)]
    bench: bool,
}

/// One measured run of a child process.
#[derive(Debug, Default, Clone, Serialize)]
struct Measured {
    wall_s: f64,
    user_s: f64,
    sys_s: f64,
    cpu_s: f64,
    max_rss_mib: f64,
    exit: i32,
}

#[derive(Debug, Default, Serialize)]
struct PassResult {
    date: String,
    pass: String,
    sources: usize,
    conditional: bool,
    gzip: bool,
    concurrency: Option<usize>,
    #[serde(flatten)]
    m: Measured,
    statuses: BTreeMap<String, usize>,
    reported: usize,
    expected_changed: usize,
    missed: usize,
    false_changes: usize,
    missed_ids: Vec<String>,
    false_ids: Vec<String>,
    db_bytes: u64,
    spool_bytes: u64,
    db_growth_per_source: Option<f64>,
    server: server::StatsSnapshot,
    server_cpu_s: f64,
    others_cpu_s: f64,
    load_before: String,
    load_after: String,
    command: String,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("scale: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), String> {
    if !Path::new("/usr/bin/time").exists() {
        return Err("/usr/bin/time is missing: apt-get install time".into());
    }
    let bin = args
        .bin
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_pivotwatch")));
    let stamp = unix_now();
    let out = args.out.clone().unwrap_or_else(|| {
        let mode = if args.history.is_some() {
            "history"
        } else {
            "sources"
        };
        let n = args.history.map(|h| h as usize).unwrap_or(args.sources);
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target/scale")
            .join(format!("{mode}-{n}-{stamp}"))
    });
    if args.reuse_state {
        if !out.join("state").exists() {
            return Err(format!("{} has no state folder to reuse", out.display()));
        }
        if args.port == 0 || args.history.is_some() {
            return Err(
                "--reuse-state needs the --port of the run that built the state, and no --history"
                    .into(),
            );
        }
    } else if out.join("state").exists() {
        return Err(format!("{} already has a state folder", out.display()));
    }
    std::fs::create_dir_all(out.join("cfg/watchlists")).map_err(|e| e.to_string())?;
    let sources = if args.history.is_some() {
        2
    } else {
        args.sources.max(2) / 2 * 2
    };
    let model = Model {
        seed: args.seed.clone(),
        n: sources,
        fraction: args.fraction,
        noise_fraction: args.noise_fraction,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let srv = rt
        .block_on(Server::start(
            model.clone(),
            !args.no_conditional,
            args.gzip,
            args.port,
        ))
        .map_err(|e| format!("cannot start the loopback server: {e}"))?;
    eprintln!(
        "scale: {} sources on {}, output in {}",
        sources,
        srv.base(),
        out.display()
    );
    let settings = out.join("cfg/pivotwatch.toml");
    let mut toml = String::from("[http]\nallow_private_addresses = true\ntimeout = \"120s\"\n");
    if let Some(c) = args.concurrency {
        toml.push_str(&format!("concurrency = {c}\n"));
    }
    write(&settings, &toml)?;
    match args.history {
        Some(k) => history(&args, &bin, &out, &srv, &model, k),
        None => sources_mode(&args, &bin, &out, &srv, &model),
    }
}

/// `pivotwatch --config … --watchlists … --state-dir …` for the run in `out`.
fn pivotwatch_cmd(bin: &Path, out: &Path) -> Vec<String> {
    vec![
        bin.display().to_string(),
        "--config".into(),
        out.join("cfg/pivotwatch.toml").display().to_string(),
        "--watchlists".into(),
        out.join("cfg/watchlists").display().to_string(),
        "--state-dir".into(),
        out.join("state").display().to_string(),
    ]
}

fn sources_mode(
    args: &Args,
    bin: &Path,
    out: &Path,
    srv: &Server,
    model: &Model,
) -> Result<(), String> {
    let entities = model.n / 2;
    // One watchlist file per 5000 entities.
    for (f, chunk) in (0..entities).collect::<Vec<_>>().chunks(5000).enumerate() {
        let mut s = format!("[watchlist]\nname = \"scale-{f}\"\nschedule = \"0 */6 * * *\"\n");
        for &e in chunk {
            s.push_str(&entity_toml(&srv.base(), e));
        }
        write(&out.join(format!("cfg/watchlists/scale-{f:03}.toml")), &s)?;
    }
    let want = |p: &str| {
        args.passes
            .as_ref()
            .is_none_or(|v| v.iter().any(|x| x == p))
    };
    let mut results = Vec::new();
    let mut prev_db: Option<u64> = None;
    let base_gen = if args.reuse_state { args.generation } else { 0 };
    for pass in ["startup", "initial", "nochange", "changed"] {
        if !want(pass) || (args.reuse_state && matches!(pass, "initial" | "startup")) {
            continue;
        }
        let g = base_gen + u32::from(pass == "changed");
        srv.set_generation(g);
        // Only `changed` moves to a new generation; the other passes
        // serve the generation the store already saw.
        let expected = if pass == "changed" {
            model.expected(g)
        } else {
            pages::Expected::default()
        };
        let mut cmd = pivotwatch_cmd(bin, out);
        if pass == "startup" {
            cmd.push("check".into());
        } else {
            // One loopback host serves every source: per-host spacing
            // would measure the politeness, not pivotwatch.
            cmd.extend(["once".into(), "--json".into(), "--no-politeness".into()]);
            if args.no_deliver {
                cmd.push("--no-deliver".into());
            }
        }
        if let Some(w) = &args.wrap
            && args.wrap_pass.as_deref().is_none_or(|p| p == pass)
        {
            let mut c: Vec<String> = w.split_whitespace().map(str::to_string).collect();
            c.extend(cmd);
            cmd = c;
        }
        let mut r = measure(args, out, pass, &cmd, srv)?;
        r.sources = model.n;
        if pass != "startup" {
            let stdout =
                std::fs::read_to_string(out.join(format!("{pass}.stdout"))).unwrap_or_default();
            let mut changed: BTreeSet<String> = BTreeSet::new();
            for line in stdout.lines() {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                let status = v["status"].as_str().unwrap_or("?").to_string();
                *r.statuses.entry(status.clone()).or_default() += 1;
                r.reported += 1;
                let id = format!(
                    "{}/{}",
                    v["entity"].as_str().unwrap_or(""),
                    v["source"].as_str().unwrap_or("")
                );
                let bad = match pass {
                    "initial" => status != "new",
                    "nochange" => status != "unchanged",
                    _ => status != "changed" && status != "unchanged",
                };
                if bad {
                    r.false_ids.push(format!("{id}:{status}"));
                }
                if status == "changed" {
                    changed.insert(id);
                }
            }
            let oracle: BTreeSet<String> = expected
                .content
                .iter()
                .map(|&i| {
                    let (e, s) = source_of(i);
                    format!("{e}/{s}")
                })
                .collect();
            r.expected_changed = oracle.len();
            r.missed_ids = oracle.difference(&changed).cloned().collect();
            r.false_ids.extend(changed.difference(&oracle).cloned());
            if r.reported != model.n {
                r.missed_ids
                    .push(format!("({} of {} sources reported)", r.reported, model.n));
            }
            r.missed = r.missed_ids.len();
            r.false_changes = r.false_ids.len();
            r.missed_ids.truncate(20);
            r.false_ids.truncate(20);
            if let Some(p) = prev_db {
                r.db_growth_per_source = Some((r.db_bytes as f64 - p as f64) / model.n as f64);
            }
            prev_db = Some(r.db_bytes);
        }
        print_line(&r);
        results.push(r);
    }
    finish(out, &results)
}

fn history(
    args: &Args,
    bin: &Path,
    out: &Path,
    srv: &Server,
    model: &Model,
    k: u32,
) -> Result<(), String> {
    // Entity 0's catalogue is page 0; check only it.
    let mut s = String::from("[watchlist]\nname = \"history\"\n");
    s.push_str(&entity_toml(&srv.base(), 0));
    write(&out.join("cfg/watchlists/history.toml"), &s)?;
    let size = model.render(0, &PageState::default()).len();
    eprintln!("scale: history of one catalogue page of {size} bytes, {k} checks");
    let mut results = Vec::new();
    let mut totals = Measured::default();
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut missed = 0;
    let mut false_changes = 0;
    let load_before = loadavg();
    let busy0 = machine_busy();
    let cpu0 = self_cpu();
    srv.stats(true);
    for check in 1..=k {
        // Noise (script build id, promo, row order) every check; a real
        // change (new rows) every 100th.
        let content: Vec<u32> = (1..=check).filter(|c| c % 100 == 0).collect();
        let real = check % 100 == 0;
        srv.set_states(vec![
            PageState {
                content,
                noise: check,
            },
            PageState::default(),
        ]);
        let mut cmd = pivotwatch_cmd(bin, out);
        cmd.extend([
            "once".into(),
            "--json".into(),
            "--no-deliver".into(),
            "--no-politeness".into(),
            "--source".into(),
            "e0/catalogue".into(),
        ]);
        let (m, stdout) = run_timed(args, out, "history", &cmd)?;
        totals.wall_s += m.wall_s;
        totals.user_s += m.user_s;
        totals.sys_s += m.sys_s;
        totals.cpu_s += m.cpu_s;
        totals.max_rss_mib = totals.max_rss_mib.max(m.max_rss_mib);
        totals.exit = totals.exit.max(m.exit);
        let status = serde_json::from_str::<serde_json::Value>(stdout.trim())
            .ok()
            .and_then(|v| v["status"].as_str().map(str::to_string))
            .unwrap_or_else(|| "?".into());
        let want = if check == 1 {
            "new"
        } else if real {
            "changed"
        } else {
            "unchanged"
        };
        if status != want {
            if want == "changed" {
                missed += 1
            } else {
                false_changes += 1
            }
        }
        *statuses.entry(status).or_default() += 1;
        if check % 100 == 0 {
            eprintln!(
                "scale: {check} checks, db {} bytes",
                dir_bytes(&out.join("state/db"))
            );
        }
    }
    let r = PassResult {
        date: now_string(),
        pass: format!("history x{k}"),
        sources: 1,
        conditional: !args.no_conditional,
        gzip: args.gzip,
        concurrency: args.concurrency,
        m: totals,
        statuses,
        reported: k as usize,
        expected_changed: (k / 100) as usize,
        missed,
        false_changes,
        db_bytes: dir_bytes(&out.join("state/db")),
        spool_bytes: dir_bytes(&out.join("state/spool")),
        server: srv.stats(true),
        server_cpu_s: self_cpu() - cpu0,
        others_cpu_s: 0.0,
        load_before,
        load_after: loadavg(),
        command: format!(
            "{} (x{k}, page {size} bytes)",
            "pivotwatch once --json --no-deliver --source e0/catalogue"
        ),
        ..PassResult::default()
    };
    let _ = busy0;
    print_line(&r);
    results.push(r);
    finish(out, &results)
}

/// Runs one pass under /usr/bin/time -v and gathers the machine figures.
fn measure(
    args: &Args,
    out: &Path,
    pass: &str,
    cmd: &[String],
    srv: &Server,
) -> Result<PassResult, String> {
    srv.stats(true);
    let load_before = loadavg();
    let busy0 = machine_busy();
    let cpu0 = self_cpu();
    let (m, _) = run_timed(args, out, pass, cmd)?;
    let server_cpu_s = self_cpu() - cpu0;
    let busy = machine_busy() - busy0;
    Ok(PassResult {
        date: now_string(),
        pass: pass.into(),
        conditional: !args.no_conditional,
        gzip: args.gzip,
        concurrency: args.concurrency,
        others_cpu_s: ((busy - m.cpu_s - server_cpu_s) * 100.0).round() / 100.0,
        server_cpu_s: (server_cpu_s * 100.0).round() / 100.0,
        m,
        db_bytes: dir_bytes(&out.join("state/db")),
        spool_bytes: dir_bytes(&out.join("state/spool")),
        server: srv.stats(true),
        load_before,
        load_after: loadavg(),
        command: cmd.join(" "),
        ..PassResult::default()
    })
}

fn run_timed(
    args: &Args,
    out: &Path,
    pass: &str,
    cmd: &[String],
) -> Result<(Measured, String), String> {
    let timef = out.join(format!("{pass}.time"));
    let stdout = out.join(format!("{pass}.stdout"));
    let stderr = out.join(format!("{pass}.stderr"));
    let started = Instant::now();
    let status = Command::new("/usr/bin/time")
        .arg("-v")
        .arg("-o")
        .arg(&timef)
        .arg("timeout")
        .arg(args.timeout.to_string())
        .args(cmd)
        .stdout(std::fs::File::create(&stdout).map_err(|e| e.to_string())?)
        .stderr(std::fs::File::create(&stderr).map_err(|e| e.to_string())?)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", cmd[0]))?;
    let wall = started.elapsed().as_secs_f64();
    let t = std::fs::read_to_string(&timef).unwrap_or_default();
    let field = |name: &str| -> f64 {
        t.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let user = field("User time (seconds):");
    let sys = field("System time (seconds):");
    let m = Measured {
        wall_s: (wall * 1000.0).round() / 1000.0,
        user_s: user,
        sys_s: sys,
        cpu_s: ((user + sys) * 100.0).round() / 100.0,
        max_rss_mib: (field("Maximum resident set size (kbytes):") / 1024.0 * 10.0).round() / 10.0,
        exit: status.code().unwrap_or(-1),
    };
    Ok((m, std::fs::read_to_string(&stdout).unwrap_or_default()))
}

fn print_line(r: &PassResult) {
    eprintln!(
        "scale: {:<9} wall {:>8.2}s cpu {:>8.2}s rss {:>7.1}MiB exit {} db {:>11} B statuses {:?} missed {} false {} server {}req/{}x304 cpu {:.2}s others {:.2}s load {}",
        r.pass,
        r.m.wall_s,
        r.m.cpu_s,
        r.m.max_rss_mib,
        r.m.exit,
        r.db_bytes,
        r.statuses,
        r.missed,
        r.false_changes,
        r.server.requests,
        r.server.not_modified,
        r.server_cpu_s,
        r.others_cpu_s,
        r.load_before
    );
}

fn finish(out: &Path, results: &[PassResult]) -> Result<(), String> {
    let mut jsonl = String::new();
    let mut md = String::from(
        "| pass | sources | cond. | wall s | CPU s | peak RSS MiB | exit | statuses | expected changed | missed | false | db bytes | db growth B/source | server req (200/304) | server CPU s | others' CPU s | load before |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        jsonl.push_str(&serde_json::to_string(r).map_err(|e| e.to_string())?);
        jsonl.push('\n');
        md.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} ({}/{}) | {:.2} | {:.2} | {} |\n",
            r.pass,
            r.sources,
            if r.conditional { "yes" } else { "no" },
            r.m.wall_s,
            r.m.cpu_s,
            r.m.max_rss_mib,
            r.m.exit,
            r.statuses.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "),
            r.expected_changed,
            r.missed,
            r.false_changes,
            r.db_bytes,
            r.db_growth_per_source.map(|g| format!("{g:.1}")).unwrap_or_default(),
            r.server.requests,
            r.server.ok,
            r.server.not_modified,
            r.server_cpu_s,
            r.others_cpu_s,
            r.load_before,
        ));
    }
    write(&out.join("results.jsonl"), &jsonl)?;
    write(&out.join("summary.md"), &md)?;
    println!("{md}");
    println!("results: {}", out.join("results.jsonl").display());
    Ok(())
}

fn write(p: &Path, s: &str) -> Result<(), String> {
    std::fs::write(p, s).map_err(|e| format!("{}: {e}", p.display()))
}

fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Busy CPU seconds of the whole machine since boot (all but idle+iowait).
fn machine_busy() -> f64 {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<f64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        return 0.0;
    }
    (v.iter().sum::<f64>() - v[3] - v[4]) / 100.0
}

/// CPU seconds of this process (the loopback server; the driver only waits).
fn self_cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<f64> = after
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // After ")": state is not numeric, so utime/stime are the 11th/12th numbers.
    match (f.get(10), f.get(11)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => 0.0,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn now_string() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}
