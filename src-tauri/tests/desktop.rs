//! The desktop app end to end over WebDriver (tauri-driver + WebKitWebDriver under Xvfb), with
//! real Netdata agents and the local OpenID Connect provider: sign-in through the "system browser"
//! (a BROWSER script; the test logs in at the provider), Admin and User views, the history command
//! refused to a User when invoked directly, the history CSV saved, a stopped agent's card turning
//! down, the live-view window, the session kept in the OS keyring across restarts (a real Secret
//! Service: gnome-keyring on a session bus of the test's own), Settings, and remote mode against a
//! `dsmon serve` started here (its session kept under the server's address; memory only without a
//! Secret Service). Writes the screenshots of docs/screenshots (to target/screenshots,
//! or $DSMON_SCREENSHOT_DIR).

mod harness;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fantoccini::Locator;
use serde_json::json;

use harness::browser::{Browser, Shows};
use harness::desktop::{invoke, DesktopHome, Keyring};
use harness::oidc::{dsmon_with_auth, Provider, DESKTOP_CLIENT_ID, DESKTOP_CLIENT_SECRET};
use harness::{Machine, NetdataAgent};

const WAIT: Duration = Duration::from_secs(20);

/// The history CSV's columns (those of `dsmon export`).
const CSV_HEADER: &str = "ts,node,cpu_pct,mem_pct,disk_pct,net_in_kbps,net_out_kbps,error";

/// One desktop app at a time: each is a WebKit browser with its own display, and three at once
/// on a two-core machine make the timings of each unrepresentative.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn desktop_auth(issuer: &str) -> String {
    format!(
        "[auth]\nissuer = \"{issuer}\"\nclient_id = \"{DESKTOP_CLIENT_ID}\"\nclient_secret = \"{DESKTOP_CLIENT_SECRET}\"\nadmins = [\"alice@example.com\"]\nusers = [\"bob@example.org\"]\ntimeout = \"2s\"\n"
    )
}

async fn click(b: &Browser, css: &str) {
    b.wait(&format!("{css} clickable"), WAIT, || async {
        match b.client.find(Locator::Css(css)).await {
            Ok(e) => e.is_displayed().await.unwrap_or(false) && e.click().await.is_ok(),
            Err(_) => false,
        }
    })
    .await;
}

async fn shown(b: &Browser, css: &str) -> bool {
    match b.client.find(Locator::Css(css)).await {
        Ok(e) => e.is_displayed().await.unwrap_or(false),
        Err(_) => false,
    }
}

/// Clicks "Sign in with Google", logs in at the provider as `email` (sign-in number `n` of this
/// app), and waits for the page to show the role (or the refusal).
async fn sign_in(home: &DesktopHome, b: &Browser, n: usize, email: &str) {
    click(b, "#sign-in").await;
    let status = home.log_in(n, email).await;
    assert_eq!(
        status,
        reqwest::StatusCode::OK,
        "the app's loopback listener"
    );
    // The attempt is over when the role shows, or the refusal does with its button usable again
    // (after a refusal the refusal screen is already up while the next attempt runs).
    b.wait(&format!("{email} signed in"), WAIT, || async {
        shown(b, "#role").await
            || (shown(b, "#not-authorized").await && enabled(b, "#sign-in").await)
    })
    .await;
}

async fn enabled(b: &Browser, css: &str) -> bool {
    match b.client.find(Locator::Css(css)).await {
        Ok(e) => e.is_enabled().await.unwrap_or(false),
        Err(_) => false,
    }
}

async fn sign_out(b: &Browser) {
    click(b, "#signout").await;
    b.wait("the sign-in screen", WAIT, || async {
        shown(b, "#sign-in").await
    })
    .await;
}

