//! The alerts in the web UI, in real headless Chromium (WebDriver), against `dsmon serve` with real
//! Netdata agents, sign-in through a real OpenID Connect provider and a webhook receiver: a rule
//! fires within seconds, an Admin sees it on the Alerts page, silences it through the form, sees
//! the silence applied, expires it, acknowledges the alert and sends a test notification; the
//! live cards and the history charts mark it; a User sees the badge but not the Alerts page.
//! Writes screenshots like `browser.rs` (to target/screenshots, or $DSMON_SCREENSHOT_DIR).

mod harness;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fantoccini::actions::{InputSource, MouseActions, PointerAction};
use fantoccini::Locator;

use harness::browser::{Browser, Shows};
use harness::oidc::{dsmon_with_auth, Provider};
use harness::{Machine, NetdataAgent, Serve};

const BETA: Machine = Machine {
    cpu_user: 5,
    cpu_system: 15,
    mem_used: 75,
    disk_quarters: 2,
    net_in_kbps: 400,
    net_out_kbps: 80,
};

const RULE: &str = "memory high";

fn url(serve: &Serve, page: &str) -> String {
    format!("http://127.0.0.1:{}/{page}", serve.port)
}

/// A webhook receiver on 127.0.0.1 that answers every request 200 and counts them; it lives as
/// long as the test (its thread blocks in accept, and the process ends with the test binary).
fn webhook() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind webhook");
    let port = listener.local_addr().expect("addr").port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = BufReader::new(conn.try_clone().expect("clone"));
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    (port, count)
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

