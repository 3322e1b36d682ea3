//! The storage conformance suite: what every implementation of [`SampleStore`] and [`AuthStore`]
//! must do, written against the traits only. SQLite runs it in `tests/conformance.rs`; a new backend
//! (PostgreSQL) runs the same functions on its own stores. Each function panics with a message
//! naming the broken promise.

use std::collections::{BTreeMap, HashSet};
use std::ops::ControlFlow;

use dsmon_core::{Identity, Metrics, Role, Row};

use crate::alert_db::{AlertEventRecord, AlertStateRecord, DeliveryRecord, SilenceRecord};
use crate::auth_db::Rebind;
use crate::{
    AlertStore, AuthStore, PendingCaps, PendingPut, Period, RowQuery, SampleStore,
    AUDIT_COLLAPSE_SECS, ROLLUPS,
};

/// A fresh, empty store per call.
pub type Make<'a, S> = &'a mut dyn FnMut() -> Box<S>;

/// Runs every sample-store check, each on a fresh store.
pub fn samples(make: Make<'_, dyn SampleStore>) {
    empty_store(&mut *make());
    rows_round_trip(&mut *make());
    rollups_agree_with_rows(&mut *make());
    group_history_from_rows(&mut *make());
}

/// Runs every sign-in state check, each on a fresh store.
pub fn auth(make: Make<'_, dyn AuthStore>) {
    users_roles_and_blocks(&*make());
    addresses_are_bound_to_accounts(&*make());
    sessions_expire_and_end(&*make());
    sessions_keep_their_sign_in_and_last_use(&*make());
    role_changes_end_sessions(&*make());
    audit_pages(&*make());
    anonymous_repeats_are_counted_and_old_entries_pruned(&*make());
    pending_sign_ins(&*make());
    used_tokens(&*make());
    api_tokens(&*make());
}

/// Runs every alert-state check, each on a fresh store.
pub fn alerts(make: Make<'_, dyn AlertStore>) {
    alert_states_round_trip(&*make());
    alert_history_filters_and_orders(&*make());
    silences_expire(&*make());
    deliveries_are_logged(&*make());
}

const T0: i64 = 1_795_478_400; // 2026-11-22T00:00:00Z, a multiple of every tier

fn metrics(x: f64) -> Metrics {
    Metrics::from_values([x, x + 1.0, x + 2.0, x + 3.0, x + 4.0])
}

fn row(ts: i64, node: &str, value: Option<f64>) -> Row {
    Row {
        ts,
        node: node.into(),
        metrics: value.map(metrics),
        error: value
            .is_none()
            .then(|| "connection failed: refused".to_string()),
    }
}

fn all_rows(s: &dyn SampleStore, q: &RowQuery) -> Vec<Row> {
    let mut out = Vec::new();
    s.scan_rows(q, &mut |r| {
        out.push(r);
        ControlFlow::Continue(())
    })
    .expect("scan_rows");
    out
}

fn empty_store(s: &mut dyn SampleStore) {
    assert_eq!(s.latest_ts().expect("latest_ts"), None, "empty: no tick");
    assert!(
        s.node_names().expect("node_names").is_empty(),
        "empty: no node"
    );
    assert!(s.rows_at(T0).expect("rows_at").is_empty(), "empty: no row");
    assert_eq!(s.check().expect("check"), "ok", "a new store is healthy");
}

