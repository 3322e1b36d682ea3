//! Nodes discovered through a real Netdata parent: one `[[parents]]` line, three real children
//! streaming to it (Debian's netdata 1.37, `stream.conf` with an API key) -> three nodes with the
//! children's exact values, polled through the parent; a child started later appears within the
//! re-read period; a child stopped goes down "not streaming to <parent>"; include/exclude applied
//! by SIGHUP; a hung parent costs its children one timeout per poll; `dsmon check` lists what
//! the parent yields. One parent and its children serve every
//! step (agents are the slow part).

mod harness;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use harness::{wait_until, Dsmon, Machine, NetdataAgent, Serve, Stream};

/// Waits until the live view satisfies `f`; on timeout, panics showing the last view.
fn wait_nodes(
    serve: &Serve,
    what: &str,
    limit: Duration,
    f: impl Fn(&BTreeMap<String, serde_json::Value>) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let n = nodes(serve);
        if f(&n) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{what}: not within {limit:?}: {n:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The live view by node name.
fn nodes(serve: &Serve) -> BTreeMap<String, serde_json::Value> {
    let live = serve.json("/api/live", 200);
    live["nodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    (
                        x["name"].as_str().unwrap_or_default().to_string(),
                        x.clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `node` shows the machine's values (the disk is the one configured for every child:
/// all children fill their tmpfs to the same 25 %).
fn shows(node: &serde_json::Value, m: &Machine) -> bool {
    let close = |k: &str, want: f64, tol: f64| {
        node["metrics"][k]
            .as_f64()
            .is_some_and(|g| (g - want).abs() <= tol)
    };
    node["state"] == "up"
        && close("cpu_pct", m.cpu_pct(), 0.2)
        && close("mem_pct", f64::from(m.mem_used), 0.1)
        && close("disk_pct", m.disk_pct(), 0.1)
        && close(
            "net_in_kbps",
            f64::from(m.net_in_kbps),
            f64::from(m.net_in_kbps) * 0.05,
        )
        && close(
            "net_out_kbps",
            f64::from(m.net_out_kbps),
            f64::from(m.net_out_kbps) * 0.05,
        )
}

fn hangup(serve: &Serve) {
    // SAFETY: kill(2) on the dsmon this test started.
    unsafe { libc::kill(serve.child.id() as i32, libc::SIGHUP) };
}

#[test]
fn children_of_a_parent_are_nodes() {
    let api_key = Stream::new_api_key();
    let parent = NetdataAgent::start_streaming(
        "hub",
        Machine::STANDARD,
        Stream::Parent {
            api_key: api_key.clone(),
        },
    );
    let as_child = || Stream::Child {
        parent_port: parent.port,
        api_key: api_key.clone(),
    };
    let machine = |user, system, mem, net_in, net_out| Machine {
        cpu_user: user,
        cpu_system: system,
        mem_used: mem,
        disk_quarters: 1,
        net_in_kbps: net_in,
        net_out_kbps: net_out,
    };
    let wanted = [
        ("web1", machine(20, 5, 30, 100, 200)),
        ("web2", machine(40, 10, 60, 300, 400)),
        ("db1", machine(10, 10, 80, 500, 600)),
    ];
    // Started side by side: each takes a few seconds to serve values.
    let mut kids: Vec<NetdataAgent> = std::thread::scope(|s| {
        let started: Vec<_> = wanted
            .iter()
            .map(|(name, m)| {
                let stream = as_child();
                s.spawn(move || NetdataAgent::start_streaming(name, *m, stream))
            })
            .collect();
        started
            .into_iter()
            .map(|h| h.join().expect("child agent"))
            .collect()
    });

    let took = wait_until("children streaming", Duration::from_secs(10), || {
        parent.streaming_children() == ["db1", "web1", "web2"]
    });
    println!("the parent listed its three children {took:?} after they were ready");
    let parent_url = parent.url();
    let parent_line = format!(
        "[[parents]]\nurl = \"{parent_url}\"\ndisk = \"{}\"\nrefresh = \"1s\"\ntags = [\"rack-2\"]\n",
        kids[0].disk()
    );
    let head =
        "[collector]\nlog_interval = \"60s\"\nlive_interval = \"500ms\"\ntimeout = \"400ms\"\n\n";
    let d = Dsmon::new(&format!("{head}{parent_line}"));

    // `dsmon check` lists what the parent yields.
    let check = d.run(&["check"]);
    assert_eq!(check.code, 0, "{check:?}");
    assert!(
        check
            .stdout
            .contains(&format!("parent {parent_url}: 3 children listed")),
        "{check:?}"
    );
    for (name, _) in &wanted {
        assert!(
            check
                .stdout
                .lines()
                .any(|l| l.trim_start().starts_with(name) && l.contains(" yes ")),
            "{name}: {check:?}"
        );
    }

    // One [[parents]] line -> three nodes with the children's exact values.
    let serve = Serve::start(&d);
    let took = wait_nodes(
        &serve,
        "three children up with their values",
        Duration::from_secs(20),
        |n| {
            n.len() == 3
                && wanted
                    .iter()
                    .all(|(name, m)| n.get(*name).is_some_and(|x| shows(x, m)))
        },
    );
    println!("three children up with their exact values {took:?} after serve answered");
    let n = nodes(&serve);
    assert!(!n.contains_key("hub"), "the parent itself is not a child");
    // Every child has the parent's tags.
    for (name, x) in &n {
        assert_eq!(x["tags"], serde_json::json!(["rack-2"]), "{name}: {x}");
    }
    let tagged = serve.json("/api/nodes?tag=rack-2", 200);
    assert_eq!(tagged.as_array().map(Vec::len), Some(3), "{tagged}");

    // A child started later appears within the re-read period (1 s here) and a poll.
    let late = machine(5, 5, 40, 700, 800);
    kids.push(NetdataAgent::start_streaming("web3", late, as_child()));
    let took = wait_until("late child up", Duration::from_secs(10), || {
        nodes(&serve).get("web3").is_some_and(|x| shows(x, &late))
    });
    println!("a child started later was up {took:?} after it was ready");

    // A child stopped goes down, with the reason, without being polled.
    let guid = kids[1].guid();
    kids[1].kill();
    let reason = format!("not streaming to {parent_url}");
    let took = wait_until("stopped child down", Duration::from_secs(10), || {
        nodes(&serve).get("web2").is_some_and(|x| {
            x["state"] == "down" && x["last_error"].as_str() == Some(reason.as_str())
        })
    });
    println!("a stopped child was down {took:?} after its agent exited");
    let check = d.run(&["check"]);
    assert!(
        check
            .stdout
            .lines()
            .any(|l| l.contains(&guid) && l.contains(" no ")),
        "{check:?}"
    );
    // The others are untouched.
    let n = nodes(&serve);
    assert!(
        shows(&n["web1"], &wanted[0].1) && shows(&n["db1"], &wanted[2].1),
        "{n:?}"
    );

    // include/exclude, applied by SIGHUP without a restart.
    let filtered = format!("{head}{parent_line}include = [\"web*\"]\nexclude = [\"web2\"]\n");
    std::fs::write(
        &d.config,
        format!(
            "[storage]\npath = \"{}\"\n[server]\nlisten = \"127.0.0.1:{}\"\n\n{filtered}",
            d.db.display(),
            d.port
        ),
    )
    .expect("write");
    hangup(&serve);
    wait_until("only web1 and web3", Duration::from_secs(5), || {
        let n = nodes(&serve);
        n.keys().map(String::as_str).collect::<Vec<_>>() == ["web1", "web3"]
            && shows(&n["web1"], &wanted[0].1)
    });
    // A parent that hangs: its children keep their set, each poll fails within the per-node
    // timeout (400 ms) and the live view goes on; they are back when it answers again.
    parent.hang();
    let took = wait_nodes(
        &serve,
        "children down while the parent hangs",
        Duration::from_secs(5),
        |n| {
            n.keys().map(String::as_str).collect::<Vec<_>>() == ["web1", "web3"]
                && n.values().all(|x| {
                    x["state"] == "down"
                        && x["last_error"]
                            .as_str()
                            .is_some_and(|e| e.starts_with("no answer within 400ms"))
                })
        },
    );
    println!("children of a hung parent were down (timeout) {took:?} after SIGSTOP");
    parent.resume();
    wait_nodes(
        &serve,
        "children back after the parent resumed",
        Duration::from_secs(10),
        |n| {
            n.keys().map(String::as_str).collect::<Vec<_>>() == ["web1", "web3"]
                && shows(&n["web1"], &wanted[0].1)
                && shows(&n["web3"], &late)
        },
    );

    // A configuration that no longer validates is refused: the running set stays.
    std::fs::write(
        &d.config,
        format!("{head}[[parents]]\nurl = \"{parent_url}\"\ninclude = [\"web-[\"]\n"),
    )
    .expect("write");
    hangup(&serve);
    std::thread::sleep(Duration::from_secs(2));
    let n = nodes(&serve);
    assert_eq!(
        n.keys().map(String::as_str).collect::<Vec<_>>(),
        ["web1", "web3"]
    );
}
