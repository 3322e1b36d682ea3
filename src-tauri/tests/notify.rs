//! Delivery of alert notifications to real receivers:
//! - email to a real SMTP server (aiosmtpd: STARTTLS with a throw-away CA, AUTH, implicit TLS);
//! - Alertmanager: dsmon posts to a real Prometheus Alertmanager, whose own webhook delivers to
//!   a receiver here — the whole chain, firing and resolved;
//! - the generic webhook, checked with its HMAC signature at a receiver here;
//! - Slack, Discord, Teams and ntfy: no real servers exist on this machine (they are hosted
//!   services), so their request formats are checked at a receiver here;
//! - a notifier that is down or answers 503: retried with doubling pauses, logged as failed, while
//!   another notifier delivers at once.
//!
//! One SMTP server, one Alertmanager and one receiver serve every test of this file (started on
//! first use, stopped at exit). Tests tell their deliveries apart by rule name and path.

mod harness;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use dsmon_alerts::model::{Direction, Metric, Severity};
use dsmon_alerts::notify::{delivery_counters, Notifiers};
use dsmon_alerts::{NoticeItem, NoticeKind, Notification};
use dsmon_config::alerts::{NotifierConfig, NotifierKind, StartTls};
use dsmon_config::Secret;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use url::Url;

use harness::alertmanager::Alertmanager;
use harness::receiver::{Hit, Receiver};
use harness::smtp::SmtpServer;

const SMTP_USER: &str = "alerts@example.com";
const SMTP_PASSWORD: &str = "smtp-Pa55word-not-for-logs";
const WEBHOOK_SECRET: &str = "whsec-shared-between-dsmon-and-the-receiver";
const NTFY_TOKEN: &str = "tk_ntfytokennotforlogs";
const SLACK_PATH: &str = "/slack/services/T0000/B0000/SLACKSECRETPATH";
const WAIT: Duration = Duration::from_secs(20);

struct Shared {
    smtp: SmtpServer,
    am: Alertmanager,
    rx: Receiver,
}

static SHARED: OnceLock<Shared> = OnceLock::new();
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static CLEANUP: Mutex<Vec<(u32, PathBuf)>> = Mutex::new(Vec::new());

/// The shared SMTP server, Alertmanager and receiver; started by the first test that asks.
fn shared() -> &'static Shared {
    SHARED.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        capture_logs();
        let rx = Receiver::start(respond);
        let smtp = SmtpServer::start(SMTP_USER, SMTP_PASSWORD);
        let am = Alertmanager::start(&rx.url("/am"));
        if let Ok(mut c) = CLEANUP.lock() {
            for (pid, dir) in [(smtp.pid(), &smtp.dir), (am.pid(), &am.dir)] {
                if let Some(pid) = pid {
                    c.push((pid, dir.clone()));
                }
            }
        }
        // Statics are never dropped: stop the servers when the test process exits.
        // SAFETY: registers a plain extern "C" function without arguments.
        unsafe {
            libc::atexit(stop_servers);
        }
        Shared { smtp, am, rx }
    })
}