fn rows_round_trip(s: &mut dyn SampleStore) {
    let rows = vec![
        row(T0 + 600, "b", None),
        row(T0 + 600, "a", Some(10.0)),
        row(T0 + 1200, "a", Some(20.0)),
    ];
    assert_eq!(s.insert_rows(&rows).expect("insert"), 3, "three new rows");
    // The same (node, ts) again: nothing new, the first value stays.
    let again = [
        row(T0 + 600, "a", Some(99.0)),
        row(T0 + 1800, "b", Some(1.0)),
    ];
    assert_eq!(
        s.insert_rows(&again).expect("insert again"),
        1,
        "only the new row counts"
    );
    assert_eq!(
        s.rows_at(T0 + 600).expect("rows_at"),
        vec![rows[1].clone(), rows[0].clone()],
        "rows at a tick, by node name, first value kept"
    );
    assert_eq!(
        s.nodes_logged_at(T0 + 1200).expect("nodes_logged_at"),
        HashSet::from(["a".to_string()])
    );
    assert_eq!(s.node_names().expect("node_names"), vec!["a", "b"]);
    assert_eq!(s.latest_ts().expect("latest_ts"), Some(T0 + 1800));
    let only_a = RowQuery {
        from: T0,
        to: T0 + 3600,
        nodes: vec!["a".into()],
    };
    let got: Vec<i64> = all_rows(s, &only_a).iter().map(|r| r.ts).collect();
    assert_eq!(
        got,
        vec![T0 + 600, T0 + 1200],
        "a node's rows in time order"
    );
    let every = RowQuery {
        from: T0 + 600,
        to: T0 + 1200,
        nodes: vec![],
    };
    let got: Vec<(i64, String)> = all_rows(s, &every)
        .into_iter()
        .map(|r| (r.ts, r.node))
        .collect();
    assert_eq!(
        got,
        vec![
            (T0 + 600, "a".into()),
            (T0 + 600, "b".into()),
            (T0 + 1200, "a".into())
        ],
        "inclusive bounds, (ts, node) order"
    );
    let mut seen = 0;
    s.scan_rows(&every, &mut |_| {
        seen += 1;
        ControlFlow::Break(())
    })
    .expect("scan stops");
    assert_eq!(seen, 1, "a scan stops when asked");
    let ids = s.node_ids(&["b".into(), "nope".into()]).expect("node_ids");
    assert_eq!(ids.len(), 1, "unknown names are left out");
}

/// Sums, maxima and counts per (node, period) computed here from the raw rows.
type Expected = BTreeMap<(i64, i64), (i64, i64, [Option<f64>; 5], [Option<f64>; 5])>;

fn expected_from_rows(rows: &[Row], ids: &BTreeMap<String, i64>, secs: i64) -> Expected {
    let mut out = Expected::new();
    for r in rows {
        let key = (ids[&r.node], r.ts.div_euclid(secs) * secs);
        let e = out.entry(key).or_insert((0, 0, [None; 5], [None; 5]));
        e.0 += 1;
        if let Some(m) = r.metrics {
            e.1 += 1;
            for (i, v) in m.values().into_iter().enumerate() {
                e.2[i] = Some(e.2[i].unwrap_or(0.0) + v);
                e.3[i] = Some(e.3[i].map_or(v, |x: f64| x.max(v)));
            }
        }
    }
    out
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(1.0),
        (None, None) => true,
        _ => false,
    }
}

fn rollups_agree_with_rows(s: &mut dyn SampleStore) {
    // Ten days of 10-minute rows for four nodes, some down; written tick by tick for the first
    // day, then the rest in one large batch (as an import: over 5000 rows), overlapping what is
    // there.
    const NODES: [&str; 4] = ["a", "b", "c", "d"];
    let mut rows = Vec::new();
    for i in 0..1440i64 {
        for (k, n) in NODES.iter().enumerate() {
            let up = (i * 7 + k as i64) % 13 != 0;
            rows.push(row(T0 + i * 600, n, up.then_some((i % 91) as f64 + 0.25)));
        }
    }
    let day = 144 * NODES.len();
    for tick in rows[..day].chunks(NODES.len()) {
        s.insert_rows(tick).expect("tick");
    }
    let new = s.insert_rows(&rows[day - 100..]).expect("batch");
    assert_eq!(new, rows.len() - day, "the batch counts only its new rows");
    let names: Vec<String> = NODES.iter().map(|n| n.to_string()).collect();
    let ids: BTreeMap<String, i64> = s.node_ids(&names).expect("ids").into_iter().collect();
    let id_list: Vec<i64> = ids.values().copied().collect();
    for (table, secs) in ROLLUPS {
        let want = expected_from_rows(&rows, &ids, secs);
        let mut got = Expected::new();
        s.scan_periods(
            &id_list,
            T0,
            T0 + 11 * 86_400,
            Some(table),
            &mut |id, p: &Period| {
                got.insert((id, p.ts), (p.n_rows, p.n_ok, p.sum, p.max));
            },
        )
        .expect("scan_periods");
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{table}: one period per node and {secs} s"
        );
        for (k, w) in &want {
            let g = &got[k];
            assert_eq!((g.0, g.1), (w.0, w.1), "{table} {k:?}: row counts");
            for i in 0..5 {
                assert!(
                    close(g.2[i], w.2[i]),
                    "{table} {k:?}: sum {i}: {g:?} vs {w:?}"
                );
                assert!(
                    close(g.3[i], w.3[i]),
                    "{table} {k:?}: max {i}: {g:?} vs {w:?}"
                );
            }
        }
    }
    let mut raw = 0;
    s.scan_periods(&id_list, T0, T0 + 86_400, None, &mut |_, p| {
        assert_eq!(p.n_rows, 1, "a raw row is a period of one");
        raw += 1;
    })
    .expect("raw periods");
    assert_eq!(raw, day, "one day of raw rows");
}

