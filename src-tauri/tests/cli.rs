//! Command-line behaviour a user or a script relies on: exit codes and messages for bad
//! configuration and bad export arguments, `check`, and the database-version guard.

mod harness;

use harness::{Dsmon, Machine, NetdataAgent};

const NODE: &str = "[[nodes]]\nname = \"n1\"\nurl = \"http://127.0.0.1:9\"\n";

#[test]
fn bad_configurations_exit_2_naming_file_and_key_and_write_nothing() {
    let cases = [
        ("[collector]\nlog_intervall = \"5s\"\n", "log_intervall"),
        (
            "[collector]\ntimeout = \"3 parsecs\"\n",
            "collector.timeout: invalid duration",
        ),
        (
            "[collector]\nlog_interval = \"2s\"\ntimeout = \"3s\"\n",
            "collector.timeout: must be shorter than collector.log_interval",
        ),
        (
            &format!("{NODE}{NODE}"),
            "nodes[1].name: duplicate node name \"n1\"",
        ),
        (
            "[[nodes]]\nname = \"x\"\nurl = \"not a url\"\n",
            "nodes[0].url",
        ),
        (
            "[[nodes]]\nname = \"x\"\nurl = \"http://h\"\nweight = 3\n",
            "weight",
        ),
        (
            &format!("{NODE}tags = [\"db\", \"eu west\"]\n"),
            "nodes[0].tags: \"eu west\": a tag is 1 to 64 of the characters A-Z a-z 0-9 . _ -",
        ),
        // Line 6: the harness writes [storage] and [server] first.
        ("[collector\n", "dsmon.toml:6:"),
    ];
    for (text, expect) in cases {
        let d = Dsmon::new(text);
        for cmd in [&["collect", "--once"][..], &["serve"], &["check"]] {
            let r = d.run(cmd);
            assert_eq!(r.code, 2, "{cmd:?} with {text:?}: {r:?}");
            assert!(
                r.stderr.contains(&*d.config.to_string_lossy()),
                "names the file: {r:?}"
            );
            assert!(
                r.stderr.contains(expect),
                "{cmd:?} with {text:?}: want {expect:?} in {r:?}"
            );
            assert!(!r.stderr.contains("panicked"), "{r:?}");
            assert!(!d.db.exists(), "nothing may be written for a bad config");
        }
    }
}

#[test]
fn missing_config_file_is_a_clear_error() {
    let r = harness::run_in(
        std::path::Path::new("/"),
        &["--config", "/nonexistent/dsmon.toml", "check"],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("/nonexistent/dsmon.toml: cannot read"),
        "{r:?}"
    );
}

