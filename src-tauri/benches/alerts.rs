//! Benchmark (prints figures; asserts nothing): rule evaluation of one live poll cycle — every
//! node's poll applied to every rule — for 1000 nodes x 20 rules, in steady state (no change) and
//! when every node crosses a threshold at once (state changes recorded).
//!
//! `cargo bench --no-default-features --bench alerts`

use std::time::{Duration, Instant};

use dsmon::alerts::eval::{Changes, Evaluator, Input, Rule};
use dsmon::config::alerts::{Direction, Metric, RuleConfig, Severity};
use dsmon::core::Metrics;

const NODES: usize = 1000;
const RULES: usize = 20;
const ROUNDS: usize = 200;

fn rules() -> Vec<Rule> {
    let metrics = [
        Metric::CpuPct,
        Metric::MemPct,
        Metric::DiskPct,
        Metric::NetInKbps,
        Metric::NetOutKbps,
        Metric::Down,
        Metric::Stale,
        Metric::DiskFullIn,
    ];
    (0..RULES)
        .map(|i| {
            let metric = metrics[i % metrics.len()];
            Rule::new(RuleConfig {
                name: format!("rule {i}"),
                metric,
                direction: if metric == Metric::DiskFullIn {
                    Direction::Below
                } else {
                    Direction::Above
                },
                threshold: if metric == Metric::DiskFullIn {
                    86_400.0
                } else {
                    90.0
                },
                clear: if metric == Metric::DiskFullIn {
                    86_400.0
                } else {
                    80.0
                },
                for_: Duration::from_secs(10),
                severity: if i % 2 == 0 {
                    Severity::Warning
                } else {
                    Severity::Critical
                },
                // Half the rules scoped by glob, as real configurations are.
                nodes: if i % 2 == 0 {
                    vec![]
                } else {
                    vec!["node-*".into(), "web-*".into()]
                },
                tags: vec![],
                notify: vec![],
                repeat: Some(Duration::from_secs(3600)),
            })
            .expect("rule")
        })
        .collect()
}

fn cycle(e: &mut Evaluator, names: &[String], at: i64, m: &Metrics, out: &mut Changes) -> Duration {
    let start = Instant::now();
    for n in names {
        e.observe(n, &[], at, Input::Metrics(m), &|_, _| false, out);
    }
    start.elapsed()
}

fn report(what: &str, mut t: Vec<Duration>) {
    t.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{what:<48} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
        ms(t[0]),
        ms(t[t.len() / 2]),
        ms(t[t.len() * 99 / 100]),
        ms(t[t.len() - 1])
    );
}

fn main() {
    println!(
        "rule evaluation of one live poll cycle: {NODES} nodes x {RULES} rules, {ROUNDS} rounds"
    );
    println!(
        "{:<48} {:>8} {:>8} {:>8} {:>8}",
        "case", "min ms", "p50 ms", "p99 ms", "max ms"
    );
    let names: Vec<String> = (0..NODES).map(|i| format!("node-{i:04}")).collect();
    let calm = Metrics::from_values([40.0, 50.0, 25.0, 1000.0, 2000.0]);
    let hot = Metrics::from_values([95.0, 95.0, 95.0, 1000.0, 2000.0]);

    let mut e = Evaluator::new(rules(), None);
    let mut out = Changes::default();
    cycle(&mut e, &names, 0, &calm, &mut out); // every pair created
    let steady: Vec<Duration> = (1..=ROUNDS as i64)
        .map(|r| {
            let mut out = Changes::default();
            cycle(&mut e, &names, r * 2, &calm, &mut out)
        })
        .collect();
    report("steady state (no change)", steady);

    let mut changes = 0;
    let crossing: Vec<Duration> = (0..ROUNDS as i64)
        .map(|r| {
            let mut e = Evaluator::new(rules(), None);
            let mut out = Changes::default();
            cycle(&mut e, &names, 0, &calm, &mut out);
            let mut out = Changes::default();
            let t = cycle(&mut e, &names, 2 + r, &hot, &mut out);
            changes = out.states.len();
            t
        })
        .collect();
    report(
        &format!("all nodes cross at once ({changes} state changes)"),
        crossing,
    );
}