/// A group's history line (average over every answered row of its nodes per bucket, peak of any
/// of them, availability over all their rows), from raw rows and from a roll-up, agrees with the
/// rows themselves; a node outside the group changes nothing.
fn group_history_from_rows(s: &mut dyn SampleStore) {
    use crate::history::{self, HistoryQuery};
    let mut rows = Vec::new();
    for i in 0..288i64 {
        let ts = T0 + i * 600;
        rows.push(row(ts, "a", Some((i % 17) as f64)));
        rows.push(row(
            ts,
            "b",
            ((i % 5) != 0).then_some((i % 23) as f64 + 50.0),
        ));
        rows.push(row(ts, "c", Some(1000.0)));
    }
    s.insert_rows(&rows).expect("rows");
    let members = vec!["a".to_string(), "b".to_string()];
    for points in [288, 48, 2] {
        let q = HistoryQuery {
            from: T0,
            to: T0 + 2 * 86_400 - 1,
            points,
            nodes: members.clone(),
            group: Some("db".into()),
        };
        let configured = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let h = history::query(&*s, &q, &configured, 600).expect("group query");
        let g = h.group.as_ref().expect("a group answer names its group");
        assert_eq!((g.name.as_str(), &g.nodes), ("db", &members));
        assert_eq!(h.nodes.len(), 1, "one line for the group");
        let line = &h.nodes[0];
        assert_eq!(line.name, "db");
        let (mut logged, mut answered) = (0, 0);
        for (k, start) in h.t.iter().enumerate() {
            let inside: Vec<&Row> = rows
                .iter()
                .filter(|r| r.node != "c" && r.ts >= *start && r.ts < start + h.step)
                .collect();
            let cpu: Vec<f64> = inside
                .iter()
                .filter_map(|r| r.metrics.map(|m| m.cpu_pct))
                .collect();
            logged += inside.len();
            answered += cpu.len();
            let avg = (!cpu.is_empty()).then(|| cpu.iter().sum::<f64>() / cpu.len() as f64);
            let peak = cpu.iter().copied().reduce(f64::max);
            let at = format!("{} bucket {k} at {points} points", h.tier);
            assert!(close(line.metrics["cpu_pct"].avg[k], avg), "{at}: avg");
            assert!(close(line.metrics["cpu_pct"].max[k], peak), "{at}: peak");
        }
        assert!(
            close(line.availability, Some(answered as f64 / logged as f64)),
            "availability at {points} points"
        );
    }
    let none = history::empty(
        &HistoryQuery {
            from: T0,
            to: T0 + 3599,
            points: 10,
            nodes: vec![],
            group: Some("x".into()),
        },
        600,
    )
    .expect("empty");
    assert!(none.nodes.is_empty() && none.group.is_some_and(|g| g.nodes.is_empty()));
    assert_eq!(none.t.len(), 6, "the buckets are there, without lines");
}

fn identity(email: &str, sub: &str) -> Identity {
    Identity {
        sub: sub.into(),
        email: email.into(),
        email_verified: true,
        name: Some(format!("Name of {email}")),
        hd: email.split('@').nth(1).map(str::to_string),
        expires_at: T0 + 3600,
    }
}

const ISSUER: &str = "https://accounts.example";

/// A successful sign-in as the auth layer records it: the claim, then the stamp.
fn sign_in(s: &dyn AuthStore, id: &Identity, now: i64) {
    let c = s.claim_user(id, ISSUER, now).expect("claim");
    assert!(c.bound, "{} is bound to its first account", id.email);
    s.stamp_sign_in(&id.email, now).expect("stamp");
}