#[test]
fn export_rejects_bad_arguments() {
    let d = Dsmon::new(NODE);
    // No database yet: a runtime error, not an empty export.
    let r = d.run(&["export", "--from", "-1h"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("no database there"), "{r:?}");
    assert!(!d.db.exists());

    // An unreachable node still gives a database with one row.
    let r = d.run(&["collect", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("1 rows written"), "{r:?}");

    for (args, expect) in [
        (
            &["export", "--from", "yesterday"][..],
            "\"yesterday\" is not a time",
        ),
        (&["export", "--from", "now", "--to", "-1h"], "is after --to"),
        (
            &["export", "--from", "-1h", "--node", "nope"],
            "unknown node \"nope\" (the database knows: n1)",
        ),
        (
            &["export", "--from", "-1h", "--format", "xml"],
            "invalid value 'xml'",
        ),
    ] {
        let r = d.run(args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(
            r.stderr.contains(expect),
            "{args:?}: want {expect:?}: {r:?}"
        );
        assert!(r.stdout.is_empty(), "nothing printed on error: {r:?}");
    }

    let r = d.run(&["export", "--from", "-1h", "--node", "n1"]);
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{r:?}");
    assert!(
        lines[1].contains(",n1,,,,,,connection failed"),
        "NULL metrics and the error: {}",
        lines[1]
    );
}

#[test]
fn a_newer_database_is_refused_untouched() {
    let d = Dsmon::new(NODE);
    {
        let c = rusqlite::Connection::open(&d.db).expect("db");
        c.execute_batch("CREATE TABLE from_the_future(x); PRAGMA user_version = 42;")
            .expect("sql");
    }
    let before = std::fs::read(&d.db).expect("read");
    let r = d.run(&["collect", "--once"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("schema version 42 is newer than this dsmon supports"),
        "{r:?}"
    );
    assert_eq!(
        std::fs::read(&d.db).expect("read"),
        before,
        "the file is left as it was"
    );
}

#[test]
fn check_reports_each_node_and_exits_by_reachability() {
    let agent = NetdataAgent::start("checked", Machine::STANDARD);
    let all_up = Dsmon::new(&agent.node_toml());
    let r = all_up.run(&["check"]);
    assert_eq!(r.code, 0, "{r:?}");
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("checked"))
        .expect("a line for the node");
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&cols[1..3], ["up", "v1.37.1"], "{line}");
    let num = |i: usize| {
        cols[i]
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("column {i} of {line}"))
    };
    assert!((num(3) - 40.0).abs() < 0.15, "cpu {line}");
    assert!((num(4) - 50.0).abs() < 0.15, "mem {line}");
    assert!((num(5) - 25.0).abs() < 0.15, "disk {line}");
    assert!((num(6) - 1000.0).abs() < 50.0, "in {line}");
    assert!((num(7) - 2000.0).abs() < 100.0, "out {line}");
    assert!(!all_up.db.exists(), "check writes nothing");

    let some_down = Dsmon::new(&format!(
        "{}{NODE}tags = [\"eu-west\", \"db\"]\n",
        agent.node_toml()
    ));
    let r = some_down.run(&["check"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("1 of 2 nodes reachable"), "{r:?}");
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("n1"))
        .expect("a line for n1");
    assert!(
        line.contains("down") && line.contains("connection failed"),
        "{line}"
    );
    assert!(line.ends_with("  tags: db, eu-west"), "{line}");
}

#[test]
fn https_agents_are_trusted_through_their_ca_file() {
    let agent = NetdataAgent::start_tls(
        "secure",
        Machine {
            cpu_user: 20,
            cpu_system: 5,
            mem_used: 30,
            disk_quarters: 2,
            net_in_kbps: 100,
            net_out_kbps: 50,
        },
    );
    let ca = agent.ca.clone().expect("ca");
    let node = |name: &str, ca: Option<&std::path::Path>| {
        let mut t = format!(
            "[[nodes]]\nname = \"{name}\"\nurl = \"{}\"\ndisk = \"{}\"\n",
            agent.https_url(),
            agent.disk()
        );
        if let Some(ca) = ca {
            t += &format!("ca_file = \"{}\"\n", ca.display());
        }
        t
    };
    let d = Dsmon::new(&format!(
        "{}{}",
        node("trusted", Some(&ca)),
        node("untrusted", None)
    ));
    let r = d.run(&["check"]);
    assert_eq!(r.code, 1, "{r:?}");
    let line = |n: &str| {
        r.stdout
            .lines()
            .find(|l| l.starts_with(n))
            .unwrap_or_default()
            .to_string()
    };
    let trusted = line("trusted ");
    let cols: Vec<&str> = trusted.split_whitespace().collect();
    assert_eq!(&cols[1..3], ["up", "v1.37.1"], "{r:?}");
    assert!(
        (cols[3].parse::<f64>().unwrap_or(0.0) - 25.0).abs() < 0.15,
        "cpu over https: {trusted}"
    );
    assert!(
        (cols[5].parse::<f64>().unwrap_or(0.0) - 50.0).abs() < 0.15,
        "disk over https: {trusted}"
    );
    let untrusted = line("untrusted ");
    assert!(
        untrusted.contains("down") && untrusted.to_lowercase().contains("certificate"),
        "{untrusted}"
    );
}