/// The files under `dir` (recursively) whose bytes contain `text`.
fn files_containing(dir: &Path, text: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let path = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => found.extend(files_containing(&path, text)),
            Ok(t)
                if t.is_file()
                    && std::fs::read(&path)
                        .is_ok_and(|b| b.windows(text.len()).any(|w| w == text)) =>
            {
                found.push(path);
            }
            _ => {}
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_local_mode_sign_in_roles_live_history_and_the_live_window() {
    let _one = ONE_AT_A_TIME.lock().await;
    let provider = Provider::start("http://127.0.0.1/auth/callback");
    let mut agents = [
        NetdataAgent::start("alpha", Machine::STANDARD),
        NetdataAgent::start("beta", Machine::STANDARD),
    ];
    let mut home = DesktopHome::new();
    // The desktop session's Secret Service, where the app keeps its session.
    let keyring = Keyring::start(&home.dir);
    home.bus = Some(keyring.address.clone());
    let nodes: String = agents.iter().map(NetdataAgent::node_toml).collect();
    let config = format!(
        "[storage]\npath = \"{}\"\n[collector]\nlog_interval = \"2s\"\nlive_interval = \"1s\"\ntimeout = \"500ms\"\n\n{nodes}{}",
        home.dir.join("desktop.sqlite3").display(),
        desktop_auth(&provider.issuer)
    );
    let b = home.launch_config(&config).await;

    // Signed out: the sign-in screen, and the commands refuse.
    b.wait("the sign-in screen", WAIT, || async {
        shown(&b, "#sign-in").await
    })
    .await;
    b.screenshot(
        "desktop-sign-in",
        &[
            Shows::Text("main h1", "Sign in"),
            Shows::Text("main", "Your browser opens to sign in with Google"),
            Shows::Text("#sign-in", "Sign in with Google"),
            Shows::Nothing("#role"),
            Shows::Nothing(".card"),
        ],
    )
    .await;
    let e = invoke(&b, "live", json!({}))
        .await
        .expect_err("live while signed out");
    assert_eq!(e["kind"], "not_signed_in", "{e}");

    // Admin: live cards up, then history populated from the app's own log.
    sign_in(&home, &b, 1, "alice@example.com").await;
    assert_eq!(b.content("#role").await, "Admin");
    assert_eq!(b.content("#me").await, "alice@example.com");
    b.wait("two cards up", WAIT, || async {
        b.count(".card.state-up").await == 2
    })
    .await;
    // A few 2 s ticks are logged while the live view runs.
    tokio::time::sleep(Duration::from_secs(5)).await;
    click(&b, "a[data-nav=history]").await;
    b.wait("availability of both nodes", WAIT, || async {
        let rows = b.text(".availability tbody").await;
        rows.contains("alpha") && rows.contains("beta") && rows.contains('%')
    })
    .await;
    assert!(
        b.count(".charts canvas").await >= 4,
        "the history charts are drawn"
    );
    let h = invoke(&b, "history", json!({ "query": { "from": "-1h" } }))
        .await
        .expect("history as Admin");
    let logged = h["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["availability"].as_f64().is_some_and(|a| a > 0.0))
        .count();
    assert_eq!(logged, 2, "{h}");
    click(&b, "button[data-range='1h']").await;
    b.wait("the last hour", WAIT, || async {
        !b.content("#range-label").await.is_empty()
            && b.content(".availability tbody").await.contains('%')
    })
    .await;
    b.screenshot(
        "desktop-history",
        &[
            Shows::Text("main h1", "History"),
            Shows::Text("#role", "Admin"),
            Shows::Count("button.active[data-range='1h']", 1),
            Shows::Text(".status-line", "(logged rows)"),
            Shows::Text(".availability tr[data-node=alpha]", " %"),
            Shows::Text(".availability tr[data-node=beta]", " %"),
            Shows::Drawn("[data-metric=cpu_pct] canvas", 1),
        ],
    )
    .await;

    // The raw rows of the range shown, saved as CSV from the page: the harness gives the path
    // the save dialog would (DSMON_TEST_SAVE_PATH; a native GTK dialog cannot be clicked over
    // WebDriver). The nodes of the availability table, each logged at 40 % CPU as the cards
    // showed, all up (100 % available).
    click(&b, "#save-csv").await;
    b.wait("the CSV saved", WAIT, || async {
        !b.content("#csv-status").await.is_empty()
    })
    .await;
    assert_eq!(
        b.content("#csv-status").await,
        format!("Saved {}", home.saved_csv().display()),
        "{}",
        home.log()
    );
    let csv = std::fs::read_to_string(home.saved_csv()).expect("the saved CSV");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some(CSV_HEADER));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let in_csv: BTreeSet<&str> = rows.iter().map(|r| r[1]).collect();
    let listed: BTreeSet<String> = b
        .client
        .execute(
            "return [...document.querySelectorAll('.availability tbody tr')].map((r) => r.dataset.node);",
            vec![],
        )
        .await
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    assert_eq!(
        in_csv,
        listed.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        "{csv}"
    );
    assert_eq!(in_csv, BTreeSet::from(["alpha", "beta"]), "{csv}");
    for node in ["alpha", "beta"] {
        let mine: Vec<_> = rows.iter().filter(|r| r[1] == node).collect();
        assert!(mine.len() >= 2, "a few ticks of {node}: {csv}");
        assert!(
            mine.iter().all(|r| r.len() == 8
                && r[2].parse::<f64>().is_ok_and(|c| (c - 40.0).abs() < 0.05)
                && r[7].is_empty()),
            "{csv}"
        );
    }

    // The live-view window: only the node cards, from the View menu's command.
    click(&b, "a[data-nav=live]").await;
    let main = b.client.window().await.expect("main window");
    click(&b, "#open-live").await;
    b.wait("a second window", WAIT, || async {
        b.client.windows().await.map(|w| w.len()).unwrap_or(0) == 2
    })
    .await;
    let live = b
        .client
        .windows()
        .await
        .expect("windows")
        .into_iter()
        .find(|w| *w != main)
        .expect("the live window");
    b.client.switch_to_window(live).await.expect("switch");
    b.wait("cards in the live window", WAIT, || async {
        b.count(".card.state-up").await == 2
    })
    .await;
    assert!(
        !shown(&b, "a[data-nav=history]").await,
        "no navigation in the live window"
    );
    b.screenshot_area(
        "desktop-live-window",
        Some("460x640+0+0"),
        &[
            Shows::Text(".summary", "2 up, 0 down, 2 nodes"),
            Shows::Count(".card.state-up", 2),
            Shows::Text(".card[data-node=alpha] .values", "40.0 %"),
            Shows::Fits(".card"),
            Shows::Nothing("header.top nav"),
            Shows::Nothing("main h1"),
        ],
    )
    .await;
    // Its size is saved as soon as it changes (tauri-plugin-window-state's file; restored below).
    b.client
        .set_window_size(500, 600)
        .await
        .expect("resize the live window");
    b.wait("the live window's size saved", WAIT, || async {
        let live = &home.window_state()["live"];
        live["width"] == 500 && live["height"] == 600
    })
    .await;
    // The page itself has no use for the plugin's commands, and the capability grants none.
    let e = invoke(
        &b,
        "plugin:window-state|save_window_state",
        json!({ "flags": 3 }),
    )
    .await
    .expect_err("the window-state plugin's commands from the page");
    assert!(e.to_string().contains("not allowed"), "{e}");
    // Its capability allows only the live page's commands: the Admin's other commands are refused
    // by Tauri's ACL in this window (before the command and its role check run).
    for (cmd, args) in [
        ("users", json!({})),
        ("history", json!({ "query": { "from": "-1h" } })),
        ("history_csv", json!({ "query": { "from": "-1h" } })),
        ("audit", json!({ "offset": 0, "limit": 10 })),
        ("settings_get", json!({})),
    ] {
        let e = invoke(&b, cmd, args)
            .await
            .expect_err("an Admin command from the live window");
        assert!(e.to_string().contains("not allowed"), "{cmd}: {e}");
    }
    let me = invoke(&b, "me", json!({}))
        .await
        .expect("me in the live window");
    assert_eq!(me["role"], "admin", "{me}");
    invoke(&b, "live", json!({}))
        .await
        .expect("live in the live window");

    // A stopped agent turns its card down (here in the live window).
    agents[1].kill();
    b.wait("beta down", WAIT, || async {
        b.count(".card[data-node=beta].state-down").await == 1
    })
    .await;
    // Out of the way, or it would cover the main window in the screenshots below (closing its
    // web view through WebDriver leaves its empty window on the display); moved only, at the size
    // saved above, which the restart below checks.
    b.client
        .set_window_rect(1600, 0, 500, 600)
        .await
        .expect("move the live window off the display");
    b.client
        .close_window()
        .await
        .expect("close the live window");
    b.client.switch_to_window(main).await.expect("back");
    // The main window's capability keeps them.
    let users = invoke(&b, "users", json!({}))
        .await
        .expect("users from the main window");
    assert!(users.to_string().contains("alice@example.com"), "{users}");
    invoke(&b, "history", json!({ "query": { "from": "-1h" } }))
        .await
        .expect("history from the main window");

    // User: the live view only; the history and users commands are refused by the backend.
    sign_out(&b).await;
    sign_in(&home, &b, 2, "bob@example.org").await;
    assert_eq!(b.content("#role").await, "User");
    b.wait("alpha up for bob", WAIT, || async {
        b.count(".card[data-node=alpha].state-up").await == 1
    })
    .await;
    assert!(!shown(&b, "a[data-nav=history]").await);
    let e = invoke(&b, "history", json!({ "query": {} }))
        .await
        .expect_err("history as User");
    assert_eq!(e["kind"], "forbidden", "{e}");
    let e = invoke(&b, "users", json!({}))
        .await
        .expect_err("users as User");
    assert_eq!(e["kind"], "forbidden", "{e}");
    std::fs::remove_file(home.saved_csv()).expect("remove the Admin's CSV");
    let e = invoke(&b, "history_csv", json!({ "query": {} }))
        .await
        .expect_err("the history CSV as User");
    assert_eq!(e["kind"], "forbidden", "{e}");
    assert!(!home.saved_csv().exists(), "nothing written for a User");
    b.screenshot(
        "desktop-user",
        &[
            Shows::Text("main h1", "Live"),
            Shows::Text("#me", "bob@example.org"),
            Shows::Text("#role", "User"),
            Shows::Nothing("a[data-nav=history]"),
            Shows::Text(".summary", "1 up, 1 down (beta), 2 nodes"),
            Shows::Text(".card[data-node=alpha].state-up .values", "40.0 %"),
            Shows::Text(".card[data-node=beta].state-down .status", "down since"),
        ],
    )
    .await;

    // Anyone else: not authorized, and no session.
    sign_out(&b).await;
    sign_in(&home, &b, 3, "stranger@other.org").await;
    assert!(shown(&b, "#not-authorized").await);
    let e = invoke(&b, "live", json!({})).await.expect_err("stranger");
    assert_eq!(e["kind"], "not_signed_in", "{e}");

    // The app's own audit log recorded all of it (read by the Admin).
    sign_in(&home, &b, 4, "alice@example.com").await;
    let a = invoke(&b, "audit", json!({ "offset": 0, "limit": 500 }))
        .await
        .expect("audit");
    let entries = a["entries"].to_string();
    assert!(
        entries.contains("access_denied") && entries.contains("bob@example.org"),
        "{entries}"
    );
    assert!(entries.contains("stranger@other.org"), "{entries}");
    assert!(entries.contains("desktop app"), "{entries}");
    b.close().await;
    drop(b);

    // The session is kept in the keyring (encrypted by the Secret Service), in no file: not in
    // the app's config or data directories, its log, its web view's profile or its database.
    let kept = keyring.app_entries();
    let token = kept
        .lines()
        .find_map(|l| l.strip_prefix("secret = "))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no session in the keyring: {kept}\n{}", home.log()));
    assert!(kept.contains("attribute.username = local "), "{kept}");
    assert_eq!(
        files_containing(&home.dir, token.as_bytes()),
        Vec::<PathBuf>::new(),
        "the session in a file"
    );

    // Restarted, alice is still signed in (no new sign-in in the browser); signing out ends it
    // and empties the keyring.
    let config = home.config();
    let b = home
        .launch(&["--config", config.to_str().expect("utf-8")])
        .await;
    b.wait("alice still signed in", WAIT, || async {
        b.content("#me").await == "alice@example.com"
    })
    .await;
    assert_eq!(b.content("#role").await, "Admin");
    let opened = std::fs::read_to_string(&home.urls).unwrap_or_default();
    assert_eq!(opened.lines().count(), 4, "no new sign-in: {opened}");
    sign_out(&b).await;
    let kept = keyring.app_entries();
    assert!(!kept.contains("secret = "), "signed out: {kept}");
    b.close().await;
    drop(b);

    // The live window's size is restored: the app started with `--live` opens it as it was left,
    // signed out.
    let b = home
        .launch(&["--config", config.to_str().expect("utf-8"), "--live"])
        .await;
    b.wait("the live window at its saved size", WAIT, || async {
        b.client
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await
            .is_ok_and(|v| v == json!([500, 600]))
    })
    .await;
    b.wait("signed out after the restart", WAIT, || async {
        shown(&b, "#sign-in").await
    })
    .await;
    let e = invoke(&b, "me", json!({}))
        .await
        .expect_err("me after signing out");
    assert_eq!(e["kind"], "not_signed_in", "{e}");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_remote_mode_shows_the_servers_data_under_its_roles() {
    let _one = ONE_AT_A_TIME.lock().await;
    let provider = Provider::start("http://127.0.0.1/auth/callback");
    let _agent = NetdataAgent::start("gamma", Machine::STANDARD);
    let (_d, serve) = dsmon_with_auth(
        &format!(
            "[collector]\nlog_interval = \"2s\"\nlive_interval = \"1s\"\ntimeout = \"500ms\"\n\n{}",
            _agent.node_toml()
        ),
        &provider.issuer,
    );
    let mut home = DesktopHome::new();
    tokio::time::sleep(Duration::from_secs(4)).await; // the server logs a few ticks
                                                      // The desktop's own admin list is irrelevant here: the server decides.
    let config = format!(
        "[storage]\npath = \"{}\"\n[desktop]\nmode = \"remote\"\nserver_url = \"http://127.0.0.1:{}\"\n\n{}",
        home.dir.join("unused.sqlite3").display(),
        serve.port,
        desktop_auth(&provider.issuer).replace("alice@example.com", "nobody@example.com")
    );
    // No session bus, so no Secret Service: the session is kept in memory only (below).
    let b = home.launch_config(&config).await;
    b.wait("the sign-in screen", WAIT, || async {
        shown(&b, "#sign-in").await
    })
    .await;

    sign_in(&home, &b, 1, "alice@example.com").await;
    assert_eq!(b.content("#role").await, "Admin", "the server's role");
    assert!(b.content("#remote").await.contains(&serve.port.to_string()));
    b.wait("gamma up through the server's stream", WAIT, || async {
        b.count(".card[data-node=gamma].state-up").await == 1
    })
    .await;
    click(&b, "a[data-nav=history]").await;
    b.wait("the server's history", WAIT, || async {
        let rows = b.text(".availability tbody").await;
        rows.contains("gamma") && rows.contains('%')
    })
    .await;
    let server = format!("server http://127.0.0.1:{}", serve.port);
    b.screenshot(
        "desktop-remote",
        &[
            Shows::Text("main h1", "History"),
            Shows::Text("#remote", &server),
            Shows::Text("#role", "Admin"),
            Shows::Text(".availability tr[data-node=gamma]", " %"),
            Shows::Drawn("[data-metric=cpu_pct] canvas", 1),
        ],
    )
    .await;
    // The history CSV is the server's /api/history.csv (its Admin check), saved here.
    let saved = invoke(&b, "history_csv", json!({ "query": { "from": "-1h" } }))
        .await
        .expect("the CSV as the server's Admin");
    assert_eq!(saved, json!(home.saved_csv().display().to_string()));
    let csv = std::fs::read_to_string(home.saved_csv()).expect("the saved CSV");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some(CSV_HEADER));
    let rows: Vec<&str> = lines.collect();
    assert!(
        rows.len() >= 2 && rows.iter().all(|l| l.split(',').nth(1) == Some("gamma")),
        "{csv}"
    );

    sign_out(&b).await;
    sign_in(&home, &b, 2, "bob@example.org").await;
    assert_eq!(b.content("#role").await, "User");
    let e = invoke(&b, "history", json!({ "query": {} }))
        .await
        .expect_err("history as User");
    assert_eq!(e["kind"], "forbidden", "{e}");
    let e = invoke(&b, "history_csv", json!({ "query": {} }))
        .await
        .expect_err("the history CSV as User");
    assert_eq!(e["kind"], "forbidden", "{e}");
    b.close().await;
    drop(b);
    // Without a keyring the app said so once, and kept the session in memory only: with a
    // keyring now, the next start is signed out (nothing was kept anywhere else).
    assert_eq!(
        home.log().matches("no usable OS keyring").count(),
        1,
        "{}",
        home.log()
    );
    let keyring = Keyring::start(&home.dir);
    home.bus = Some(keyring.address.clone());
    let config = home.config();
    let args = ["--config", config.to_str().expect("utf-8")];
    let b = home.launch(&args).await;
    b.wait("signed out after the restart", WAIT, || async {
        shown(&b, "#sign-in").await
    })
    .await;

    // With it, the server's session is kept under the server's address and survives a restart.
    sign_in(&home, &b, 3, "bob@example.org").await;
    b.close().await;
    drop(b);
    let kept = keyring.app_entries();
    assert!(
        kept.contains(&format!(
            "attribute.username = remote http://127.0.0.1:{}/",
            serve.port
        )),
        "{kept}"
    );
    let token = kept
        .lines()
        .find_map(|l| l.strip_prefix("secret = "))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no session in the keyring: {kept}"));
    let b = home.launch(&args).await;
    b.wait("bob still signed in", WAIT, || async {
        b.content("#me").await == "bob@example.org"
    })
    .await;
    assert_eq!(b.content("#role").await, "User", "the server's role");
    b.close().await;
    drop(b);

    // The server ends that session (signed out elsewhere): the next start finds it dead there
    // and forgets it, in the keyring too.
    let out = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/auth/logout", serve.port))
        .bearer_auth(&token)
        .send()
        .await
        .expect("logout at the server");
    assert!(out.status().is_success(), "{}", out.status());
    let b = home.launch(&args).await;
    b.wait("signed out after the server ended it", WAIT, || async {
        shown(&b, "#sign-in").await
    })
    .await;
    let kept = keyring.app_entries();
    assert!(!kept.contains("secret = "), "forgotten: {kept}");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_settings_are_validated_saved_and_applied() {
    let _one = ONE_AT_A_TIME.lock().await;
    let agent = NetdataAgent::start("delta", Machine::STANDARD);
    let home = DesktopHome::new();
    let config = format!(
        "# the admin's workstation\n[storage]\npath = \"{}\"\n[collector]\nlog_interval = \"10m\"\nlive_interval = \"1s\"\ntimeout = \"500ms\"\n",
        home.dir.join("desktop.sqlite3").display()
    );
    let b = home.launch_config(&config).await;
    // Without [auth]: a local tool, and it says so.
    b.wait("the local-mode banner", WAIT, || async {
        shown(&b, "#banner").await
    })
    .await;
    click(&b, "a[data-nav=settings]").await;
    click(&b, "#add-node").await;
    let name = b
        .client
        .find(Locator::Css("#nodes tr:last-child .node-name"))
        .await
        .expect("name");
    name.send_keys("delta").await.expect("type");
    let url = b
        .client
        .find(Locator::Css("#nodes tr:last-child .node-url"))
        .await
        .expect("url");
    url.send_keys("not a url").await.expect("type");
    click(&b, "#save-settings").await;
    b.wait("the validation error", WAIT, || async {
        b.content("#settings-status").await.contains("nodes[0].url")
    })
    .await;
    assert!(!std::fs::read_to_string(home.config())
        .expect("read")
        .contains("delta"));

    url.clear().await.expect("clear");
    url.send_keys(&agent.url()).await.expect("type");
    click(&b, "#save-settings").await;
    let saved = b
        .wait("saved", WAIT, || async {
            let t = b.content("#settings-status").await;
            t.starts_with("Saved") || t.contains("rror") || t.contains(':')
        })
        .await;
    let _ = saved;
    let status = b.content("#settings-status").await;
    assert!(status.starts_with("Saved"), "{status}");
    let text = std::fs::read_to_string(home.config()).expect("read");
    assert!(
        text.contains("# the admin's workstation") && text.contains("name = \"delta\""),
        "{text}"
    );
    // The page as it opens (saving scrolled it down to the button).
    b.client
        .execute("window.scrollTo(0, 0);", vec![])
        .await
        .expect("scroll");
    b.screenshot(
        "desktop-settings",
        &[
            Shows::Text("main h1", "Settings"),
            Shows::Text("#banner", "Local mode"),
            Shows::Count("a.active[data-nav=settings]", 1),
            Shows::Value("#nodes tr:last-child .node-name", "delta"),
            Shows::Value("#nodes tr:last-child .node-url", &agent.url()),
        ],
    )
    .await;

    // The app runs on the new settings at once: the new node's card comes up.
    click(&b, "a[data-nav=live]").await;
    b.wait("delta up", WAIT, || async {
        b.count(".card[data-node=delta].state-up").await == 1
    })
    .await;

    // Preferences are kept with the app (tauri-plugin-store), saved at once.
    invoke(&b, "prefs_set", json!({ "key": "theme", "value": "dark" }))
        .await
        .expect("theme");
    let e = invoke(
        &b,
        "prefs_set",
        json!({ "key": "theme", "value": "purple" }),
    )
    .await
    .expect_err("bad theme");
    assert_eq!(e["kind"], "bad_request", "{e}");
    let prefs = std::fs::read_to_string(home.dir.join("data/io.github.dsmon/prefs.json"))
        .unwrap_or_else(|e| panic!("prefs.json: {e}\n{}", home.log()));
    assert!(prefs.contains("\"dark\""), "{prefs}");
    b.close().await;
}

/// The desktop app's alerts (local mode): the same use cases as the server through its commands,
/// the Alerts page, and the default `node down` rule (no `[alerts]` configured) shown as a real
/// desktop notification — `dunst` on a session bus, `dbus-monitor` recording the Notify call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_alerts_notify_on_the_desktop_and_show_the_alerts_page() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut agent = NetdataAgent::start("echo", Machine::STANDARD);
    let mut home = DesktopHome::new();
    let notices = harness::desktop::Notices::start(&home.dir);
    home.bus = Some(notices.address.clone());
    let config = format!(
        "[storage]\npath = \"{}\"\n[collector]\nlog_interval = \"10m\"\nlive_interval = \"1s\"\ntimeout = \"500ms\"\n{}",
        home.dir.join("desktop.sqlite3").display(),
        agent.node_toml()
    );
    let b = home.launch_config(&config).await;
    b.wait("the node up", WAIT, || async {
        invoke(&b, "live", json!({}))
            .await
            .is_ok_and(|v| v["nodes"][0]["state"] == "up")
    })
    .await;
    let rules = invoke(&b, "alert_config", json!({}))
        .await
        .expect("alert_config");
    assert_eq!(
        rules["rules"][0]["name"], "node down",
        "the default rule: {rules}"
    );
    assert_eq!(rules["notifiers"][0]["type"], "desktop", "{rules}");
    invoke(
        &b,
        "prefs_set",
        json!({ "key": "notifications", "value": true }),
    )
    .await
    .expect("notifications on");

    agent.kill();
    b.wait("node down firing", Duration::from_secs(30), || async {
        invoke(&b, "alerts", json!({})).await.is_ok_and(|v| {
            v["alerts"][0]["rule"] == "node down" && v["alerts"][0]["state"] == "firing"
        })
    })
    .await;
    b.wait("the Notify call on the session bus", WAIT, || async {
        notices.calls().contains("FIRING node down on echo")
    })
    .await;
    let log = invoke(&b, "alert_deliveries", json!({ "limit": 10 }))
        .await
        .expect("deliveries");
    let d = &log["deliveries"][0];
    assert_eq!(
        (d["type"].as_str(), d["ok"].as_bool()),
        (Some("desktop"), Some(true)),
        "{log}"
    );

    // The Alerts page in the app, through the same commands.
    click(&b, "a[data-nav=alerts]").await;
    b.wait("the firing alert on the Alerts page", WAIT, || async {
        b.content("main").await.contains("node down")
    })
    .await;
    b.screenshot(
        "desktop-alerts",
        &[
            Shows::Text("main", "node down"),
            Shows::Text("main", "echo"),
        ],
    )
    .await;

    agent.restart();
    b.wait(
        "resolved on the desktop",
        Duration::from_secs(30),
        || async { notices.calls().contains("RESOLVED node down on echo") },
    )
    .await;
    b.close().await;
}