fn users_roles_and_blocks(s: &dyn AuthStore) {
    assert!(s.user("a@x.org").expect("user").is_none());
    sign_in(s, &identity("a@x.org", "1"), T0);
    // Tried and refused (no role): remembered, not stamped.
    s.claim_user(&identity("b@x.org", "2"), ISSUER, T0 + 5)
        .expect("claim");
    let a = s.user("a@x.org").expect("user").expect("a exists");
    assert_eq!((a.first_seen, a.last_sign_in), (T0, Some(T0)));
    assert_eq!(a.hd.as_deref(), Some("x.org"));
    sign_in(s, &identity("a@x.org", "1"), T0 + 60);
    let a = s.user("a@x.org").expect("user").expect("a");
    assert_eq!(
        (a.first_seen, a.last_sign_in),
        (T0, Some(T0 + 60)),
        "first seen kept"
    );
    let order: Vec<String> = s
        .users()
        .expect("users")
        .into_iter()
        .map(|u| u.email)
        .collect();
    assert_eq!(
        order,
        vec!["a@x.org", "b@x.org"],
        "signed-in first, newest first"
    );
    assert!(s.set_role("b@x.org", Some(Role::Admin)).expect("role"));
    assert_eq!(
        s.user("b@x.org").expect("u").and_then(|u| u.role),
        Some(Role::Admin)
    );
    assert!(s.set_role("b@x.org", None).expect("clear"));
    assert_eq!(s.user("b@x.org").expect("u").and_then(|u| u.role), None);
    assert!(!s
        .set_role("nobody@x.org", Some(Role::User))
        .expect("unknown"));
    s.create_session("h1", "a@x.org", T0, T0 + 100)
        .expect("session");
    assert!(s.set_blocked("a@x.org", true).expect("block"));
    assert!(s.user("a@x.org").expect("u").is_some_and(|u| u.blocked));
    assert!(
        s.session_user("h1", T0 + 1)
            .expect("session_user")
            .is_none(),
        "blocking ends the sessions"
    );
    assert!(s.set_blocked("a@x.org", false).expect("unblock"));
    assert!(!s.set_blocked("nobody@x.org", true).expect("unknown"));
}

fn addresses_are_bound_to_accounts(s: &dyn AuthStore) {
    let first = s
        .claim_user(&identity("a@x.org", "1"), ISSUER, T0)
        .expect("claim");
    assert!(first.bound && first.blocked_as.is_none());
    assert_eq!(
        (first.record.issuer.as_deref(), first.record.sub.as_str()),
        (Some(ISSUER), "1"),
        "the first sign-in binds the address"
    );
    s.create_session("h1", "a@x.org", T0, T0 + 1000)
        .expect("session");
    // Another account with the same address: refused, nothing of the address changes, and the
    // account is remembered for a re-bind.
    let mut other = identity("a@x.org", "2");
    other.name = Some("Someone else".into());
    let c = s.claim_user(&other, ISSUER, T0 + 10).expect("claim");
    assert!(!c.bound, "an address bound to another account");
    assert_eq!(c.record.sub, "1", "the binding stays");
    assert_eq!(
        c.record.name.as_deref(),
        Some("Name of a@x.org"),
        "name kept"
    );
    assert_eq!(
        (
            c.record.other_issuer.as_deref(),
            c.record.other_sub.as_deref(),
            c.record.other_at
        ),
        (Some(ISSUER), Some("2"), Some(T0 + 10))
    );
    // The same subject at another issuer is another account.
    let c = s
        .claim_user(
            &identity("a@x.org", "1"),
            "https://elsewhere.example",
            T0 + 11,
        )
        .expect("claim");
    assert!(!c.bound, "(issuer, sub) is the account, not sub alone");
    let c = s.claim_user(&other, ISSUER, T0 + 12).expect("claim");
    assert!(!c.bound);
    // An Admin re-binds the address to the last account that tried it: its sessions end.
    assert_eq!(
        s.rebind("a@x.org").expect("rebind"),
        Rebind::Done {
            from: "1".into(),
            to: "2".into()
        }
    );
    assert!(
        s.session_user("h1", T0 + 13).expect("session").is_none(),
        "the old account's sessions end"
    );
    assert!(s.claim_user(&other, ISSUER, T0 + 14).expect("claim").bound);
    assert!(
        !s.claim_user(&identity("a@x.org", "1"), ISSUER, T0 + 15)
            .expect("claim")
            .bound,
        "the old account is now the other one"
    );
    assert_eq!(
        s.rebind("nobody@x.org").expect("rebind"),
        Rebind::UnknownUser
    );
    assert!(
        s.claim_user(&identity("c@x.org", "3"), ISSUER, T0)
            .expect("c")
            .bound
    );
    assert_eq!(
        s.rebind("c@x.org").expect("rebind"),
        Rebind::NoOtherAccount,
        "nobody else tried c@x.org"
    );
    // A block follows the account to another of its addresses.
    assert!(s.set_blocked("c@x.org", true).expect("block"));
    let c = s
        .claim_user(&identity("c2@x.org", "3"), ISSUER, T0 + 20)
        .expect("claim");
    assert!(c.bound);
    assert_eq!(c.blocked_as.as_deref(), Some("c@x.org"));
}

