//! Benchmark (prints figures; asserts nothing): the memory of `dsmon serve` (the real binary)
//! polling 100 replayed agents every 2 s and logging them every minute, with nobody viewing.
//! Samples the server's resident set every 10 s and prints it at 1, 2, 5 and 10 minutes, its peak,
//! and at the end where it is: the binary's pages, the heap (malloc's main heap and its per-thread
//! arenas), the threads' stacks and other anonymous memory, read from `/proc/PID/smaps`.
//!
//! `cargo bench --no-default-features --bench memory` (`DSMON_BENCH_SECS` changes the 600 s,
//! `DSMON_BENCH_NODES` the 100 nodes).

#[path = "support/replay.rs"]
mod replay;
#[path = "support/serve.rs"]
mod serve;

use std::time::{Duration, Instant};

/// Seconds between samples.
const SAMPLE_SECS: u64 = 10;
/// When the resident set is reported (minutes into the run).
const REPORT_AT_MIN: [u64; 4] = [1, 2, 5, 10];

fn main() {
    let secs = serve::env_num("DSMON_BENCH_SECS", 600);
    let nodes = serve::env_num("DSMON_BENCH_NODES", 100) as usize;
    let rt = serve::runtime(Some(1));
    let replay = rt.block_on(replay::ReplayServer::start());
    let mut server = serve::Served::polling(
        "live_interval = \"2s\"\nlog_interval = \"1m\"",
        &replay.nodes_toml(nodes),
    );
    let pid = server.pid();
    println!(
        "dsmon serve (pid {pid}): {nodes} nodes, live_interval 2 s, log_interval 1 min, no viewer, {secs} s; RSS sampled every {SAMPLE_SECS} s"
    );
    println!(
        "{:>6} {:>9} {:>9} {:>9} {:>8} {:>8}",
        "t (s)", "RSS kB", "anon kB", "file kB", "threads", "sockets"
    );

    let t0 = Instant::now();
    let mut samples: Vec<(u64, Status)> = Vec::new();
    let mut next = SAMPLE_SECS;
    while next <= secs {
        let wake = t0 + Duration::from_secs(next);
        std::thread::sleep(wake.saturating_duration_since(Instant::now()));
        let Some(s) = Status::read(pid) else {
            println!("dsmon serve is gone at {next} s");
            break;
        };
        println!(
            "{next:>6} {:>9} {:>9} {:>9} {:>8} {:>8}",
            s.rss_kb,
            s.anon_kb,
            s.file_kb,
            s.threads,
            sockets(pid)
        );
        samples.push((next, s));
        next += SAMPLE_SECS;
    }
    let breakdown = Breakdown::read(pid);
    let cpu_ticks = serve::cpu_ticks(pid);
    let elapsed = t0.elapsed().as_secs_f64();
    server.stop();

    println!();
    for min in REPORT_AT_MIN {
        if let Some((_, s)) = samples.iter().find(|(t, _)| *t == min * 60) {
            println!("RSS at {min:>2} min: {:>6} kB", s.rss_kb);
        }
    }
    if let Some((t, s)) = samples.iter().max_by_key(|(_, s)| s.rss_kb) {
        println!("peak of the samples: {} kB at {t} s", s.rss_kb);
    }
    let hz = serve::ticks_per_sec();
    println!(
        "server CPU: {:.1} s in {elapsed:.0} s = {:.1} % of one core",
        cpu_ticks as f64 / hz,
        cpu_ticks as f64 / hz / elapsed * 100.0
    );
    if let Some(b) = breakdown {
        println!();
        println!("where the resident set is at the end (kB):");
        println!("  the dsmon binary's pages          {:>7}", b.binary);
        println!("  other files, [vdso] (libc, ...)   {:>7}", b.other_files);
        println!(
            "  heap: main [heap]                 {:>7}  ({} kB dirty)",
            b.main_heap, b.main_heap_dirty
        );
        println!(
            "  heap: {:>2} per-thread malloc arenas {:>7}",
            b.arenas, b.arena_rss
        );
        println!(
            "  thread stacks ({:>2} mappings)       {:>7}",
            b.stacks + 1,
            b.stack_rss
        );
        println!("  other anonymous mappings          {:>7}", b.other_anon);
        println!(
            "  heap share: {:.0} % of {} kB",
            100.0 * (b.main_heap + b.arena_rss) as f64 / b.total().max(1) as f64,
            b.total()
        );
    }
}

