//! `dsmon netdata-acl` and the ACL warnings of `dsmon check`, against real Netdata agents: the
//! printed `[web]` lines, put into an agent's netdata.conf, must let the monitor in and keep
//! another address out, and `check` must notice an agent that answers such an address.

mod harness;

use std::net::Ipv4Addr;

use harness::serving::{connect_from, exchange, get_request};
use harness::{Dsmon, Machine, NetdataAgent};

/// GET /api/v1/info from the loopback address `from`: the status, or 0 when the agent closed the
/// connection without an answer.
fn info_from(from: [u8; 4], port: u16) -> u16 {
    let c = connect_from(Ipv4Addr::from(from), port);
    exchange(c, &get_request("/api/v1/info", &[]))
        .map(|a| a.status)
        .unwrap_or(0)
}

#[test]
fn printed_lines_admit_the_monitor_and_refuse_other_addresses() {
    let mut agent = NetdataAgent::start("alpha", Machine::STANDARD);
    let d = Dsmon::new(&agent.node_toml());

    // An agent as installed answers everyone: check says so, and still exits 0 (all nodes up).
    assert_eq!(info_from([127, 0, 0, 2], agent.port), 200);
    let r = d.run(&["check"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(
            "warning: alpha: the agent answered a request from 127.0.0.2, an address its [web] ACL should refuse"
        ),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains("warning: alpha: allow connections from = localhost *"),
        "{r:?}"
    );

    // The lines for this monitor (it reaches the agent from 127.0.0.1).
    let r = d.run(&["netdata-acl"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("# alpha: the monitor is 127.0.0.1."),
        "{r:?}"
    );
    let web = r
        .stdout
        .split_once("[web]\n")
        .map(|(_, lines)| lines.trim_end().to_string())
        .expect("a [web] section");
    assert!(
        web.contains("allow connections from = localhost\n"),
        "{web}"
    );

    // Placed in the agent's netdata.conf as the guide says: the monitor still gets everything it
    // polls, another address is refused, and check has nothing to warn about.
    agent.kill();
    let conf_path = agent.dir.join("netdata.conf");
    let conf = std::fs::read_to_string(&conf_path).expect("netdata.conf");
    std::fs::write(
        &conf_path,
        conf.replacen("[web]\n", &format!("[web]\n{web}\n"), 1),
    )
    .expect("netdata.conf");
    agent.restart();
    assert_eq!(info_from([127, 0, 0, 1], agent.port), 200);
    assert_ne!(info_from([127, 0, 0, 2], agent.port), 200);
    let r = d.run(&["check"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("1 of 1 nodes reachable"), "{r:?}");
    assert!(!r.stdout.contains("warning:"), "{r:?}");
    // The monitor polls everything it needs: the four metrics came through.
    let alpha = r
        .stdout
        .lines()
        .find(|l| l.starts_with("alpha "))
        .unwrap_or_default();
    assert!(alpha.contains(" up ") && alpha.contains("40.0"), "{r:?}");
}

#[test]
fn lines_for_given_monitor_addresses_and_bad_input() {
    let d = Dsmon::new(
        "[[nodes]]\nname = \"a\"\nurl = \"http://127.0.0.1:9\"\n[[nodes]]\nname = \"b\"\nurl = \"http://127.0.0.1:9/host/b\"\n",
    );
    let r = d.run(&[
        "netdata-acl",
        "--monitor",
        "192.0.2.10",
        "--monitor",
        "2001:db8::5",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("# a, b: the monitor is 192.0.2.10, 2001:db8::5."),
        "{r:?}"
    );
    for line in [
        "[web]",
        "    allow connections from = localhost 192.0.2.10 ::ffff:192.0.2.10 2001:db8::5",
        "    allow connections by dns = no",
        "    allow dashboard from = localhost 192.0.2.10 ::ffff:192.0.2.10 2001:db8::5",
        "    allow badges from = localhost",
        "    allow netdata.conf from = localhost",
        "    allow management from = localhost",
        "    allow management by dns = no",
    ] {
        assert!(r.stdout.lines().any(|l| l == line), "{line:?}: {r:?}");
    }
    assert!(
        r.stdout
            .contains("# b (http://127.0.0.1:9/host/b) is reached through a proxy"),
        "{r:?}"
    );

    let r = d.run(&["netdata-acl", "--monitor", "monitor.example.com"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--monitor"), "{r:?}");
}