fn sessions_expire_and_end(s: &dyn AuthStore) {
    sign_in(s, &identity("a@x.org", "1"), T0);
    s.create_session("h1", "a@x.org", T0, T0 + 100).expect("h1");
    s.create_session("h2", "a@x.org", T0, T0 + 200).expect("h2");
    s.create_session("h3", "a@x.org", T0, T0 + 200).expect("h3");
    let u = s
        .session_user("h1", T0 + 99)
        .expect("live")
        .expect("h1 live");
    assert_eq!(u.user.email, "a@x.org");
    assert!(
        s.session_user("h1", T0 + 100).expect("expired").is_none(),
        "expired"
    );
    assert!(s.session_user("nope", T0).expect("unknown").is_none());
    s.delete_session("h2").expect("delete");
    assert!(
        s.session_user("h2", T0 + 1).expect("h2").is_none(),
        "signed out"
    );
    assert!(
        s.session_user("h3", T0 + 1).expect("h3").is_some(),
        "others stay"
    );
    s.delete_sessions_of("a@x.org").expect("delete all");
    assert!(
        s.session_user("h3", T0 + 1).expect("h3").is_none(),
        "all of a user's"
    );
}

fn sessions_keep_their_sign_in_and_last_use(s: &dyn AuthStore) {
    sign_in(s, &identity("a@x.org", "1"), T0);
    s.create_session("h1", "a@x.org", T0, T0 + 100).expect("h1");
    let times = |now| {
        s.session_user("h1", now)
            .expect("session_user")
            .map(|r| (r.authenticated, r.last_seen, r.expires))
    };
    assert_eq!(
        times(T0),
        Some((T0, T0, T0 + 100)),
        "a new session: authenticated and last used at its sign-in"
    );
    s.touch_session("h1", T0 + 30).expect("touch");
    assert_eq!(
        times(T0 + 31),
        Some((T0, T0 + 30, T0 + 100)),
        "use moves last_seen only"
    );
    s.touch_session("h1", T0 + 20).expect("touch");
    assert_eq!(
        times(T0 + 31).map(|t| t.1),
        Some(T0 + 30),
        "last use never goes back"
    );
    s.touch_session("nope", T0 + 40)
        .expect("touching an unknown session is no error");
    s.touch_session("h1", T0 + 99).expect("touch");
    assert!(
        times(T0 + 100).is_none(),
        "use does not extend the absolute end"
    );
}

fn role_changes_end_sessions(s: &dyn AuthStore) {
    sign_in(s, &identity("a@x.org", "1"), T0);
    sign_in(s, &identity("b@x.org", "2"), T0);
    s.create_session("a1", "a@x.org", T0, T0 + 100).expect("a1");
    s.create_session("a2", "a@x.org", T0, T0 + 100).expect("a2");
    s.create_session("b1", "b@x.org", T0, T0 + 100).expect("b1");
    let live = |h| s.session_user(h, T0 + 1).expect("session_user").is_some();
    assert!(s.set_role("a@x.org", Some(Role::Admin)).expect("promote"));
    assert!(
        !live("a1") && !live("a2"),
        "a role change ends the user's sessions"
    );
    assert!(live("b1"), "another user's session stays");
    s.create_session("a3", "a@x.org", T0, T0 + 100).expect("a3");
    assert!(s.set_role("a@x.org", Some(Role::Admin)).expect("same"));
    assert!(live("a3"), "the role it already has: nothing changes");
    assert!(s.set_role("a@x.org", None).expect("back to configuration"));
    assert!(!live("a3"), "back to the configuration is a change too");
}

fn audit_pages(s: &dyn AuthStore) {
    for i in 0..7 {
        let target = format!("t{i}");
        s.audit(T0 + i, Some("a@x.org"), "sign_in", Some(&target), None)
            .expect("audit");
    }
    s.audit(T0 + 9, None, "sign_in_refused", None, Some("why"))
        .expect("anonymous");
    let (page, total) = s.audit_page(0, 3).expect("page");
    assert_eq!(total, 8);
    assert_eq!(page.len(), 3);
    assert_eq!(page[0].action, "sign_in_refused", "newest first");
    assert_eq!(page[0].actor, None);
    assert_eq!(page[1].target.as_deref(), Some("t6"));
    let (last, _) = s.audit_page(6, 3).expect("last page");
    assert_eq!(
        last.iter().map(|e| e.target.clone()).collect::<Vec<_>>(),
        vec![Some("t1".to_string()), Some("t0".to_string())]
    );
}