extern "C" fn stop_servers() {
    if let Ok(c) = CLEANUP.lock() {
        for (pid, dir) in c.iter() {
            // SAFETY: kill(2) and waitpid(2) on children this process started.
            unsafe {
                libc::kill(*pid as i32, libc::SIGKILL);
                libc::waitpid(*pid as i32, std::ptr::null_mut(), 0);
            }
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// How the receiver answers, by path.
fn respond(hit: &Hit, nth: usize) -> (u16, String) {
    match hit.path.as_str() {
        // The webhook receiver checks the signature with the shared secret.
        p if p.starts_with("/hook") => {
            let want = {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).expect("hmac key");
                mac.update(&hit.body);
                let tag = mac.finalize().into_bytes();
                let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
                format!("sha256={hex}")
            };
            if hit.header("x-dsmon-signature") == Some(want.as_str()) {
                (200, "ok".into())
            } else {
                (401, "bad signature".into())
            }
        }
        // Down for the first two tries.
        "/flaky" if nth <= 2 => (503, "<html>upstream busy, try later</html>".into()),
        "/always503" => (503, "maintenance".into()),
        _ => (200, "ok".into()),
    }
}

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut l) = LOG.lock() {
            l.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("dsmon_alerts=debug")
        .with_ansi(false)
        .with_writer(|| LogWriter)
        .try_init();
}

fn log_text() -> String {
    LOG.lock()
        .map(|l| String::from_utf8_lossy(&l).into_owned())
        .unwrap_or_default()
}

fn now() -> i64 {
    harness::unix_now() as i64
}

/// A firing `rule` (cpu_pct above 90) on `node` at 93.2, with its page in dsmon.
fn firing(rule: &str, node: &str, severity: Severity) -> Notification {
    let t = now();
    Notification {
        kind: NoticeKind::Firing,
        rule: rule.into(),
        metric: Metric::CpuPct,
        severity,
        direction: Direction::Above,
        threshold: 90.0,
        items: vec![NoticeItem {
            node: node.into(),
            value: Some(93.2),
            since: t - 300,
            ended: None,
            url: Some(format!("https://dsmon.example.com/nodes/{node}")),
        }],
        at: t,
        public_url: Some("https://dsmon.example.com/".into()),
    }
}

fn resolved(n: &Notification) -> Notification {
    let mut r = n.clone();
    r.kind = NoticeKind::Resolved;
    r.at = now();
    for i in &mut r.items {
        i.value = Some(71.5);
        i.ended = Some(r.at);
    }
    r
}

fn notifier(name: &str, kind: NotifierKind, ca_file: Option<PathBuf>) -> NotifierConfig {
    NotifierConfig {
        name: name.into(),
        kind,
        ca_file,
    }
}

fn url(s: &str) -> Url {
    Url::parse(s).expect("url")
}

fn email(name: &str, s: &SmtpServer, url_text: &str, starttls: StartTls) -> NotifierConfig {
    notifier(
        name,
        NotifierKind::Email {
            url: url(url_text),
            starttls,
            from: "dsmon@example.com".into(),
            to: vec!["ops@example.com".into(), "oncall@example.com".into()],
            username: Some(s.user.clone()),
            password: Some(Secret::new(s.password.clone())),
        },
        Some(s.ca.clone()),
    )
}

fn assert_no_secrets(what: &str, text: &str) {
    for s in [SMTP_PASSWORD, WEBHOOK_SECRET, NTFY_TOKEN, "SLACKSECRETPATH"] {
        assert!(!text.contains(s), "{what} shows a secret ({s}): {text}");
    }
}

#[tokio::test]
async fn email_firing_and_resolved_over_starttls_with_auth() {
    let s = shared();
    let cfg = email(
        "mail",
        &s.smtp,
        &format!("smtp://127.0.0.1:{}", s.smtp.ports.starttls),
        StartTls::Opportunistic,
    );
    let n = Notifiers::new(&[cfg], 3, Duration::from_millis(200)).expect("notifiers");
    let fire = firing("cpu mail", "web-1", Severity::Warning);

    let o = n.deliver("mail", &fire).await;
    assert!(o.ok, "{o:?}");
    assert_eq!(o.attempts, 1);
    assert!(o.answer.starts_with("250"), "{}", o.answer);
    let m = s.smtp.wait_for_subject("FIRING cpu mail on web-1", WAIT);
    assert_eq!(
        m["subject"],
        "[dsmon] FIRING cpu mail on web-1: cpu_pct 93.2 (above 90)"
    );
    // STARTTLS was offered and used (opportunistic), then AUTH with the configured user.
    assert_eq!(m["listener"], "starttls");
    assert_eq!(m["tls"], true);
    assert_eq!(m["starttls"], true);
    assert_eq!(m["auth_user"], SMTP_USER);
    assert!(
        matches!(m["auth_mechanism"].as_str(), Some("PLAIN" | "LOGIN")),
        "{m}"
    );
    assert_eq!(m["mail_from"], "dsmon@example.com");
    assert_eq!(
        m["rcpt_tos"],
        serde_json::json!(["ops@example.com", "oncall@example.com"])
    );
    assert_eq!(m["content_type"], "multipart/alternative");
    let plain = m["plain"].as_str().unwrap_or_default();
    assert!(
        plain.starts_with("FIRING cpu mail (warning), 1 node\nCondition: cpu_pct above 90\n"),
        "{plain}"
    );
    assert!(
        plain.contains("web-1: cpu_pct 93.2 (above 90), since "),
        "{plain}"
    );
    assert!(
        plain.contains("https://dsmon.example.com/nodes/web-1"),
        "{plain}"
    );
    let html = m["html"].as_str().unwrap_or_default();
    assert!(
        html.contains("<h2 style=\"color: #c98a00\">FIRING cpu mail</h2>"),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"https://dsmon.example.com/nodes/web-1\">web-1</a>"),
        "{html}"
    );

    let o = n.deliver("mail", &resolved(&fire)).await;
    assert!(o.ok, "{o:?}");
    let m = s.smtp.wait_for_subject("RESOLVED cpu mail on web-1", WAIT);
    assert_eq!(
        m["subject"],
        "[dsmon] RESOLVED cpu mail on web-1: cpu_pct 71.5 (above 90)"
    );
    assert_eq!(m["starttls"], true);
    assert_eq!(m["auth_user"], SMTP_USER);
    let plain = m["plain"].as_str().unwrap_or_default();
    assert!(plain.starts_with("RESOLVED cpu mail (warning)"), "{plain}");
    assert!(plain.contains(", resolved "), "{plain}");
    assert!(m["html"]
        .as_str()
        .unwrap_or_default()
        .contains("RESOLVED cpu mail"));
    assert_no_secrets("the log", &log_text());
}

