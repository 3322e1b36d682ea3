//! The node set changes while `dsmon serve` runs: SIGHUP re-reads the configuration's `[[nodes]]`
//! (a node added is polled within a live interval, a node removed leaves the live view, its
//! history stays); a file that no longer validates is refused and the running set is kept.

mod harness;

use std::time::{Duration, Instant};

use harness::{Dsmon, Machine, NetdataAgent, Serve};

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn hangup(serve: &Serve) {
    // SAFETY: kill(2) on the dsmon this test started.
    unsafe { libc::kill(serve.child.id() as i32, libc::SIGHUP) };
}

fn states(serve: &Serve) -> Vec<(String, String)> {
    let n = serve.json("/api/nodes", 200);
    n.as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    let s = |k: &str| x[k].as_str().unwrap_or_default().to_string();
                    (s("name"), s("state"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn sighup_changes_the_node_set_without_a_restart() {
    let agents = [
        NetdataAgent::start("alpha", Machine::STANDARD),
        NetdataAgent::start("beta", Machine::STANDARD),
    ];
    let head =
        "[collector]\nlog_interval = \"5s\"\nlive_interval = \"500ms\"\ntimeout = \"400ms\"\n\n";
    let d = Dsmon::new(&format!("{head}{}", agents[0].node_toml()));
    let serve = Serve::start(&d);
    let up = |names: &[&str]| {
        let s = states(&serve);
        s.len() == names.len()
            && s.iter()
                .zip(names)
                .all(|((n, st), want)| n == want && st == "up")
    };
    wait_until("alpha up", Duration::from_secs(5), || up(&["alpha"]));
    let config = std::fs::read_to_string(&d.config).expect("config");

    // Add beta: polled within a few live intervals, no restart (same process).
    std::fs::write(&d.config, format!("{config}{}", agents[1].node_toml())).expect("write");
    hangup(&serve);
    wait_until("beta added and up", Duration::from_secs(5), || {
        up(&["alpha", "beta"])
    });

    // A broken file is refused: the running set stays.
    std::fs::write(&d.config, format!("{config}[[nodes]]\nname = \"x\"\n")).expect("write");
    hangup(&serve);
    std::thread::sleep(Duration::from_secs(1));
    assert!(up(&["alpha", "beta"]), "{:?}", states(&serve));

    // Remove alpha once a tick of it is logged: it leaves the live view; its history stays
    // (retired).
    wait_until("a tick of alpha logged", Duration::from_secs(12), || {
        let h = serve.json("/api/history?from=-1h&node=alpha", 200);
        !h["nodes"][0]["availability"].is_null()
    });
    let only_beta = config.replace(&agents[0].node_toml(), &agents[1].node_toml());
    std::fs::write(&d.config, only_beta).expect("write");
    hangup(&serve);
    wait_until("alpha removed", Duration::from_secs(5), || up(&["beta"]));
    let h = serve.json("/api/history?from=-1h", 200);
    let alpha = h["nodes"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["name"] == "alpha").cloned())
        .expect("alpha's history is still there");
    assert_eq!(alpha["retired"], true, "{alpha}");
    let status = serve.stop();
    assert!(status.success(), "serve stopped cleanly: {status:?}");
}