fn anonymous_repeats_are_counted_and_old_entries_pruned(s: &dyn AuthStore) {
    let refuse = |t: i64, detail: &str| {
        s.audit(t, None, "sign_in_refused", None, Some(detail))
            .expect("audit")
    };
    assert_eq!(refuse(T0, "bad state"), 1, "a new entry");
    for i in 1..50 {
        assert_eq!(refuse(T0 + i, "bad state"), i + 1, "counted into the first");
    }
    assert_eq!(refuse(T0 + 50, "another reason"), 1, "another detail");
    // Someone known is never collapsed.
    for t in [T0 + 51, T0 + 52] {
        assert_eq!(
            s.audit(
                t,
                Some("a@x.org"),
                "sign_in_refused",
                None,
                Some("bad state")
            )
            .expect("audit"),
            1
        );
    }
    // A target makes it another entry.
    assert_eq!(
        s.audit(
            T0 + 53,
            None,
            "sign_in_refused",
            Some("b@x.org"),
            Some("bad state")
        )
        .expect("audit"),
        1
    );
    let (page, total) = s.audit_page(0, 10).expect("page");
    assert_eq!(total, 5, "50 refusals are one entry: {page:?}");
    let first = page
        .iter()
        .find(|e| {
            e.detail.as_deref() == Some("bad state") && e.actor.is_none() && e.target.is_none()
        })
        .expect("the counted entry");
    assert_eq!(
        (first.ts, first.count, first.last_seen),
        (T0, 50, T0 + 49),
        "first seen, count, last seen"
    );
    let known = page.iter().find(|e| e.actor.is_some()).expect("known");
    assert_eq!((known.count, known.last_seen), (1, known.ts));
    // An hour after the first sighting, a new entry starts.
    assert_eq!(refuse(T0 + AUDIT_COLLAPSE_SECS, "bad state"), 1);
    assert_eq!(s.audit_page(0, 10).expect("page").1, 6);
    // Retention: entries first seen before the bound go, the rest stay.
    assert_eq!(s.prune_audit(T0 + 51).expect("prune"), 2);
    let (page, total) = s.audit_page(0, 10).expect("page");
    assert_eq!(total, 4);
    assert!(page.iter().all(|e| e.ts >= T0 + 51), "{page:?}");
    assert_eq!(s.prune_audit(T0 + 51).expect("again"), 0);
}

fn pending_sign_ins(s: &dyn AuthStore) {
    let caps = PendingCaps {
        per_client: 3,
        total: 5,
    };
    let put = |k: &str, client: &str, t: i64, expires: i64| {
        s.put_pending(k, k, client, t, expires, caps).expect("put")
    };
    assert_eq!(put("k1", "a", T0, T0 + 600), PendingPut::Kept);
    assert_eq!(put("k2", "a", T0 + 1, T0 + 601), PendingPut::Kept);
    assert_eq!(
        s.take_pending("k1", T0 + 10).expect("take").as_deref(),
        Some("k1")
    );
    assert_eq!(
        s.take_pending("k1", T0 + 10).expect("again"),
        None,
        "single use"
    );
    assert_eq!(
        s.take_pending("k2", T0 + 601).expect("expired"),
        None,
        "expired"
    );
    // One client past its own cap: its own oldest gives way.
    for (i, k) in ["k3", "k4", "k5", "k6"].iter().enumerate() {
        assert_eq!(put(k, "a", T0 + 20 + i as i64, T0 + 900), PendingPut::Kept);
    }
    assert_eq!(
        s.take_pending("k3", T0 + 30).expect("k3"),
        None,
        "the client's oldest gave way"
    );
    // Another client's sign-in is kept; when the total is reached, new ones are refused and none
    // of those in progress is evicted.
    assert_eq!(put("b1", "b", T0 + 40, T0 + 900), PendingPut::Kept);
    assert_eq!(put("c1", "c", T0 + 41, T0 + 900), PendingPut::Kept);
    assert_eq!(put("d1", "d", T0 + 42, T0 + 900), PendingPut::Full);
    assert_eq!(
        s.take_pending("d1", T0 + 43).expect("d1"),
        None,
        "refused, not kept"
    );
    for k in ["k4", "k5", "k6", "b1"] {
        assert_eq!(
            s.take_pending(k, T0 + 43).expect(k).as_deref(),
            Some(k),
            "{k} kept"
        );
    }
    // Room again once some are taken (or expire).
    assert_eq!(put("d2", "d", T0 + 44, T0 + 900), PendingPut::Kept);
    assert_eq!(put("e1", "e", T0 + 901, T0 + 1500), PendingPut::Kept);
    assert_eq!(
        s.take_pending("c1", T0 + 901).expect("c1"),
        None,
        "expired ones make room"
    );
}

