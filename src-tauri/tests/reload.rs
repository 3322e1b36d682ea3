//! The node set changes while `dsmon serve` runs: SIGHUP re-reads the configuration's `[[nodes]]`
//! (a node added is polled within a live interval, a node removed leaves the live view, its
//! history stays, its tags change), and `[alerts]` rules likewise (a rule scoped by tag follows
//! the tags); a file that no longer validates is refused and the running set and rules are kept.

mod harness;

use std::time::Duration;

use harness::{wait_until, Dsmon, Machine, NetdataAgent, Serve};

fn hangup(serve: &Serve) {
    // SAFETY: kill(2) on the dsmon this test started.
    unsafe { libc::kill(serve.child.id() as i32, libc::SIGHUP) };
}

/// The node names in an answer's list (`/api/nodes`, `/api/live`'s `nodes`, `/api/alerts`'s).
fn names(list: &serde_json::Value, key: &str) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x[key].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
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

    // Alert rules come with SIGHUP too (no restart: the same process evaluates the new rule)...
    let both = format!("{config}{}", agents[1].node_toml());
    let rule = "[[alerts.rules]]\nname = \"mem\"\nmetric = \"mem_pct\"\nabove = 10\nfor = \"1s\"\n";
    std::fs::write(&d.config, format!("{both}{rule}")).expect("write");
    hangup(&serve);
    let firing = || {
        serve.json("/api/alerts", 200)["alerts"]
            .as_array()
            .map_or(0, |a| {
                a.iter()
                    .filter(|x| x["rule"] == "mem" && x["state"] == "firing")
                    .count()
            })
    };
    wait_until(
        "the new rule fires on both nodes",
        Duration::from_secs(10),
        || firing() == 2,
    );
    // ... and a rule that no longer validates is refused: the running rules are kept.
    let broken = rule.replace("above = 10\n", "above = 10\nbelow = 5\n");
    std::fs::write(&d.config, format!("{both}{broken}")).expect("write");
    hangup(&serve);
    std::thread::sleep(Duration::from_secs(1));
    let rules = serve.json("/api/alerts/config", 200);
    assert_eq!(rules["rules"][0]["threshold"], 10.0, "{rules}");
    assert_eq!(firing(), 2, "still firing after the refused reload");

    // Tags come with SIGHUP too: alpha gets db and eu-west, and the rule, now scoped to tag db,
    // covers alpha alone (beta's alert ends).
    let scoped = rule.replace("for = \"1s\"\n", "for = \"1s\"\ntags = [\"db\"]\n");
    let alpha_db = format!(
        "{config}tags = [\"eu-west\", \"db\", \"db\"]\n{}{scoped}",
        agents[1].node_toml()
    );
    std::fs::write(&d.config, alpha_db).expect("write");
    hangup(&serve);
    let firing_on = || {
        let a = serve.json("/api/alerts", 200);
        let mut on: Vec<String> = a["alerts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|x| x["rule"] == "mem" && x["state"] == "firing")
                    .filter_map(|x| x["node"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        on.sort();
        on
    };
    let tags = |node: &str| {
        let n = serve.json("/api/nodes", 200);
        n.as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == node))
            .map(|x| x["tags"].clone())
            .unwrap_or_default()
    };
    wait_until(
        "alpha tagged, the db rule on alpha alone",
        Duration::from_secs(10),
        || tags("alpha") == serde_json::json!(["db", "eu-west"]) && firing_on() == ["alpha"],
    );
    assert_eq!(
        tags("beta"),
        serde_json::json!([]),
        "untagged: an empty list"
    );
    assert_eq!(
        names(&serve.json("/api/live", 200)["nodes"], "name"),
        ["alpha", "beta"]
    );
    let live = serve.json("/api/live?tag=db", 200);
    assert_eq!(names(&live["nodes"], "name"), ["alpha"], "{live}");
    assert_eq!(
        live["nodes"][0]["tags"],
        serde_json::json!(["db", "eu-west"])
    );
    assert_eq!(
        names(&serve.json("/api/nodes?tag=db&tag=eu-west", 200), "name"),
        ["alpha"]
    );
    assert!(names(&serve.json("/api/nodes?tag=db&tag=web", 200), "name").is_empty());
    assert_eq!(
        names(
            &serve.json("/api/alerts?tag=eu-west", 200)["alerts"],
            "node"
        ),
        ["alpha"]
    );
    let bad = serve.json("/api/live?tag=no%20spaces", 400);
    assert!(
        bad["error"]
            .as_str()
            .is_some_and(|e| e.contains("a tag is")),
        "{bad}"
    );

    // The tag moves to beta: the rule follows it.
    let beta_db = format!("{both}tags = [\"db\"]\n{scoped}");
    std::fs::write(&d.config, beta_db).expect("write");
    hangup(&serve);
    wait_until(
        "db moved to beta, and the rule with it",
        Duration::from_secs(10),
        || tags("beta") == serde_json::json!(["db"]) && firing_on() == ["beta"],
    );
    assert_eq!(tags("alpha"), serde_json::json!([]));
    assert_eq!(
        names(&serve.json("/api/live?tag=db", 200)["nodes"], "name"),
        ["beta"]
    );

    // Remove alpha once a tick of it is logged: it leaves the live view; its history stays
    // (retired).
    wait_until("a tick of alpha logged", Duration::from_secs(12), || {
        let h = serve.json("/api/history?from=-1h&node=alpha", 200);
        !h["nodes"][0]["availability"].is_null()
    });
    // History by tag: db is beta's now; as a group, one line for its nodes.
    let h = serve.json("/api/history?from=-1h&tag=db", 200);
    assert_eq!(names(&h["nodes"], "name"), ["beta"], "{h}");
    let g = serve.json("/api/history?from=-1h&tag=db&group=1", 200);
    assert_eq!(names(&g["nodes"], "name"), ["db"], "{g}");
    assert_eq!(g["group"]["nodes"], serde_json::json!(["beta"]), "{g}");
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