#[tokio::test]
async fn email_group_over_implicit_tls_lists_every_node_and_escapes_html() {
    let s = shared();
    let cfg = email(
        "smtps",
        &s.smtp,
        &format!("smtps://127.0.0.1:{}", s.smtp.ports.implicit),
        StartTls::Opportunistic,
    );
    let n = Notifiers::new(&[cfg], 3, Duration::from_millis(200)).expect("notifiers");
    let mut g = firing("disk <full> & \"soon\"", "db-1", Severity::Critical);
    g.items = (1..=7)
        .map(|i| NoticeItem {
            node: format!("db-{i}"),
            value: Some(95.0 + f64::from(i)),
            since: now() - 60,
            ended: None,
            url: None,
        })
        .collect();
    let o = n.deliver("smtps", &g).await;
    assert!(o.ok, "{o:?}");
    let m = s.smtp.wait_for_subject("on 7 nodes", WAIT);
    assert_eq!(
        m["subject"],
        "[dsmon] FIRING disk <full> & \"soon\" on 7 nodes: db-1, db-2, db-3, db-4, db-5, db-6, db-7"
    );
    assert_eq!(m["listener"], "implicit");
    assert_eq!(m["tls"], true);
    assert_eq!(m["starttls"], false);
    assert_eq!(m["auth_user"], SMTP_USER);
    let plain = m["plain"].as_str().unwrap_or_default();
    let html = m["html"].as_str().unwrap_or_default();
    for i in 1..=7 {
        assert!(
            plain.contains(&format!("db-{i}: cpu_pct {}.0", 95 + i)),
            "{plain}"
        );
        assert!(html.contains(&format!("<tr><td>db-{i}</td>")), "{html}");
    }
    assert!(
        html.contains("FIRING disk &lt;full&gt; &amp; &quot;soon&quot;</h2>"),
        "{html}"
    );
    assert!(!html.contains("<full>"), "{html}");
}

#[tokio::test]
async fn email_starttls_required_is_refused_without_it_and_bad_auth_fails() {
    let s = shared();
    let required = email(
        "must-tls",
        &s.smtp,
        &format!("smtp://127.0.0.1:{}", s.smtp.ports.plain),
        StartTls::Required,
    );
    let mut wrong = email(
        "wrong-password",
        &s.smtp,
        &format!("smtp://127.0.0.1:{}", s.smtp.ports.starttls),
        StartTls::Required,
    );
    if let NotifierKind::Email { password, .. } = &mut wrong.kind {
        *password = Some(Secret::new("wrong-Pa55word-also-secret".into()));
    }
    let n = Notifiers::new(&[required, wrong], 3, Duration::from_millis(200)).expect("notifiers");

    let o = n
        .deliver(
            "must-tls",
            &firing("cpu plaintext", "web-2", Severity::Warning),
        )
        .await;
    assert!(!o.ok, "{o:?}");
    // Refused for good: retrying cannot make the server offer STARTTLS.
    assert_eq!(o.attempts, 1, "{o:?}");
    assert!(
        o.answer.contains("STARTTLS is not supported"),
        "{}",
        o.answer
    );

    let o = n
        .deliver(
            "wrong-password",
            &firing("cpu badauth", "web-2", Severity::Warning),
        )
        .await;
    assert!(!o.ok, "{o:?}");
    assert_eq!(o.attempts, 1, "{o:?}");
    assert!(o.answer.contains("535"), "{}", o.answer);
    assert!(!o.answer.contains("wrong-Pa55word"), "{}", o.answer);

    assert!(
        !s.smtp.messages().iter().any(|m| {
            let subj = m["subject"].as_str().unwrap_or_default();
            subj.contains("cpu plaintext") || subj.contains("cpu badauth")
        }),
        "a refused message arrived"
    );
    let log = log_text();
    assert!(!log.contains("wrong-Pa55word"), "{log}");
}