fn used_tokens(s: &dyn AuthStore) {
    assert!(s.mark_used("t1", T0, T0 + 60).expect("first"), "first use");
    assert!(
        !s.mark_used("t1", T0 + 1, T0 + 60).expect("second"),
        "second use refused"
    );
    assert!(
        s.mark_used("t2", T0 + 1, T0 + 60).expect("other"),
        "another token"
    );
    assert!(
        !s.mark_used("t1", T0 + 60, T0 + 60).expect("at expiry"),
        "until it expires"
    );
}

fn api_tokens(s: &dyn AuthStore) {
    let a = s
        .create_api_token("h1", "ci", Role::User, "alice@x.org", T0, Some(T0 + 100))
        .expect("create")
        .expect("new name");
    assert_eq!(
        (a.name.as_str(), a.role, a.created, a.created_by.as_str()),
        ("ci", Role::User, T0, "alice@x.org")
    );
    assert_eq!(
        (a.expires, a.last_used, a.revoked),
        (Some(T0 + 100), None, None)
    );
    assert_eq!(
        s.create_api_token("h2", "ci", Role::Admin, "alice@x.org", T0, None)
            .expect("same name"),
        None,
        "a name is taken once"
    );
    let b = s
        .create_api_token("h2", "deploy", Role::Admin, "alice@x.org", T0 + 1, None)
        .expect("create")
        .expect("new name");
    assert_ne!(a.id, b.id);

    // Looked up by the hash while neither expired nor revoked.
    assert_eq!(s.api_token("h1", T0 + 99).expect("get"), Some(a.clone()));
    assert_eq!(s.api_token("h1", T0 + 100).expect("get"), None, "expired");
    assert_eq!(s.api_token("nope", T0).expect("get"), None);
    assert_eq!(
        s.api_token("h2", i64::MAX).expect("get").map(|t| t.role),
        Some(Role::Admin),
        "no expiry"
    );

    // Last use goes forward only.
    s.touch_api_token(b.id, T0 + 50).expect("touch");
    s.touch_api_token(b.id, T0 + 10).expect("touch back");
    assert_eq!(
        s.api_token("h2", T0 + 60)
            .expect("get")
            .and_then(|t| t.last_used),
        Some(T0 + 50)
    );

    // Revoked: not found by its hash, listed with the time; a second revoke keeps it.
    let r = s
        .revoke_api_token(b.id, T0 + 70)
        .expect("revoke")
        .expect("known");
    assert_eq!(r.revoked, Some(T0 + 70));
    assert_eq!(s.api_token("h2", T0 + 71).expect("get"), None, "revoked");
    let again = s
        .revoke_api_token(b.id, T0 + 80)
        .expect("again")
        .expect("known");
    assert_eq!(again.revoked, Some(T0 + 70));
    assert_eq!(
        s.revoke_api_token(b.id + a.id + 100, T0).expect("unknown"),
        None
    );

    let list = s.api_tokens().expect("list");
    assert_eq!(
        list.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["deploy", "ci"],
        "newest first"
    );
    assert_eq!(list[0].last_used, Some(T0 + 50));
}

// ---- alerts --------------------------------------------------------------------------------

fn state(rule: &str, node: &str, st: &str, since: i64) -> AlertStateRecord {
    AlertStateRecord {
        rule: rule.into(),
        node: node.into(),
        state: st.into(),
        since,
        fired_at: (st == "firing").then_some(since),
        value: Some(93.5),
        last_notified: None,
        acked_by: None,
        acked_at: None,
    }
}

fn event(at: i64, node: &str, st: &str) -> AlertEventRecord {
    AlertEventRecord {
        id: 0,
        at,
        rule: "cpu high".into(),
        node: node.into(),
        severity: "warning".into(),
        state: st.into(),
        value: Some(91.0),
        threshold: 90.0,
        silenced: node == "b",
    }
}