/// Types `text` into the field `css`.
async fn type_into(b: &Browser, css: &str, text: &str) {
    let field = b
        .client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

/// Chooses the option `value` of the select `css`, as a person would (a click on the option).
async fn choose(b: &Browser, css: &str, value: &str) {
    b.client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .select_by_value(value)
        .await
        .unwrap_or_else(|e| panic!("choose {value} in {css}: {e}"));
}

/// Scrolls the element `css` to the top of the viewport (for a screenshot of it).
async fn scroll_to(b: &Browser, css: &str) {
    b.client
        .execute(
            "document.querySelector(arguments[0]).scrollIntoView({ block: 'start' }); window.scrollBy(0, -60);",
            vec![serde_json::json!(css)],
        )
        .await
        .expect("scroll");
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
    type_into(b, "#email", email).await;
    click(b, "#submit").await;
}

/// The JSON answer of the API at `path`, asked by the page (with its session).
async fn api(b: &Browser, path: &str) -> serde_json::Value {
    b.client
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             fetch(arguments[0]).then((r) => r.json()).then(done, (e) => done({ error: String(e) }));",
            vec![serde_json::json!(path)],
        )
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The row of the current alert of RULE on `node` on the Alerts page.
fn current_row(node: &str) -> String {
    format!("#current tr[data-rule='{RULE}'][data-node={node}]")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_page_silence_acknowledge_live_badges_and_roles() {
    let agents = [
        NetdataAgent::start("alpha", Machine::STANDARD),
        NetdataAgent::start("beta", BETA),
    ];
    let nodes: String = agents.iter().map(NetdataAgent::node_toml).collect();
    let (hook_port, received) = webhook();
    let provider = Provider::start("http://127.0.0.1/auth/callback");
    // Memory is at 50 % (alpha) and 75 % (beta): "memory high" fires on both after 2 s; "cpu
    // critical" never does (it is there for the form's rule choice). The maintenance window only
    // covers nodes that do not exist: it is open now without muting anything.
    let (_d, serve) = dsmon_with_auth(
        &format!(
            "[collector]\nlog_interval = \"10s\"\nlive_interval = \"1s\"\ntimeout = \"500ms\"\n\n{nodes}\n\
             [alerts]\nattempts = 1\n\n\
             [[alerts.notifiers]]\nname = \"ops-hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{hook_port}/hook\"\n\n\
             [[alerts.rules]]\nname = \"{RULE}\"\nmetric = \"mem_pct\"\nabove = 10\nfor = \"2s\"\nseverity = \"critical\"\nnotify = [\"ops-hook\"]\nrepeat = \"4h\"\n\n\
             [[alerts.rules]]\nname = \"cpu critical\"\nmetric = \"cpu_pct\"\nabove = 99\nclear = 95\nfor = \"1m\"\nseverity = \"warning\"\nnodes = [\"alpha\", \"beta\"]\n\n\
             [[alerts.maintenance]]\nname = \"lab nights\"\nstart = \"00:00\"\nend = \"23:59\"\nnodes = [\"lab-*\"]\n"
        ),
        &provider.issuer,
    );

    // ---- Admin: the Alerts page ----
    let b = Browser::start(false, 1280, 1000).await;
    sign_in_in_browser(&b, &url(&serve, "alerts"), "alice@example.com").await;
    b.wait(
        "the Alerts page as admin",
        Duration::from_secs(15),
        || async { b.text("main h1").await == "Alerts" && b.text("#role").await == "Admin" },
    )
    .await;
    assert!(
        displayed(&b, "[data-nav=alerts]").await,
        "admin sees Alerts"
    );
    b.wait(
        "memory high firing on alpha and beta",
        Duration::from_secs(20),
        || async {
            b.count(&format!("{}[data-state=firing]", current_row("alpha")))
                .await
                == 1
                && b.count(&format!("{}[data-state=firing]", current_row("beta")))
                    .await
                    == 1
        },
    )
    .await;
    // The firing notification reached the webhook, and the delivery log shows it as the backend
    // recorded it (outcome, attempts, the receiver's answer).
    b.wait("the delivery log", Duration::from_secs(15), || async {
        b.count("#deliveries tr.delivery[data-notifier=ops-hook][data-kind=firing]")
            .await
            >= 1
    })
    .await;
    let logged = api(&b, "/api/alerts/deliveries").await;
    let first = logged["deliveries"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["kind"] == "firing"))
        .cloned()
        .expect("a firing delivery");
    let row = format!("#deliveries tr.delivery[data-id='{}']", first["id"]);
    assert_eq!(
        b.text(&format!("{row} td.outcome")).await,
        if first["ok"] == true { "ok" } else { "failed" }
    );
    assert_eq!(
        b.text(&format!("{row} td.num")).await,
        first["attempts"].to_string()
    );
    assert_eq!(
        b.text(&format!("{row} td.answer")).await,
        first["answer"].as_str().unwrap_or_default()
    );
    assert_eq!(first["ok"], true, "delivered to the webhook: {first}");
    assert!(
        received.load(Ordering::SeqCst) >= 1,
        "the webhook was called"
    );
    b.wait(
        "the history lists the firing",
        Duration::from_secs(10),
        || async {
            b.count(&format!(
                "#events tr.event[data-rule='{RULE}'][data-node=alpha][data-state=firing]"
            ))
            .await
                == 1
        },
    )
    .await;
    let alpha = current_row("alpha");
    let row = b.text(&alpha).await;
    assert!(
        row.contains("CRITICAL") && row.contains("50.0 %") && row.contains("above 10 %"),
        "{row}"
    );
    assert_eq!(b.count(&format!("{alpha} button.ack")).await, 1);
    // Rules, notifiers and the maintenance window from the configuration.
    let rules = b.text("#rules table").await;
    assert!(
        rules.contains("mem_pct above 10 %")
            && rules.contains("2s")
            && rules.contains("ops-hook")
            && rules.contains("4h")
            && rules.contains("cpu_pct above 99 %")
            && rules.contains("95 %"),
        "{rules}"
    );
    let windows = b.text("#maintenance table").await;
    assert!(
        windows.contains("lab nights") && windows.contains("open now"),
        "{windows}"
    );
    b.screenshot(
        "alerts-light",
        &[
            Shows::Text("main h1", "Alerts"),
            Shows::Count("[data-nav=alerts].active", 1),
            Shows::Text("#current-status", "2 firing"),
            Shows::Text(&alpha, "memory high"),
            Shows::Text(&format!("{alpha} button.ack"), "Acknowledge"),
            Shows::Text("#silences", "No silences."),
            Shows::Text("#silence-form label[for=silence-comment]", "Comment"),
        ],
    )
    .await;

    // A silence through the form. One that matches nothing in particular: the backend refuses
    // it, and the form shows its message.
    scroll_to(&b, "#silence-form").await;
    type_into(&b, "#silence-comment", "everything").await;
    click(&b, "#silence-create").await;
    b.wait("the backend's refusal", Duration::from_secs(10), || async {
        b.text("#silence-form-status").await
            == "Could not create the silence: a silence matches by nodes (a glob), rule and/or severity: give at least one"
    })
    .await;
    // A comment is required (the page says so and sends nothing).
    b.client
        .find(Locator::Css("#silence-comment"))
        .await
        .expect("comment")
        .clear()
        .await
        .expect("clear");
    type_into(&b, "#silence-nodes", "alph*").await;
    choose(&b, "#silence-rule", RULE).await;
    choose(&b, "#silence-expires", "4h").await;
    click(&b, "#silence-create").await;
    b.wait(
        "the comment is asked for",
        Duration::from_secs(5),
        || async {
            b.text("#silence-form-status")
                .await
                .contains("A comment is required")
        },
    )
    .await;
    assert_eq!(b.count("#silences-list tr.silence").await, 0);
    type_into(&b, "#silence-comment", "memory test on alpha").await;
    click(&b, "#silence-create").await;
    b.wait("the silence listed", Duration::from_secs(10), || async {
        b.text("#silences-list tr.silence.active")
            .await
            .contains("memory test on alpha")
    })
    .await;
    let silence = b.text("#silences-list tr.silence.active").await;
    assert!(
        silence.contains("alph*")
            && silence.contains(RULE)
            && silence.contains("alice@example.com"),
        "{silence}"
    );
    assert!(b
        .text("#silence-form-status")
        .await
        .starts_with("Silence created"));
    // As the form asked: this glob and rule, any severity, for 4 hours.
    let listed = api(&b, "/api/alerts/silences").await;
    let s = &listed["silences"][0];
    assert_eq!(
        (&s["nodes"], &s["rule"], &s["severity"], &s["comment"]),
        (
            &serde_json::json!("alph*"),
            &serde_json::json!(RULE),
            &serde_json::Value::Null,
            &serde_json::json!("memory test on alpha")
        ),
        "{s}"
    );
    let at = |k: &str| {
        chrono::DateTime::parse_from_rfc3339(s[k].as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{k}: {e}: {s}"))
            .timestamp()
    };
    assert!(
        (4 * 3600 - 5..=4 * 3600 + 5).contains(&(at("expires") - at("created"))),
        "{s}"
    );
    // Applied: alpha's alert is marked silenced, beta's (not matched by the glob) is not.
    b.wait(
        "alpha's alert silenced",
        Duration::from_secs(10),
        || async {
            b.text(&format!("{alpha} td.marks"))
                .await
                .contains("silenced")
        },
    )
    .await;
    assert!(!b
        .text(&format!("{} td.marks", current_row("beta")))
        .await
        .contains("silenced"));
    scroll_to(&b, "#silences").await;
    b.screenshot(
        "alerts-silence-light",
        &[
            Shows::Text("#silences-list tr.silence.active", "memory test on alpha"),
            Shows::Text("#silences-list tr.silence.active button.expire", "Expire"),
            Shows::Text("#silences-status", "1 active"),
            Shows::Text("#silence-form-status", "Silence created"),
        ],
    )
    .await;
    // The live card says so too.
    b.client.goto(&url(&serve, "live")).await.expect("goto");
    b.wait(
        "alpha's badge silenced",
        Duration::from_secs(10),
        || async {
            b.text(".card[data-node=alpha] .alert-badge.silenced")
                .await
                .contains("silenced")
        },
    )
    .await;

    // Expire it: listed as expired, the alert no longer silenced.
    b.client.goto(&url(&serve, "alerts")).await.expect("goto");
    b.wait("the active silence", Duration::from_secs(10), || async {
        b.count("#silences-list tr.silence.active button.expire")
            .await
            == 1
    })
    .await;
    click(&b, "#silences-list tr.silence.active button.expire").await;
    b.wait("the silence expired", Duration::from_secs(10), || async {
        b.count("#silences-list tr.silence.expired").await == 1
            && b.count("#silences-list tr.silence.active").await == 0
    })
    .await;
    b.wait(
        "alpha's alert not silenced",
        Duration::from_secs(10),
        || async {
            let marks = b.text(&format!("{alpha} td.marks")).await;
            !marks.is_empty() && !marks.contains("silenced")
        },
    )
    .await;

    // Acknowledge: the button goes, the mark names who.
    click(&b, &format!("{alpha} button.ack")).await;
    b.wait("acknowledged", Duration::from_secs(10), || async {
        b.text(&format!("{alpha} td.marks"))
            .await
            .contains("acknowledged by alice@example.com")
    })
    .await;
    assert_eq!(b.count(&format!("{alpha} button.ack")).await, 0);
    assert!(b
        .text("#alerts-status")
        .await
        .starts_with("Acknowledged memory high on alpha"));
    // Keyboard focus did not fall to the top of the page with the button.
    let focused: String = b
        .client
        .execute("return document.activeElement.id", vec![])
        .await
        .expect("js")
        .as_str()
        .unwrap_or_default()
        .into();
    assert_eq!(focused, "current-h");

    // Send test: it reaches the webhook, and the delivery's outcome is shown beside the button as
    // the backend answered it.
    let before = received.load(Ordering::SeqCst);
    click(&b, "#notifiers tr[data-notifier=ops-hook] button.send-test").await;
    let outcome = "#notifiers tr[data-notifier=ops-hook] .test-outcome";
    b.wait("the test's outcome", Duration::from_secs(20), || async {
        let t = b.text(outcome).await;
        t.starts_with("Delivered after") || t.starts_with("Failed after")
    })
    .await;
    b.wait(
        "the test in the delivery log",
        Duration::from_secs(10),
        || async { b.count("#deliveries tr.delivery[data-kind=test]").await == 1 },
    )
    .await;
    let logged = api(&b, "/api/alerts/deliveries").await;
    let test = logged["deliveries"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["kind"] == "test"))
        .cloned()
        .expect("the test delivery");
    let attempts = test["attempts"].as_u64().unwrap_or(0);
    let said = format!(
        "{} after {attempts} attempt{}: {}",
        if test["ok"] == true {
            "Delivered"
        } else {
            "Failed"
        },
        if attempts == 1 { "" } else { "s" },
        test["answer"].as_str().unwrap_or_default()
    );
    assert_eq!(b.text(outcome).await, said);
    assert_eq!(test["ok"], true, "{test}");
    assert!(
        received.load(Ordering::SeqCst) > before,
        "the test reached the webhook"
    );
    scroll_to(&b, "#deliveries").await;
    b.screenshot(
        "alerts-deliveries-light",
        &[
            Shows::Text("#deliveries tr.delivery.ok[data-kind=test]", "ops-hook"),
            Shows::Text(
                "#deliveries tr.delivery.ok[data-kind=firing]",
                "memory high",
            ),
            Shows::Text("#rules tr[data-rule='memory high']", "mem_pct above 10 %"),
            Shows::Text(outcome, "Delivered after 1 attempt"),
        ],
    )
    .await;
    scroll_to(&b, "#current").await;
    b.screenshot(
        "alerts-acknowledged-light",
        &[
            Shows::Text(
                &format!("{alpha} td.marks"),
                "acknowledged by alice@example.com",
            ),
            Shows::Text("#alerts-status", "Acknowledged memory high on alpha"),
            Shows::Text(
                &format!("{} button.ack", current_row("beta")),
                "Acknowledge",
            ),
        ],
    )
    .await;

    // The live view: a badge in the severity's colour on both cards.
    b.client.goto(&url(&serve, "live")).await.expect("goto");
    b.wait("the badges", Duration::from_secs(10), || async {
        b.count(".card .alert-badge.firing.sev-critical[data-rule='memory high']")
            .await
            == 2
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    b.screenshot(
        "live-alerts-light",
        &[
            Shows::Text(".summary", "2 alerts firing"),
            Shows::Text(
                ".card[data-node=alpha] .alert-badge.firing.sev-critical",
                "memory high",
            ),
            Shows::Text(".card[data-node=alpha] .alert-badge.firing", "acknowledged"),
            Shows::Text(
                ".card[data-node=beta] .alert-badge.firing.sev-critical",
                "memory high",
            ),
            Shows::Drawn(".card .spark canvas", 2),
        ],
    )
    .await;

    // The node page lists its alert; its history charts mark when it fired.
    b.client
        .goto(&url(&serve, "nodes/alpha"))
        .await
        .expect("goto");
    b.wait("the node's alerts", Duration::from_secs(10), || async {
        b.count(&format!(
            ".node-alerts tr[data-rule='{RULE}'][data-state=firing]"
        ))
        .await
            == 1
    })
    .await;
    b.wait(
        "the node's alert marks",
        Duration::from_secs(10),
        || async {
            b.count(&format!(
                ".alert-marks li[data-rule='{RULE}'][data-node=alpha]"
            ))
            .await
                == 1
        },
    )
    .await;
    assert_eq!(
        b.count(".alert-marks li[data-node=beta]").await,
        0,
        "alpha's page marks alpha's alerts only"
    );

    // History, the last two minutes: the span of each node's firing, named under the charts.
    let now = chrono::Utc::now().timestamp();
    b.client
        .goto(&url(
            &serve,
            &format!("history?from={}&to={}", now - 120, now + 10),
        ))
        .await
        .expect("goto");
    b.wait(
        "history with alert marks",
        Duration::from_secs(15),
        || async { b.count(".alert-marks li").await == 2 },
    )
    .await;
    let marks = b.text(".alert-marks").await;
    assert!(
        marks.contains("memory high on alpha (critical)") && marks.contains("still firing"),
        "{marks}"
    );
    // The marks are drawn on the memory chart: its canvas has the critical colour where it fired.
    let red: bool = b
        .client
        .execute(
            "const c = document.querySelector('[data-metric=mem_pct] canvas');\
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;\
             for (let i = 0; i < d.length; i += 4) if (d[i] > 150 && d[i + 1] < 60 && d[i + 2] < 60 && d[i + 3] > 200) return true;\
             return false;",
            vec![],
        )
        .await
        .expect("js")
        .as_bool()
        .unwrap_or(false);
    assert!(red, "the memory chart has a critical (red) mark");
    // Hovering the end of the range (inside both spans) names the alerts there.
    let over = b
        .client
        .find(Locator::Css("[data-metric=mem_pct] .u-over"))
        .await
        .expect("plot area");
    let (_, _, w, _) = over.rectangle().await.expect("rect");
    let hover = MouseActions::new("mouse".into()).then(PointerAction::MoveToElement {
        element: over,
        duration: None,
        x: 0.49 * w,
        y: 0.0,
    });
    b.client.perform_actions(hover).await.expect("hover");
    b.wait("the marks' hover note", Duration::from_secs(5), || async {
        let tip = b.text("[data-metric=mem_pct] .mark-tip").await;
        tip.contains("memory high on alpha (critical): fired")
            && tip.contains("memory high on beta")
    })
    .await;
    b.screenshot(
        "history-alerts-light",
        &[
            Shows::Text("main h1", "History"),
            Shows::Drawn("[data-metric=mem_pct] canvas", 1),
            Shows::Text("[data-metric=mem_pct] .mark-tip", "memory high on alpha"),
        ],
    )
    .await;
    b.close().await;

    // ---- User: the badge on the live card, no Alerts page ----
    let b = Browser::start(false, 1280, 900).await;
    sign_in_in_browser(&b, &url(&serve, "live"), "bob@example.org").await;
    b.wait("live page as user", Duration::from_secs(15), || async {
        b.text("#role").await == "User" && b.count(".card.state-up").await == 2
    })
    .await;
    b.wait(
        "the user sees the badges",
        Duration::from_secs(10),
        || async { b.count(".card .alert-badge.firing.sev-critical").await == 2 },
    )
    .await;
    assert!(
        !displayed(&b, "[data-nav=alerts]").await,
        "a user must not be offered Alerts"
    );
    b.client.goto(&url(&serve, "alerts")).await.expect("goto");
    b.wait("not authorized", Duration::from_secs(10), || async {
        b.text("#message h1").await == "Not authorized"
    })
    .await;
    // And the API refuses what the page would ask.
    b.client
        .goto(&url(&serve, "api/alerts/silences"))
        .await
        .expect("goto");
    b.wait("silences refused", Duration::from_secs(10), || async {
        b.text("body").await.contains("forbidden")
    })
    .await;
    b.close().await;
}