#[tokio::test]
async fn alertmanager_delivers_firing_and_resolved_through_its_webhook() {
    let s = shared();
    let cfg = notifier(
        "am",
        NotifierKind::Alertmanager {
            url: url(&s.am.url()),
        },
        None,
    );
    let n = Notifiers::new(&[cfg], 3, Duration::from_millis(200)).expect("notifiers");
    let fire = firing("cpu am", "web-3", Severity::Critical);
    let o = n.deliver("am", &fire).await;
    assert!(o.ok, "{o:?}\n{}", s.am.log());
    assert_eq!(o.answer, "HTTP 200");

    let is = |status: &'static str| {
        move |h: &Hit| {
            let v: serde_json::Value = serde_json::from_slice(&h.body).unwrap_or_default();
            v["status"] == status && v["alerts"][0]["labels"]["alertname"] == "cpu am"
        }
    };
    let hit = s.rx.wait_for("/am", WAIT, is("firing"));
    let body = hit.json();
    let a = &body["alerts"][0];
    assert_eq!(a["status"], "firing");
    assert_eq!(a["labels"]["node"], "web-3");
    assert_eq!(a["labels"]["severity"], "critical");
    assert_eq!(a["labels"]["metric"], "cpu_pct");
    assert_eq!(a["labels"]["source"], "dsmon");
    assert_eq!(
        a["annotations"]["summary"],
        "FIRING cpu am on web-3: cpu_pct 93.2 (above 90)"
    );
    assert_eq!(a["annotations"]["value"], "93.2");
    assert_eq!(a["generatorURL"], "https://dsmon.example.com/nodes/web-3");
    assert_eq!(
        a["startsAt"],
        harness::rfc3339(fire.items[0].since).as_str()
    );

    let gone = resolved(&fire);
    let o = n.deliver("am", &gone).await;
    assert!(o.ok, "{o:?}");
    let hit = s.rx.wait_for("/am", WAIT, is("resolved"));
    let a = &hit.json()["alerts"][0];
    assert_eq!(a["status"], "resolved");
    assert_eq!(a["labels"]["node"], "web-3");
    assert_eq!(a["endsAt"], harness::rfc3339(gone.at).as_str());
}

#[tokio::test]
async fn webhook_is_signed_and_a_wrong_secret_is_refused() {
    let s = shared();
    let good = notifier(
        "hook",
        NotifierKind::Webhook {
            url: url(&s.rx.url("/hook/good")),
            secret: Some(Secret::new(WEBHOOK_SECRET.into())),
        },
        None,
    );
    let bad = notifier(
        "hook-wrong",
        NotifierKind::Webhook {
            url: url(&s.rx.url("/hook/wrong")),
            secret: Some(Secret::new("not-the-shared-secret".into())),
        },
        None,
    );
    let n = Notifiers::new(&[good, bad], 3, Duration::from_millis(200)).expect("notifiers");
    let fire = firing("cpu hook", "web-4", Severity::Warning);
    let o = n.deliver("hook", &fire).await;
    assert!(o.ok, "{o:?}");
    assert_eq!((o.attempts, o.answer.as_str()), (1, "HTTP 200"));
    let hit = s.rx.hits("/hook/good").pop().expect("a request");
    assert_eq!(hit.method, "POST");
    assert_eq!(hit.status, 200);
    assert_eq!(hit.header("content-type"), Some("application/json"));
    let p = hit.json();
    assert_eq!(p["rule"], "cpu hook");
    assert_eq!(p["node"], "web-4");
    assert_eq!(p["state"], "firing");
    assert_eq!(p["kind"], "firing");
    assert_eq!(p["severity"], "warning");
    assert_eq!(p["metric"], "cpu_pct");
    assert_eq!(p["value"], 93.2);
    assert_eq!(p["threshold"], 90.0);
    assert_eq!(p["since"], harness::rfc3339(fire.items[0].since).as_str());
    assert_eq!(p["url"], "https://dsmon.example.com/nodes/web-4");
    assert_eq!(p["alerts"][0]["node"], "web-4");

    let o = n.deliver("hook", &resolved(&fire)).await;
    assert!(o.ok, "{o:?}");
    let p = s.rx.hits("/hook/good").pop().expect("a request").json();
    assert_eq!(p["state"], "resolved");
    assert_eq!(p["value"], 71.5);
    assert!(p["ended"].is_string(), "{p}");

    // The receiver refuses a signature made with another secret; a 401 is not retried.
    let o = n.deliver("hook-wrong", &fire).await;
    assert!(!o.ok, "{o:?}");
    assert_eq!(o.attempts, 1);
    assert_eq!(o.answer, "HTTP 401: bad signature");
    assert_eq!(s.rx.hits("/hook/wrong").len(), 1);
    assert_no_secrets("the log", &log_text());
}