fn alert_states_round_trip(s: &dyn AlertStore) {
    assert!(
        s.alert_states().expect("states").is_empty(),
        "a new store has no alert state"
    );
    let mut a = state("cpu high", "a", "pending", T0);
    let b = state("cpu high", "b", "firing", T0 + 2);
    s.save_alerts(&[a.clone(), b.clone()], &[], &[])
        .expect("save");
    a.state = "firing".into();
    a.fired_at = Some(T0 + 10);
    a.last_notified = Some(T0 + 10);
    a.acked_by = Some("admin@example.com".into());
    a.acked_at = Some(T0 + 20);
    s.save_alerts(&[a.clone()], &[], &[]).expect("update");
    assert_eq!(
        s.alert_states().expect("states"),
        vec![a.clone(), b.clone()],
        "upsert keeps one row per (rule, node)"
    );
    s.save_alerts(&[], &[("cpu high".into(), "b".into())], &[])
        .expect("remove");
    assert_eq!(
        s.alert_states().expect("states"),
        vec![a],
        "removed pair gone"
    );
}

fn alert_history_filters_and_orders(s: &dyn AlertStore) {
    let events = [
        event(T0, "a", "firing"),
        event(T0 + 5, "b", "firing"),
        event(T0 + 9, "a", "resolved"),
    ];
    s.save_alerts(&[], &[], &events).expect("events");
    let all = s.alert_events(T0, T0 + 9, &[], 100).expect("all");
    assert_eq!(
        all.iter().map(|e| e.at).collect::<Vec<_>>(),
        vec![T0 + 9, T0 + 5, T0],
        "newest first"
    );
    assert!(all.iter().all(|e| e.id > 0), "ids assigned");
    assert!(all[1].silenced && !all[0].silenced, "silenced flag kept");
    let a = s.alert_events(T0, T0 + 100, &["a".into()], 100).expect("a");
    assert_eq!(a.len(), 2, "node filter");
    let one = s.alert_events(T0, T0 + 100, &[], 1).expect("limit");
    assert_eq!(one.len(), 1, "limit");
    assert!(
        s.alert_events(T0 + 1, T0 + 4, &[], 100)
            .expect("range")
            .is_empty(),
        "range"
    );
    assert_eq!(
        s.prune_alerts(T0 + 6).expect("prune"),
        2,
        "older events pruned"
    );
}

fn silences_expire(s: &dyn AlertStore) {
    let new = SilenceRecord {
        id: 0,
        created: T0,
        created_by: "admin@example.com".into(),
        expires: T0 + 3600,
        nodes: Some("web-*".into()),
        rule: None,
        severity: Some("warning".into()),
        comment: "deploy".into(),
    };
    let a = s.put_silence(&new).expect("put");
    assert!(a.id > 0);
    let b = s
        .put_silence(&SilenceRecord {
            expires: T0 + 60,
            ..new.clone()
        })
        .expect("put");
    assert_eq!(
        s.silences(T0)
            .expect("list")
            .iter()
            .map(|x| x.id)
            .collect::<Vec<_>>(),
        vec![a.id, b.id],
        "latest expiry first"
    );
    let ended = s
        .expire_silence(a.id, T0 + 30)
        .expect("expire")
        .expect("exists");
    assert_eq!(ended.expires, T0 + 30, "expired now");
    let again = s
        .expire_silence(a.id, T0 + 40)
        .expect("expire")
        .expect("exists");
    assert_eq!(
        again.expires,
        T0 + 30,
        "an expired silence keeps its expiry"
    );
    assert!(
        s.expire_silence(9999, T0).expect("expire").is_none(),
        "unknown id"
    );
    assert_eq!(
        s.silences(T0 + 30)
            .expect("list")
            .iter()
            .map(|x| x.id)
            .collect::<Vec<_>>(),
        vec![b.id],
        "only those expiring later"
    );
}

fn deliveries_are_logged(s: &dyn AlertStore) {
    let d = DeliveryRecord {
        id: 0,
        at: T0,
        notifier: "hook".into(),
        kind_of_notifier: "webhook".into(),
        kind: "firing".into(),
        rule: "cpu high".into(),
        nodes: vec!["a".into(), "b".into()],
        ok: false,
        attempts: 4,
        answer: "HTTP 503".into(),
    };
    let id1 = s.record_delivery(&d).expect("log");
    let id2 = s
        .record_delivery(&DeliveryRecord {
            at: T0 + 1,
            ok: true,
            attempts: 1,
            answer: "HTTP 200".into(),
            ..d.clone()
        })
        .expect("log");
    let got = s.deliveries(10).expect("list");
    assert_eq!(
        got.iter().map(|x| x.id).collect::<Vec<_>>(),
        vec![id2, id1],
        "newest first"
    );
    assert_eq!(got[1], DeliveryRecord { id: id1, ..d }, "round trip");
    assert_eq!(s.deliveries(1).expect("list").len(), 1);
}
