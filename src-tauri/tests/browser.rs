//! The web UI in real headless Chromium (WebDriver), against `dsmon serve` with real Netdata agents
//! and a database seeded through `dsmon import`. Also writes the screenshots of docs/screenshots
//! (to target/screenshots, or $DSMON_SCREENSHOT_DIR).

mod harness;

use std::time::Duration;

use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
use fantoccini::Locator;

use harness::browser::{Browser, Shows};
use harness::oidc::{dsmon_with_auth, Provider};
use harness::replay::ReplayAgents;
use harness::{Dsmon, Machine, NetdataAgent, Serve};

const M2: Machine = Machine {
    cpu_user: 5,
    cpu_system: 15,
    mem_used: 75,
    disk_quarters: 2,
    net_in_kbps: 400,
    net_out_kbps: 80,
};

fn url(serve: &Serve, page: &str) -> String {
    format!("http://127.0.0.1:{}/{page}", serve.port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_cards_update_and_follow_an_agent_down_and_up() {
    let mut agents = [
        NetdataAgent::start("alpha", Machine::STANDARD),
        NetdataAgent::start("beta", M2),
    ];
    let nodes: String = agents.iter().map(NetdataAgent::node_toml).collect();
    let d = Dsmon::new(&format!(
        "[collector]\nlog_interval = \"10s\"\nlive_interval = \"1s\"\ntimeout = \"500ms\"\n\n{nodes}"
    ));
    let serve = Serve::start(&d);
    let b = Browser::start(false, 1280, 900).await;
    b.client.goto(&url(&serve, "live")).await.expect("goto");

    b.wait("two cards up", Duration::from_secs(10), || async {
        b.count(".card.state-up").await == 2
    })
    .await;
    let alpha = ".card[data-node=alpha]";
    assert_eq!(
        b.text(&format!("{alpha} .badge")).await.to_lowercase(),
        "up"
    );
    let values = b.text(&format!("{alpha} .values")).await;
    assert!(
        values.contains("40.0 %") && values.contains("50.0 %") && values.contains("25.0 %"),
        "{values}"
    );
    // The cards update from the stream, without a reload.
    let first = b.text(&format!("{alpha} .status")).await;
    b.wait(
        "the card's update time changes",
        Duration::from_secs(5),
        || async { b.text(&format!("{alpha} .status")).await != first },
    )
    .await;

    // An agent stops: its card turns down within two live intervals (its poll is refused at once).
    agents[1].kill();
    let beta = ".card[data-node=beta]";
    let took = b
        .wait("beta's card down", Duration::from_secs(5), || async {
            b.count(&format!("{beta}.state-down")).await == 1
        })
        .await;
    assert!(
        took <= Duration::from_millis(2500),
        "down shown after {took:?}"
    );
    let status = b.text(&format!("{beta} .status")).await;
    assert!(
        status.contains("down since") && status.contains("connection failed"),
        "{status}"
    );
    assert!(b.text(".summary").await.starts_with("1 up, 1 down"));

    // And back.
    agents[1].restart();
    b.wait("beta's card up again", Duration::from_secs(10), || async {
        b.count(&format!("{beta}.state-up")).await == 1
    })
    .await;
    b.close().await;
}

/// Two retired nodes imported for the last 24 hours; `db` was down for 3 of them.
fn seed_history(d: &Dsmon) -> (i64, i64) {
    let now = chrono::Utc::now().timestamp() / 600 * 600;
    let first = now - 143 * 600;
    let mut csv = String::from("ts,node,cpu_pct,mem_pct,disk_pct,net_in_kbps,net_out_kbps,error\n");
    for i in 0..144i64 {
        let ts = chrono::DateTime::from_timestamp(first + i * 600, 0)
            .expect("ts")
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let wave = 30.0 + 20.0 * ((i as f64) / 12.0).sin();
        csv += &format!("{ts},web,{wave:.2},45,61,1200,300,\n");
        if (60..78).contains(&i) {
            csv += &format!("{ts},db,,,,,,no answer within 3s\n");
        } else {
            csv += &format!("{ts},db,{:.2},70,40,800,2000,\n", 80.0 - wave);
        }
    }
    let path = d.dir.join("seed.csv");
    std::fs::write(&path, csv).expect("seed");
    let r = d.run(&["import", path.to_str().expect("utf-8")]);
    assert_eq!(r.code, 0, "{r:?}");
    // Middle of the outage.
    (first, first + 69 * 600)
}

/// alpha answered at every tick of the last 24 hours, the current one included, with its machine's
/// values (40 % CPU, 50 % memory, 25 % disk).
fn seed_alpha(d: &Dsmon) {
    let now = chrono::Utc::now().timestamp() / 600 * 600;
    let mut csv = String::from("ts,node,cpu_pct,mem_pct,disk_pct,net_in_kbps,net_out_kbps,error\n");
    for i in 0..144i64 {
        let ts = chrono::DateTime::from_timestamp(now - (143 - i) * 600, 0)
            .expect("ts")
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        csv += &format!("{ts},alpha,40,50,25,1000,2000,\n");
    }
    let path = d.dir.join("alpha.csv");
    std::fs::write(&path, csv).expect("seed");
    let r = d.run(&["import", path.to_str().expect("utf-8")]);
    assert_eq!(r.code, 0, "{r:?}");
}

/// The uPlot legend value of series `label` in the chart of `metric`.
async fn legend_value(b: &Browser, metric: &str, label: &str) -> String {
    let js = format!(
        "const rows = document.querySelectorAll('[data-metric={metric}] .u-legend .u-series');\
         for (const r of rows) {{ const l = r.querySelector('.u-label'); if (l && l.textContent === '{label}') return r.querySelector('.u-value').textContent; }}\
         return null;"
    );
    b.client
        .execute(&js, vec![])
        .await
        .expect("js")
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Moves the pointer over the CPU chart at the fraction `x` (0..1) of its width.
async fn hover(b: &Browser, x: f64) {
    let over = b
        .client
        .find(Locator::Css("[data-metric=cpu_pct] .u-over"))
        .await
        .expect("plot area");
    let (_, _, w, _) = over.rectangle().await.expect("rect");
    let actions = MouseActions::new("mouse".into()).then(PointerAction::MoveToElement {
        element: over,
        duration: None,
        x: (x - 0.5) * w,
        y: 0.0,
    });
    b.client.perform_actions(actions).await.expect("move");
}

/// The status line of the history page once it shows `points of <step>`, or "".
async fn history_status(b: &Browser) -> String {
    b.text(".status-line").await
}

/// A day of 10-minute buckets aligned to multiples of 10 minutes: 145 of them, or 144 when "now"
/// is itself on a boundary.
fn is_day_of_10min(status: &str) -> bool {
    status.starts_with("145 points of 10 min") || status.starts_with("144 points of 10 min")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_draws_lines_gaps_presets_and_zoom() {
    let d = Dsmon::new("");
    let (first, outage) = seed_history(&d);
    let serve = Serve::start(&d);
    let b = Browser::start(false, 1280, 1000).await;
    b.client
        .goto(&url(&serve, "history?range=24h"))
        .await
        .expect("goto");
    b.wait("24 h of history", Duration::from_secs(10), || async {
        is_day_of_10min(&history_status(&b).await)
    })
    .await;
    assert_eq!(b.count(".panel .u-over").await, 5, "one chart per metric");
    assert_eq!(
        b.text(".availability tr[data-node=web] td.num").await,
        "100.0 %"
    );
    assert_eq!(
        b.text(".availability tr[data-node=db] td.num").await,
        "87.5 %"
    );

    // Over the outage: db has no value (a gap), web has one (a line).
    // Where a time falls on the chart: the page asked for the same buckets as this.
    let h: serde_json::Value = serve.json("/api/history?from=-24h&points=500", 200);
    let t = h["t"].as_array().expect("t");
    let (t_first, t_last) = (
        t[0].as_i64().unwrap_or(0),
        t[t.len() - 1].as_i64().unwrap_or(0),
    );
    let x_of = |ts: i64| (ts - t_first) as f64 / (t_last - t_first) as f64;
    hover(&b, x_of(outage)).await;
    let db = legend_value(&b, "cpu_pct", "db (retired)").await;
    let web = legend_value(&b, "cpu_pct", "web (retired)").await;
    assert_eq!(db, "–", "db during its outage: {db}");
    assert!(web.ends_with(" %") && web != "–", "web: {web}");
    hover(&b, x_of(first + 20 * 600)).await;
    let db = legend_value(&b, "cpu_pct", "db (retired)").await;
    assert!(
        db.ends_with(" %") && db != "–",
        "db before the outage: {db}"
    );

    // Presets change the range and the resolution.
    click(&b, "button[data-range='7d']").await;
    b.wait("7 days", Duration::from_secs(10), || async {
        history_status(&b)
            .await
            .contains(" points of 30 min (30m roll-ups)")
    })
    .await;
    assert!(b
        .client
        .current_url()
        .await
        .expect("url")
        .as_str()
        .ends_with("/history?range=7d"));

    // Drag across the chart to zoom in; reset goes back to 24 h.
    click(&b, "button[data-range='24h']").await;
    b.wait("24 h again", Duration::from_secs(10), || async {
        is_day_of_10min(&history_status(&b).await)
    })
    .await;
    let over = b
        .client
        .find(Locator::Css("[data-metric=cpu_pct] .u-over"))
        .await
        .expect("plot area");
    let (_, _, w, _) = over.rectangle().await.expect("rect");
    let drag = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement {
            element: over.clone(),
            duration: None,
            x: -0.25 * w,
            y: 0.0,
        })
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(PointerAction::MoveToElement {
            element: over,
            duration: Some(Duration::from_millis(200)),
            x: 0.0,
            y: 0.0,
        })
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    b.client.perform_actions(drag).await.expect("drag");
    b.wait("zoomed in", Duration::from_secs(10), || async {
        let s = history_status(&b).await;
        s.contains(" points of 10 min") && !is_day_of_10min(&s)
    })
    .await;
    let zoomed = b.client.current_url().await.expect("url").to_string();
    assert!(
        zoomed.contains("from=") && zoomed.contains("to="),
        "{zoomed}"
    );
    let points: usize = history_status(&b)
        .await
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        (30..=40).contains(&points),
        "a quarter of the day is about 36 buckets, not {points}"
    );
    b.client
        .find(Locator::Id("reset-zoom"))
        .await
        .expect("reset")
        .click()
        .await
        .expect("click");
    b.wait("reset", Duration::from_secs(10), || async {
        is_day_of_10min(&history_status(&b).await)
    })
    .await;
    assert!(b
        .client
        .current_url()
        .await
        .expect("url")
        .as_str()
        .ends_with("/history?range=24h"));

    // Tags: web and db configured again (SIGHUP), both tagged prod; their history as one line.
    let text = std::fs::read_to_string(&d.config).expect("config");
    std::fs::write(
        &d.config,
        format!(
            "{text}\n[[nodes]]\nname = \"web\"\nurl = \"http://127.0.0.1:9\"\ntags = [\"prod\"]\n\
             [[nodes]]\nname = \"db\"\nurl = \"http://127.0.0.1:9\"\ntags = [\"prod\", \"sql\"]\n"
        ),
    )
    .expect("config");
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(serve.child.id() as i32, libc::SIGHUP) };
    harness::wait_until("the nodes tagged", Duration::from_secs(10), || {
        serve
            .json("/api/nodes?tag=prod", 200)
            .as_array()
            .map(Vec::len)
            == Some(2)
    });
    b.client
        .goto(&url(&serve, "history?range=24h&tag=prod&group=1"))
        .await
        .expect("goto");
    b.wait("the group's line", Duration::from_secs(10), || async {
        b.count(".availability tbody tr").await == 1
    })
    .await;
    assert_eq!(
        b.text(".availability tbody tr td:first-child").await,
        "prod (2 nodes)"
    );
    let g = serve.json("/api/history?from=-24h&points=500&tag=prod&group=1", 200);
    assert_eq!(
        g["group"]["nodes"],
        serde_json::json!(["web", "db"]),
        "{}",
        g["group"]
    );
    // Average and peak of the group, as the API computes them.
    hover(&b, 0.1).await;
    let avg = legend_value(&b, "cpu_pct", "prod").await;
    let max = legend_value(&b, "cpu_pct", "prod max").await;
    assert!(avg.ends_with(" %") && max.ends_with(" %"), "{avg} / {max}");
    let value = |v: &str| v.trim_end_matches(" %").parse::<f64>().unwrap_or(f64::NAN);
    assert!(value(&max) >= value(&avg), "{avg} / {max}");
    let checked = b
        .client
        .execute(
            "return [document.querySelector('#history-tag').value, document.querySelector('#history-group').checked];",
            vec![],
        )
        .await
        .expect("controls");
    assert_eq!(checked, serde_json::json!(["prod", true]));
    // "One line" off: both nodes again, the tag kept.
    click(&b, "#history-group").await;
    b.wait("a line per node", Duration::from_secs(10), || async {
        b.count(".availability tbody tr").await == 2
    })
    .await;
    assert!(b
        .client
        .current_url()
        .await
        .expect("url")
        .as_str()
        .ends_with("/history?range=24h&tag=prod"));
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshots_of_every_page_light_and_dark() {
    let agents = [
        NetdataAgent::start("alpha", Machine::STANDARD),
        NetdataAgent::start("beta", M2),
    ];
    let mut nodes: String = agents.iter().map(NetdataAgent::node_toml).collect();
    nodes += "[[nodes]]\nname = \"gamma\"\nurl = \"http://127.0.0.1:9\"\n";
    let d = Dsmon::new(&format!(
        "[collector]\nlive_interval = \"1s\"\ntimeout = \"500ms\"\n\n{nodes}"
    ));
    seed_history(&d);
    // alpha's last 24 hours too (its agent started just now: serve's first tick closes an interval
    // before it existed, which logs no row), so that its node page has a day to show.
    seed_alpha(&d);
    let serve = Serve::start(&d);
    for (theme, dark) in [("light", false), ("dark", true)] {
        let b = Browser::start(dark, 1280, 900).await;
        b.client.goto(&url(&serve, "live")).await.expect("goto");
        b.wait("cards", Duration::from_secs(10), || async {
            b.count(".card.state-up").await == 2 && b.count(".card.state-down").await == 1
        })
        .await;
        // A few snapshots for the rolling charts.
        tokio::time::sleep(Duration::from_secs(4)).await;
        b.screenshot(
            &format!("live-{theme}"),
            &[
                Shows::Dark(dark),
                Shows::Text("main h1", "Live"),
                Shows::Text(".summary", "2 up, 1 down (gamma), 3 nodes"),
                Shows::Text("#conn", "live"),
                Shows::Count(".card.state-up", 2),
                Shows::Count(".card.state-down", 1),
                Shows::Text(".card[data-node=alpha] .values", "40.0 %"),
                Shows::Text(".card[data-node=beta] .values", "20.0 %"),
                Shows::Text(".card[data-node=gamma] .status", "connection failed"),
                Shows::Drawn(".card.state-up .spark canvas", 2),
            ],
        )
        .await;
        b.client
            .goto(&url(&serve, "history?range=24h"))
            .await
            .expect("goto");
        b.wait("history", Duration::from_secs(10), || async {
            b.text(".status-line").await.contains("points of")
        })
        .await;
        b.screenshot(
            &format!("history-{theme}"),
            &[
                Shows::Dark(dark),
                Shows::Text("main h1", "History"),
                Shows::Count("button.active[data-range='24h']", 1),
                Shows::Text(".status-line", "points of 10 min (logged rows)"),
                Shows::Text(".availability tr[data-node=web]", "100.0 %"),
                Shows::Text(".availability tr[data-node=db]", "87.5 %"),
                Shows::Count(".availability tbody tr", 5),
                Shows::Drawn("[data-metric=cpu_pct] canvas", 1),
                Shows::Drawn("[data-metric=mem_pct] canvas", 1),
            ],
        )
        .await;
        b.client
            .goto(&url(&serve, "nodes/alpha"))
            .await
            .expect("goto");
        b.wait("node page", Duration::from_secs(10), || async {
            b.count(".card.big.state-up").await == 1
                && !b.text(".status-line").await.starts_with("Loading")
        })
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        b.screenshot(
            &format!("node-{theme}"),
            &[
                Shows::Dark(dark),
                Shows::Text(".crumbs", "Live / alpha"),
                Shows::Text("main h1", "alpha"),
                Shows::Count(".card.big.state-up", 1),
                Shows::Text(".card.big .values", "40.0 %"),
                Shows::Drawn(".card.big .spark canvas", 1),
                Shows::Text(".dashboard-link", "Open its Netdata dashboard"),
                Shows::Text(".node-alerts", "No alerts on this node."),
                Shows::Text(".status-line", "Available 100.0 %"),
            ],
        )
        .await;
        // Phone width.
        if !dark {
            b.client.set_window_size(390, 844).await.expect("resize");
            b.client.goto(&url(&serve, "live")).await.expect("goto");
            b.wait("cards", Duration::from_secs(10), || async {
                b.count(".card").await == 3
            })
            .await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            b.screenshot(
                "live-phone",
                &[
                    Shows::Text("main h1", "Live"),
                    Shows::Text(".summary", "2 up, 1 down (gamma), 3 nodes"),
                    Shows::Text(".card[data-node=alpha] .values", "40.0 %"),
                    Shows::Text(".card[data-node=beta] .badge", "UP"),
                    // One column: the cards in view fit the phone's width.
                    Shows::Fits(".card"),
                    Shows::Drawn(".card[data-node=alpha] .spark canvas", 1),
                ],
            )
            .await;
        }
        b.close().await;
    }
}

async fn click(b: &Browser, css: &str) {
    b.client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn displayed(b: &Browser, css: &str) -> bool {
    let e = b.client.find(Locator::Css(css)).await.expect("element");
    e.is_displayed().await.expect("displayed")
}

/// Signs in through the provider's own login page, as a person would.
async fn sign_in_in_browser(b: &Browser, start: &str, email: &str) {
    b.client.goto(start).await.expect("goto");
    b.wait(
        "the provider's login page",
        Duration::from_secs(10),
        || async { b.count("#email").await == 1 },
    )
    .await;
    let field = b
        .client
        .find(Locator::Css("#email"))
        .await
        .expect("email field");
    field.send_keys(email).await.expect("type email");
    click(b, "#submit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_as_admin_and_as_user_shows_what_each_role_may_see() {
    let agent = NetdataAgent::start("alpha", Machine::STANDARD);
    let provider = Provider::start("http://127.0.0.1/auth/callback");
    let (_d, serve) = dsmon_with_auth(
        &format!(
            "[collector]\nlive_interval = \"1s\"\ntimeout = \"500ms\"\n\n{}",
            agent.node_toml()
        ),
        &provider.issuer,
    );

    // Admin: asked for history, signs in at the provider, comes back to history.
    let b = Browser::start(false, 1280, 900).await;
    sign_in_in_browser(&b, &url(&serve, "history?range=24h"), "alice@example.com").await;
    b.wait("history page as admin", Duration::from_secs(15), || async {
        b.text("main h1").await == "History" && b.text("#role").await == "Admin"
    })
    .await;
    assert_eq!(b.text("#me").await, "alice@example.com");
    for nav in ["live", "history", "users", "audit", "tokens"] {
        let shown = displayed(&b, &format!("[data-nav={nav}]")).await;
        assert!(shown, "admin sees {nav}");
    }
    // The users page lists the admin, and the audit log her sign-in.
    click(&b, "[data-nav=users]").await;
    b.wait("users table", Duration::from_secs(10), || async {
        b.text("table.users").await.contains("alice@example.com")
    })
    .await;
    b.screenshot(
        "users-light",
        &[
            Shows::Text("main h1", "Users"),
            Shows::Count("[data-nav=users].active", 1),
            Shows::Text("#me", "alice@example.com"),
            Shows::Text("#role", "Admin"),
            Shows::Text(".status-line", "1 user"),
            Shows::Text(
                "table.users tr[data-email='alice@example.com']",
                "alice@example.com (you)",
            ),
            Shows::Text(
                "table.users tr[data-email='alice@example.com']",
                "(configuration file)",
            ),
        ],
    )
    .await;
    click(&b, "[data-nav=audit]").await;
    b.wait("audit table", Duration::from_secs(10), || async {
        b.text("table.audit").await.contains("sign in")
    })
    .await;
    b.screenshot(
        "audit-light",
        &[
            Shows::Text("main h1", "Audit log"),
            Shows::Count("[data-nav=audit].active", 1),
            Shows::Text(".status-line", "Entries 1–1 of 1"),
            Shows::Text("table.audit tbody tr", "alice@example.com"),
            Shows::Text("table.audit tbody tr", "sign in"),
        ],
    )
    .await;
    // API tokens: create one, its secret shown once with a warning, listed, revoked.
    click(&b, "[data-nav=tokens]").await;
    b.wait("tokens page", Duration::from_secs(10), || async {
        b.text("#tokens-status").await == "No tokens yet."
    })
    .await;
    b.client
        .find(Locator::Css("#token-name"))
        .await
        .expect("name field")
        .send_keys("ci-export")
        .await
        .expect("type name");
    click(&b, "#token-create").await;
    b.wait("the new secret", Duration::from_secs(10), || async {
        b.client
            .execute(
                "return document.querySelector('#token-secret')?.value ?? ''",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_str().map(|s| s.starts_with("dsmon_")))
            .unwrap_or(false)
    })
    .await;
    b.screenshot(
        "tokens-light",
        &[
            Shows::Text("#token-created .warning", "shown this once"),
            Shows::Count("#token-copy", 1),
            Shows::Text("tr[data-name='ci-export']", "alice@example.com"),
            Shows::Text("tr[data-name='ci-export']", "active"),
        ],
    )
    .await;
    click(&b, "tr[data-name='ci-export'] button.revoke").await;
    b.client.accept_alert().await.expect("confirm the revoke");
    b.wait("token revoked", Duration::from_secs(10), || async {
        b.text("tr[data-name='ci-export']")
            .await
            .contains("revoked")
    })
    .await;

    // Sign out: the server forgets the session.
    click(&b, "#signout").await;
    b.wait("signed out", Duration::from_secs(10), || async {
        b.text("#message h1").await == "Signed out"
    })
    .await;
    b.client.goto(&url(&serve, "api/me")).await.expect("goto");
    b.wait(
        "no session after signing out",
        Duration::from_secs(10),
        || async { b.text("body").await.contains("not signed in") },
    )
    .await;
    b.close().await;

    // User: the live view with its card; no history, users or audit in the page, and the
    // backend refuses the history page when asked directly.
    let b = Browser::start(false, 1280, 900).await;
    sign_in_in_browser(&b, &url(&serve, "live"), "bob@example.org").await;
    b.wait("live page as user", Duration::from_secs(15), || async {
        b.text("#role").await == "User" && b.count(".card.state-up").await == 1
    })
    .await;
    for nav in ["history", "users", "audit", "tokens"] {
        let shown = displayed(&b, &format!("[data-nav={nav}]")).await;
        assert!(!shown, "a user must not be offered {nav}");
    }
    b.client.goto(&url(&serve, "history")).await.expect("goto");
    b.wait("not authorized page", Duration::from_secs(10), || async {
        b.text("#message h1").await == "Not authorized"
    })
    .await;
    assert!(b.text("#message").await.contains("bob@example.org"));
    b.close().await;

    // A stranger gets the "not authorized" page and no session.
    let b = Browser::start(false, 1280, 900).await;
    sign_in_in_browser(&b, &url(&serve, "live"), "stranger@other.org").await;
    b.wait("stranger refused", Duration::from_secs(10), || async {
        b.text("#message")
            .await
            .contains("stranger@other.org is not authorized")
    })
    .await;
    b.close().await;
}

/// The names of the table's rows, in the order shown.
async fn table_rows(b: &Browser) -> Vec<String> {
    let v = b
        .client
        .execute(
            "return [...document.querySelectorAll('#node-table tbody tr')].map((r) => r.dataset.node);",
            vec![],
        )
        .await
        .expect("rows");
    serde_json::from_value(v).unwrap_or_default()
}

/// The page's own figures of its live updates from now on: waits for `n` of them in the table
/// view and returns (render, layout, frame) in milliseconds, each sorted.
async fn update_times(b: &Browser, n: usize) -> [Vec<f64>; 3] {
    b.client
        .execute("window.dsmonLivePerf.updates = [];", vec![])
        .await
        .expect("reset figures");
    let read = "return window.dsmonLivePerf.updates.filter((u) => u.view === 'table' && u.frame !== null);";
    b.wait(
        "the page's update figures",
        Duration::from_secs(4 * n as u64 + 10),
        || async {
            let v = b.client.execute(read, vec![]).await.expect("figures");
            v.as_array().map_or(0, Vec::len) >= n
        },
    )
    .await;
    let v = b.client.execute(read, vec![]).await.expect("figures");
    let all = v.as_array().cloned().unwrap_or_default();
    let pick = |k: &str| {
        let mut xs: Vec<f64> = all.iter().take(n).filter_map(|u| u[k].as_f64()).collect();
        xs.sort_by(f64::total_cmp);
        xs
    };
    [pick("render"), pick("layout"), pick("frame")]
}

fn percentiles(xs: &[f64]) -> String {
    let at = |p: f64| xs[((xs.len() as f64 - 1.0) * p).round() as usize];
    format!(
        "p50 {:.1}, p95 {:.1}, max {:.1} ms",
        at(0.5),
        at(0.95),
        xs[xs.len() - 1]
    )
}

/// The table view with 1000 nodes (a replay server standing in for their agents; every 100th
/// node's address refuses connections, so it is down, and fires the "node down" rule): the
/// default view and order, sorting by a column, the summary bar's state filter, the text filter in
/// the URL, the URL restoring the view, the remembered card/table choice; and the page's own
/// figures of an update (printed, not asserted: docs/performance.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_view_of_1000_nodes_sorts_filters_and_keeps_its_url() {
    const N: usize = 1000;
    dsmon::raise_fd_limit();
    let agents = ReplayAgents::start();
    let is_down = |i: usize| i % 100 == 50;
    let d = Dsmon::new(&format!(
        "[collector]\nlive_interval = \"2s\"\ntimeout = \"1500ms\"\n\n\
         [[alerts.rules]]\nname = \"node down\"\nmetric = \"down\"\nfor = \"2s\"\nseverity = \"critical\"\n\n{}",
        agents.nodes_toml(N, is_down)
    ));
    let serve = Serve::start(&d);
    let b = Browser::start(false, 1280, 900).await;
    b.client.goto(&url(&serve, "live")).await.expect("goto");
    b.wait(
        "1000 rows, 990 up and 10 down",
        Duration::from_secs(60),
        || async {
            table_rows(&b).await.len() == N
                && b.text(".summary").await.starts_with("990 up, 10 down")
        },
    )
    .await;
    // More than 20 nodes and nothing chosen yet: the table, not the cards.
    assert!(displayed(&b, "#node-table").await);
    assert!(!displayed(&b, "section.grid").await);
    assert_eq!(
        b.count(".card").await,
        0,
        "no card is made for the table view"
    );
    // Tags (every 4th node `db`, every 5th `eu-west`): a tag filter is offered, the column shows them.
    assert!(displayed(&b, "#tag-filter").await);
    assert_eq!(
        b.text("#node-table tbody tr[data-node=node0000] td:last-child")
            .await,
        "db, eu-west"
    );
    assert_eq!(
        b.text("#node-table tbody tr[data-node=node0001] td:last-child")
            .await,
        ""
    );
    assert_eq!(
        b.client.current_url().await.expect("url").as_str(),
        url(&serve, "live"),
        "the default view adds nothing to the URL"
    );

    // Down nodes first (by name), then the others by name.
    let down: Vec<String> = (0..N)
        .filter(|&i| is_down(i))
        .map(|i| format!("node{i:04}"))
        .collect();
    let up: Vec<String> = (0..N)
        .filter(|&i| !is_down(i))
        .map(|i| format!("node{i:04}"))
        .collect();
    let rows = table_rows(&b).await;
    assert_eq!(rows[..10], down[..], "down nodes first");
    assert_eq!(rows[10..20], up[..10]);
    let sorted_by = "return [...document.querySelectorAll('#node-table th[aria-sort]')].map((t) => t.dataset.col + ' ' + t.getAttribute('aria-sort')).join();";
    let aria = |b: &Browser| {
        let c = b.client.clone();
        async move {
            c.execute(sorted_by, vec![])
                .await
                .expect("aria-sort")
                .as_str()
                .unwrap_or_default()
                .to_string()
        }
    };
    assert_eq!(aria(&b).await, "state ascending");
    b.wait("10 alerts firing", Duration::from_secs(20), || async {
        b.text(".summary-bar [data-state=firing]").await == "10 firing alerts"
    })
    .await;
    b.screenshot(
        "live-table-light",
        &[
            Shows::Text("main h1", "Live"),
            Shows::Text(".summary", "990 up, 10 down"),
            Shows::Text(".summary-bar [data-state=down]", "10 down"),
            Shows::Text(".summary-bar [data-state=up]", "990 up"),
            Shows::Text(".summary-bar [data-state=firing]", "10 firing alerts"),
            Shows::Text("#node-table th[aria-sort=ascending]", "State"),
            Shows::Text("#node-table tbody tr.state-down", "node0050"),
            Shows::Text("#node-table tbody tr.state-up", "node0000"),
            Shows::Text("#node-table tbody tr[data-node=node0000] td.num", "%"),
        ],
    )
    .await;

    // The page's cost of an update, 1000 rows in the default order.
    let [render, layout, frame] = update_times(&b, 10).await;
    println!("table of {N} nodes, default order, 10 updates: handler {}; handler + style + layout {}; until the next frame {}",
        percentiles(&render), percentiles(&layout), percentiles(&frame));

    // An update patches the rows in place: the same row element, with a new memory value.
    let before = b
        .client
        .execute(
            "const r = document.querySelector('#node-table tr[data-node=node0000]'); r.dsmonMark = 1;\
             return [r.cells[3].textContent, window.dsmonLivePerf.updates.length];",
            vec![],
        )
        .await
        .expect("mark a row");
    let check = "const r = document.querySelector('#node-table tr[data-node=node0000]');\
                 return [r.dsmonMark === 1, r.cells[3].textContent, window.dsmonLivePerf.updates.length];";
    b.wait("an update", Duration::from_secs(10), || async {
        let now = b.client.execute(check, vec![]).await.expect("row");
        now[2].as_u64() > before[1].as_u64()
    })
    .await;
    let after = b.client.execute(check, vec![]).await.expect("row");
    assert_eq!(after[0], true, "the row was rebuilt");
    assert_ne!(after[1], before[0], "node0000's memory did not change");
    assert!(
        after[1].as_str().unwrap_or_default().ends_with(" %"),
        "{after}"
    );

    // CPU, highest first: as the data says (down nodes, without a value, last).
    click(&b, "#node-table button[data-sort=cpu]").await;
    let live = serve.json("/api/live", 200);
    let mut by_cpu: Vec<(f64, String)> = live["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["state"] == "up")
        .map(|n| {
            (
                n["metrics"]["cpu_pct"].as_f64().expect("cpu"),
                n["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(by_cpu.len(), N - down.len());
    by_cpu.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let want: Vec<String> = by_cpu.iter().take(20).map(|(_, n)| n.clone()).collect();
    b.wait("sorted by CPU", Duration::from_secs(5), || async {
        table_rows(&b).await[..20] == want[..]
    })
    .await;
    assert_eq!(table_rows(&b).await[N - 10..], down[..], "no value: last");
    assert_eq!(aria(&b).await, "cpu descending");
    assert_eq!(
        b.text("#node-table tbody tr:first-child td:nth-of-type(2)")
            .await,
        format!("{:.1} %", by_cpu[0].0)
    );
    // Again: lowest first.
    click(&b, "#node-table button[data-sort=cpu]").await;
    let lowest_first = {
        let mut w = by_cpu.clone();
        w.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        w.into_iter().take(20).map(|(_, n)| n).collect::<Vec<_>>()
    };
    b.wait(
        "sorted by CPU, lowest first",
        Duration::from_secs(5),
        || async { table_rows(&b).await[..20] == lowest_first[..] },
    )
    .await;
    assert_eq!(aria(&b).await, "cpu ascending");
    assert!(b
        .client
        .current_url()
        .await
        .expect("url")
        .as_str()
        .ends_with("/live?sort=cpu&dir=asc"));

    // The summary bar filters by state: the firing alerts are the down nodes'.
    click(&b, ".summary-bar [data-state=firing]").await;
    b.wait(
        "the nodes with firing alerts",
        Duration::from_secs(5),
        || async {
            let mut rows = table_rows(&b).await;
            rows.sort();
            rows == down
        },
    )
    .await;
    assert!(b
        .client
        .current_url()
        .await
        .expect("url")
        .as_str()
        .contains("state=firing"));
    click(&b, ".summary-bar [data-state=firing]").await;
    b.wait("all rows again", Duration::from_secs(5), || async {
        table_rows(&b).await.len() == N
    })
    .await;

    // The text filter narrows the rows and lands in the URL.
    let filter = b
        .client
        .find(Locator::Css("#live-filter"))
        .await
        .expect("filter");
    filter.send_keys("node012").await.expect("type");
    let wanted: Vec<String> = (120..130).map(|i| format!("node{i:04}")).collect();
    b.wait("10 rows", Duration::from_secs(5), || async {
        let mut rows = table_rows(&b).await;
        rows.sort();
        rows == wanted
    })
    .await;
    assert_eq!(b.text("#shown-note").await, "Showing 10 of 1000 nodes.");
    let filtered = b.client.current_url().await.expect("url").to_string();
    assert!(
        filtered.ends_with("/live?sort=cpu&dir=asc&q=node012"),
        "{filtered}"
    );
    let order = table_rows(&b).await;

    // The URL reproduces the view in a new page load.
    b.client.goto(&filtered).await.expect("reload");
    b.wait(
        "the same rows after a reload",
        Duration::from_secs(20),
        || async { table_rows(&b).await == order },
    )
    .await;
    assert_eq!(aria(&b).await, "cpu ascending");
    let value = b
        .client
        .execute(
            "return document.querySelector('#live-filter').value;",
            vec![],
        )
        .await
        .expect("value");
    assert_eq!(value, "node012");

    // Cards: the choice is remembered for a URL that names no view.
    click(&b, ".view-switch [data-view=cards]").await;
    b.wait("10 cards", Duration::from_secs(10), || async {
        b.count(".card:not([hidden])").await == 10
    })
    .await;
    assert!(!displayed(&b, "#node-table").await);
    assert!(b
        .client
        .current_url()
        .await
        .expect("url")
        .as_str()
        .contains("view=cards"));
    b.client
        .goto(&url(&serve, "live?q=node012"))
        .await
        .expect("goto");
    b.wait("cards again", Duration::from_secs(20), || async {
        b.count(".card:not([hidden])").await == 10
    })
    .await;
    assert!(!displayed(&b, "#node-table").await);

    // A tag filter from the URL: both tags, every 20th node; the server's filter agrees.
    b.client
        .goto(&url(&serve, "live?view=table&tag=db&tag=eu-west"))
        .await
        .expect("goto");
    let tagged: Vec<String> = (0..N)
        .filter(|i| i % 20 == 0)
        .map(|i| format!("node{i:04}"))
        .collect();
    b.wait(
        "the nodes tagged db and eu-west",
        Duration::from_secs(20),
        || async {
            let mut rows = table_rows(&b).await;
            rows.sort();
            rows == tagged
        },
    )
    .await;
    let by_api: Vec<String> = serve.json("/api/live?tag=db&tag=eu-west", 200)["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(by_api, tagged, "/api/live?tag=db&tag=eu-west");
    // One tag chosen in the select: every 4th node.
    b.client
        .execute(
            "const s = document.querySelector('#tag-filter'); s.value = 'db'; s.dispatchEvent(new Event('change'));",
            vec![],
        )
        .await
        .expect("choose db");
    b.wait("the nodes tagged db", Duration::from_secs(5), || async {
        table_rows(&b).await.len() == N / 4
    })
    .await;
    assert!(b
        .client
        .current_url()
        .await
        .expect("url")
        .as_str()
        .ends_with("tag=db"));

    // The hardest order to keep: memory, which moves every second on every node.
    b.client
        .goto(&url(&serve, "live?view=table&sort=mem&dir=desc"))
        .await
        .expect("goto");
    b.wait("1000 rows by memory", Duration::from_secs(20), || async {
        table_rows(&b).await.len() == N
    })
    .await;
    let [render, layout, frame] = update_times(&b, 10).await;
    println!("table of {N} nodes sorted by memory (re-ordered at every update), 10 updates: handler {}; handler + style + layout {}; until the next frame {}",
        percentiles(&render), percentiles(&layout), percentiles(&frame));
    let moved = b
        .client
        .execute("return window.dsmonLivePerf.updates.slice(-10).map((u) => u.moved + '/' + u.cells).join(' ');", vec![])
        .await
        .expect("moves");
    println!(
        "rows moved / cells written per update: {}",
        moved.as_str().unwrap_or_default()
    );
    b.close().await;
}