/// Open sockets: the agents' connections (four per node while polled, kept for the next poll),
/// the listener and any viewer.
fn sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0)
}

/// What `/proc/PID/status` says about the resident set.
struct Status {
    rss_kb: u64,
    anon_kb: u64,
    file_kb: u64,
    threads: u64,
}

impl Status {
    fn read(pid: u32) -> Option<Self> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Some(Self {
            rss_kb: field("VmRSS:"),
            anon_kb: field("RssAnon:"),
            file_kb: field("RssFile:"),
            threads: field("Threads:"),
        })
    }
}

/// The resident set by kind of mapping (kB), from `/proc/PID/smaps`.
///
/// Anonymous mappings are told apart by their neighbours, as glibc lays them out: a thread's stack
/// is a read-write mapping right above its inaccessible guard page; a per-thread malloc arena is a
/// read-write mapping right below the inaccessible rest of its 64 MiB reservation.
#[derive(Default)]
struct Breakdown {
    binary: u64,
    other_files: u64,
    main_heap: u64,
    main_heap_dirty: u64,
    arenas: u64,
    arena_rss: u64,
    stacks: u64,
    stack_rss: u64,
    other_anon: u64,
}

struct Mapping {
    start: u64,
    end: u64,
    perms: String,
    path: String,
    rss: u64,
    dirty: u64,
}

impl Breakdown {
    fn read(pid: u32) -> Option<Self> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mut maps: Vec<Mapping> = Vec::new();
        for line in text.lines() {
            let mut f = line.split_whitespace();
            let first = f.next().unwrap_or("");
            if let Some((a, b)) = first.split_once('-') {
                if let (Ok(start), Ok(end)) =
                    (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16))
                {
                    let perms = f.next().unwrap_or("").to_string();
                    let path = f.nth(3).unwrap_or("").to_string();
                    maps.push(Mapping {
                        start,
                        end,
                        perms,
                        path,
                        rss: 0,
                        dirty: 0,
                    });
                    continue;
                }
            }
            let kb = f.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            if let Some(m) = maps.last_mut() {
                match first {
                    "Rss:" => m.rss = kb,
                    "Private_Dirty:" => m.dirty = kb,
                    _ => {}
                }
            }
        }
        let mut b = Self::default();
        for (i, m) in maps.iter().enumerate() {
            // A one-page guard: a stack (a mapping may have both neighbours; the guard decides).
            let guard_below = i > 0
                && maps[i - 1].end == m.start
                && maps[i - 1].end - maps[i - 1].start == 4096
                && maps[i - 1].perms.starts_with("---");
            let reserve_above = maps
                .get(i + 1)
                .is_some_and(|n| n.start == m.end && n.perms.starts_with("---"));
            match m.path.as_str() {
                p if !exe.is_empty() && p == exe => b.binary += m.rss,
                "[heap]" => {
                    b.main_heap += m.rss;
                    b.main_heap_dirty += m.dirty;
                }
                "[stack]" => b.stack_rss += m.rss,
                p if p.starts_with('/') => b.other_files += m.rss,
                p if p.starts_with('[') => b.other_files += m.rss,
                _ if !m.perms.starts_with("rw") => {}
                _ if guard_below => {
                    b.stacks += 1;
                    b.stack_rss += m.rss;
                }
                _ if reserve_above => {
                    b.arenas += 1;
                    b.arena_rss += m.rss;
                }
                _ => b.other_anon += m.rss,
            }
        }
        Some(b)
    }

    fn total(&self) -> u64 {
        self.binary
            + self.other_files
            + self.main_heap
            + self.arena_rss
            + self.stack_rss
            + self.other_anon
    }
}