#[tokio::test]
async fn chat_and_ntfy_request_formats() {
    // Slack, Discord, Teams and ntfy are hosted services with no server on this machine: their
    // requests are checked here against the formats they document.
    let s = shared();
    let configs = [
        notifier(
            "slack",
            NotifierKind::Slack {
                url: url(&s.rx.url(SLACK_PATH)),
            },
            None,
        ),
        notifier(
            "discord",
            NotifierKind::Discord {
                url: url(&s.rx.url("/discord")),
            },
            None,
        ),
        notifier(
            "teams",
            NotifierKind::Teams {
                url: url(&s.rx.url("/teams")),
            },
            None,
        ),
        notifier(
            "ntfy",
            NotifierKind::Ntfy {
                url: url(&s.rx.url("/ntfy/dsmon-alerts")),
                token: Some(Secret::new(NTFY_TOKEN.into())),
            },
            None,
        ),
    ];
    let n = Notifiers::new(&configs, 2, Duration::from_millis(200)).expect("notifiers");
    let fire = firing("cpu chat", "web-5", Severity::Critical);
    for name in ["slack", "discord", "teams", "ntfy"] {
        let o = n.deliver(name, &fire).await;
        assert!(o.ok, "{name}: {o:?}");
    }

    let slack = s.rx.hits(SLACK_PATH).pop().expect("slack").json();
    assert_eq!(
        slack["text"],
        "[dsmon] FIRING cpu chat on web-5: cpu_pct 93.2 (above 90)"
    );
    assert_eq!(slack["blocks"][0]["type"], "section");
    assert_eq!(slack["blocks"][0]["text"]["type"], "mrkdwn");
    assert!(slack["blocks"][1]["text"]["text"]
        .as_str()
        .unwrap_or_default()
        .starts_with("• <https://dsmon.example.com/nodes/web-5|web-5: cpu_pct 93.2"));

    let discord = s.rx.hits("/discord").pop().expect("discord").json();
    assert!(discord["content"]
        .as_str()
        .unwrap_or_default()
        .contains("FIRING cpu chat on web-5"));
    assert_eq!(discord["embeds"][0]["title"], "FIRING cpu chat");
    assert_eq!(discord["embeds"][0]["color"], 0xE0_1E_5A);
    assert_eq!(discord["allowed_mentions"]["parse"], serde_json::json!([]));

    let teams = s.rx.hits("/teams").pop().expect("teams").json();
    assert_eq!(teams["type"], "message");
    let card = &teams["attachments"][0];
    assert_eq!(
        card["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(card["content"]["type"], "AdaptiveCard");
    assert_eq!(
        card["content"]["body"][0]["text"],
        "FIRING cpu chat on web-5: cpu_pct 93.2 (above 90)"
    );

    let ntfy = s.rx.hits("/ntfy/dsmon-alerts").pop().expect("ntfy");
    assert_eq!(
        ntfy.header("title"),
        Some("[dsmon] FIRING cpu chat on web-5: cpu_pct 93.2 (above 90)")
    );
    assert_eq!(ntfy.header("priority"), Some("urgent"));
    assert_eq!(ntfy.header("tags"), Some("rotating_light,cpu chat"));
    assert_eq!(
        ntfy.header("click"),
        Some("https://dsmon.example.com/nodes/web-5")
    );
    assert_eq!(
        ntfy.header("authorization"),
        Some(format!("Bearer {NTFY_TOKEN}").as_str())
    );
    assert!(ntfy
        .text()
        .starts_with("web-5: cpu_pct 93.2 (above 90), since "));

    let o = n.deliver("ntfy", &resolved(&fire)).await;
    assert!(o.ok, "{o:?}");
    let ntfy = s.rx.hits("/ntfy/dsmon-alerts").pop().expect("ntfy");
    assert_eq!(ntfy.header("priority"), Some("default"));
    assert_eq!(ntfy.header("tags"), Some("white_check_mark,cpu chat"));
    assert_no_secrets("the log", &log_text());
}

#[tokio::test]
async fn a_down_notifier_is_retried_and_does_not_hold_up_another() {
    let s = shared();
    let closed = harness::free_port();
    let slack_down = format!("http://127.0.0.1:{closed}/services/T0/B0/SLACKSECRETPATH");
    let configs = [
        notifier(
            "down",
            NotifierKind::Slack {
                url: url(&slack_down),
            },
            None,
        ),
        notifier(
            "flaky",
            NotifierKind::Webhook {
                url: url(&s.rx.url("/flaky")),
                secret: None,
            },
            None,
        ),
        notifier(
            "fine",
            NotifierKind::Webhook {
                url: url(&s.rx.url("/fine")),
                secret: None,
            },
            None,
        ),
        notifier(
            "busy",
            NotifierKind::Webhook {
                url: url(&s.rx.url("/always503")),
                secret: None,
            },
            None,
        ),
    ];
    let backoff = Duration::from_millis(200);
    let n = Notifiers::new(&configs, 3, backoff).expect("notifiers");
    let before = delivery_counters();
    let fire = firing("cpu retry", "web-6", Severity::Warning);
    let start = Instant::now();
    let timed = |name: &'static str| {
        let (n, fire) = (&n, &fire);
        async move {
            let o = n.deliver(name, fire).await;
            (o, start.elapsed())
        }
    };
    let ((down, t_down), (flaky, t_flaky), (fine, t_fine), (busy, _)) =
        tokio::join!(timed("down"), timed("flaky"), timed("fine"), timed("busy"));

    // The working notifier delivered at once, not after the others' pauses.
    assert!(fine.ok && fine.attempts == 1, "{fine:?}");
    assert!(
        t_fine < Duration::from_millis(150) + backoff,
        "fine took {t_fine:?}"
    );

    // 503, pause 200 ms, 503, pause 400 ms, 200.
    assert!(flaky.ok, "{flaky:?}");
    assert_eq!(flaky.attempts, 3);
    assert!(t_flaky >= backoff * 3, "flaky took {t_flaky:?}");
    let hits = s.rx.hits("/flaky");
    assert_eq!(
        hits.iter().map(|h| h.status).collect::<Vec<_>>(),
        vec![503, 503, 200]
    );
    let (gap1, gap2) = (hits[1].at - hits[0].at, hits[2].at - hits[1].at);
    assert!(gap1 >= backoff && gap2 >= backoff * 2, "{gap1:?} {gap2:?}");

    // Down: every try refused, then given up.
    assert!(!down.ok, "{down:?}");
    assert_eq!(down.attempts, 3);
    assert!(t_down >= backoff * 3, "down took {t_down:?}");
    assert!(
        down.answer
            .starts_with(&format!("http://127.0.0.1:{closed}: ")),
        "{}",
        down.answer
    );
    assert!(down.answer.contains("refused"), "{}", down.answer);
    assert_no_secrets("an answer", &down.answer);

    assert!(!busy.ok);
    assert_eq!(busy.attempts, 3);
    assert_eq!(busy.answer, "HTTP 503: maintenance");

    let log = log_text();
    let given_up: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("giving up") && l.contains("rule=\"cpu retry\""))
        .collect();
    assert!(
        given_up
            .iter()
            .any(|l| l.contains("notifier=\"down\"") && l.contains("attempts=3")),
        "{log}"
    );
    let tries = log
        .lines()
        .filter(|l| l.contains("notifier=\"down\"") && l.contains("retrying"))
        .count();
    assert_eq!(tries, 2, "{log}");
    assert_no_secrets("the log", &log);

    let after = delivery_counters();
    let (b, a) = (
        before.get("webhook").copied().expect("webhook"),
        after.get("webhook").copied().expect("webhook"),
    );
    assert!(a.sent >= b.sent + 2, "{b:?} -> {a:?}");
    assert!(a.failed > b.failed, "{b:?} -> {a:?}");
    let (b, a) = (
        before.get("slack").copied().expect("slack"),
        after.get("slack").copied().expect("slack"),
    );
    assert!(a.failed > b.failed && a.failed_attempts >= b.failed_attempts + 3);
}
