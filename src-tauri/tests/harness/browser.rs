//! Headless Chromium driven over WebDriver (chromedriver + fantoccini). chromedriver runs in its own
//! process group, which is terminated on drop, so no browser outlives a failed test.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: PathBuf,
    /// A virtual display started for this browser (the desktop app's), stopped after the driver,
    /// and its name (WebKitWebDriver takes no screenshots: the display's are taken instead).
    display: Option<(Child, String)>,
}

impl Browser {
    /// A new headless Chromium with an empty profile; `dark` makes the page see a dark OS theme.
    pub async fn start(dark: bool, width: u32, height: u32) -> Self {
        assert!(
            std::path::Path::new("/usr/bin/chromedriver").exists(),
            "chromedriver is missing (apt-get install chromium chromium-driver)"
        );
        let port = super::free_port();
        let profile =
            std::env::temp_dir().join(format!("dsmonchrome{}x{port}", std::process::id()));
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let mut args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--hide-scrollbars".into(),
            format!("--user-data-dir={}", profile.display()),
            format!("--window-size={width},{height}"),
        ];
        if dark {
            args.push("--force-dark-mode".into());
        }
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args }
        });
        let caps = caps.as_object().cloned().expect("object");
        Self::attach(driver, port, caps, profile, None).await
    }

    /// A WebDriver session on the driver `driver` (its own process group) listening on `port`.
    pub async fn attach(
        driver: Child,
        port: u16,
        caps: serde_json::Map<String, serde_json::Value>,
        profile: PathBuf,
        display: Option<(Child, String)>,
    ) -> Self {
        // Two rustls crypto providers are compiled in (see Cargo.toml); choose one for the process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let start = Instant::now();
        let client = loop {
            match ClientBuilder::rustls()
                .expect("tls")
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(c) => break c,
                Err(e) if start.elapsed() < Duration::from_secs(20) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("WebDriver session: {e}"),
            }
        };
        Self {
            client,
            driver,
            profile,
            display,
        }
    }

    /// Waits until `f` answers true (it is asked every 100 ms), or fails the test after `limit`.
    pub async fn wait<F, Fut>(&self, what: &str, limit: Duration, mut f: F) -> Duration
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        loop {
            if f().await {
                return start.elapsed();
            }
            assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of the first element matching `css`, or "" if there is none.
    pub async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The `textContent` of the first element matching `css` (also when it is hidden), or "".
    pub async fn content(&self, css: &str) -> String {
        self.client
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
                vec![serde_json::json!(css)],
            )
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    pub async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .map(|v| v.len())
            .unwrap_or(0)
    }

    /// Saves a screenshot of the page as `name`.png under $DSMON_SCREENSHOT_DIR (default
    /// target/screenshots), then checks that the page shows what `shows` says it does.
    pub async fn screenshot(&self, name: &str, shows: &[Shows<'_>]) {
        self.screenshot_area(name, None, shows).await
    }

    /// The same; for the desktop app, of `area` ("WxH+X+Y") of its display (where the window
    /// under test must be).
    pub async fn screenshot_area(&self, name: &str, area: Option<&str>, shows: &[Shows<'_>]) {
        assert!(!shows.is_empty(), "{name}: say what the screenshot shows");
        let dir = std::env::var_os("DSMON_SCREENSHOT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots")
            });
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let file = dir.join(format!("{name}.png"));
        let Some((_, display)) = &self.display else {
            let png = self.client.screenshot().await.expect("screenshot");
            std::fs::write(&file, png).expect("write screenshot");
            self.assert_shows(name, shows).await;
            return;
        };
        // The app's display (ImageMagick's `import`), after WebKit has painted the last change.
        // Windows are not managed there: a window opened later covers this one, so the display
        // shows this window only if it is the only one, or if `area` is exactly it.
        let windows = self.client.windows().await.map(|w| w.len()).unwrap_or(0);
        let (wx, wy, ww, wh) = self.client.get_window_rect().await.expect("window rect");
        match area {
            None => assert_eq!(windows, 1, "{name}: another window would cover this one"),
            Some(a) => assert_eq!(
                format!("{ww}x{wh}+{wx}+{wy}"),
                a,
                "{name}: the window is not the area taken"
            ),
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut import = Command::new("import");
        import.args(["-window", "root"]);
        if let Some(a) = area {
            import.args(["-crop", a]);
        }
        let status = import
            .arg(&file)
            .env("DISPLAY", display)
            .status()
            .expect("import (apt-get install imagemagick)");
        assert!(status.success(), "screenshot of {display}");
        // Something is painted: a blank display has a colour or two, a page's text alone
        // (anti-aliased) has dozens.
        let colours = colours_in(&file, None);
        assert!(
            colours >= 16,
            "{name}: {colours} colours in {}: a blank display?",
            file.display()
        );
        let seen = self.assert_shows(name, shows).await;
        // And painted where the page says the texts are: the web view fills the window below
        // its menu bar, and the file starts at the window when it is an area of the display.
        let (view_x, view_y) = (
            wx as f64 + ww as f64 - seen.width,
            wy as f64 + wh as f64 - seen.height,
        );
        let (file_x, file_y) = if area.is_some() { (wx, wy) } else { (0, 0) };
        for (what, [x, y, w, h]) in &seen.texts {
            let crop = format!(
                "{}x{}+{}+{}",
                w.floor().max(1.0),
                h.floor().max(1.0),
                (view_x + x).ceil() - file_x as f64,
                (view_y + y).ceil() - file_y as f64
            );
            let n = colours_in(&file, Some(&crop));
            assert!(
                n >= 3,
                "{name}: {what} is not painted on the display at {crop} ({n} colours in {})",
                file.display()
            );
        }
    }

    /// Fails the test unless the page shows (in the window's viewport) everything in `shows`.
    pub async fn assert_shows(&self, what: &str, shows: &[Shows<'_>]) -> Seen {
        let checks: Vec<serde_json::Value> = shows.iter().map(Shows::json).collect();
        let v = self
            .client
            .execute(SHOWS_JS, vec![serde_json::Value::Array(checks)])
            .await
            .unwrap_or_else(|e| panic!("{what}: checking the page: {e}"));
        let failed: Vec<String> = v["failed"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|f| f.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_else(|| vec![format!("no answer: {v}")]);
        assert!(
            failed.is_empty(),
            "{what} does not show what it should:\n  {}\n--- the page ({}):\n{}",
            failed.join("\n  "),
            v["url"].as_str().unwrap_or_default(),
            v["text"].as_str().unwrap_or_default()
        );
        let num = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
        Seen {
            width: num(&v["width"]),
            height: num(&v["height"]),
            texts: v["texts"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|t| {
                            let what = t[0].as_str().unwrap_or_default().to_string();
                            (what, [num(&t[1]), num(&t[2]), num(&t[3]), num(&t[4])])
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Ends the WebDriver session (the drop then stops chromedriver).
    pub async fn close(&self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // SAFETY: signalling the process group we created for chromedriver and its browser.
        unsafe {
            libc::kill(-(self.driver.id() as i32), libc::SIGTERM);
        }
        let _ = self.driver.wait();
        if let Some((x, _)) = &mut self.display {
            let _ = x.kill();
            let _ = x.wait();
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Where the texts that [`Browser::assert_shows`] found are in the viewport (CSS pixels), and its
/// size.
pub struct Seen {
    pub width: f64,
    pub height: f64,
    /// Each text check as "selector: text", and the rectangle (x, y, width, height) of the element
    /// found with it, cut to the viewport.
    pub texts: Vec<(String, [f64; 4])>,
}

/// How many colours the PNG `file` has, in `crop` ("WxH+X+Y") of it if given.
/// ImageMagick, which takes the desktop screenshots already, rather than a PNG decoder as one more
/// dev-dependency.
fn colours_in(file: &std::path::Path, crop: Option<&str>) -> u64 {
    let mut arg = file.as_os_str().to_os_string();
    if let Some(c) = crop {
        arg.push(format!("[{c}]"));
    }
    let out = Command::new("identify")
        .args(["-format", "%k"])
        .arg(arg)
        .output()
        .expect("identify (apt-get install imagemagick)");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Something a page must show in its viewport (what a screenshot of it captures).
#[derive(Debug, Clone, Copy)]
pub enum Shows<'a> {
    /// An element matching the selector, in view, whose text contains this ("" for any text).
    Text(&'a str, &'a str),
    /// Exactly this many elements matching the selector in view.
    Count(&'a str, usize),
    /// No element matching the selector in view.
    Nothing(&'a str),
    /// At least this many canvases matching the selector in view with something drawn on them.
    Drawn(&'a str, usize),
    /// A form field matching the selector, in view, holding this value.
    Value(&'a str, &'a str),
    /// Elements matching the selector are in view, each as wide as the viewport allows at most.
    Fits(&'a str),
    /// The page's background is dark (true) or light (false).
    Dark(bool),
}

impl Shows<'_> {
    fn json(&self) -> serde_json::Value {
        use serde_json::json;
        match *self {
            Shows::Text(css, text) => json!(["text", css, text]),
            Shows::Count(css, n) => json!(["count", css, n]),
            Shows::Nothing(css) => json!(["count", css, 0]),
            Shows::Drawn(css, n) => json!(["drawn", css, n]),
            Shows::Value(css, v) => json!(["value", css, v]),
            Shows::Fits(css) => json!(["fits", css, null]),
            Shows::Dark(dark) => json!(["dark", "body", dark]),
        }
    }
}

/// The checks of [`Shows`], run in the page in one call: `{ failed: [why...], texts, width,
/// height, url, text }`. Hand-written because WebDriver's element queries know neither the viewport
/// (what a screenshot holds) nor the pixels of a canvas.
const SHOWS_JS: &str = r#"
const [checks] = arguments;
const inView = (e) => {
  const r = e.getBoundingClientRect();
  if (r.width <= 0 || r.height <= 0) return false;
  for (let x = e; x; x = x.parentElement) {
    const s = getComputedStyle(x);
    if (s.display === 'none' || s.visibility === 'hidden' || s.opacity === '0') return false;
  }
  return r.bottom > 0 && r.right > 0 && r.top < innerHeight && r.left < innerWidth;
};
const shown = (css) => [...document.querySelectorAll(css)].filter(inView);
const drawn = (c) => {
  try {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) return true;
  } catch (e) {}
  return false;
};
const lightness = (css) => {
  const m = css.match(/[\d.]+/g) || [];
  return m.length >= 3 ? (0.2126 * m[0] + 0.7152 * m[1] + 0.0722 * m[2]) / 255 : -1;
};
const failed = [];
const texts = [];
const cut = (e) => {
  const r = e.getBoundingClientRect();
  const x = Math.max(0, r.left), y = Math.max(0, r.top);
  return [x, y, Math.min(innerWidth, r.right) - x, Math.min(innerHeight, r.bottom) - y];
};
for (const [kind, css, want] of checks) {
  const els = shown(css);
  const shownTexts = () => JSON.stringify(els.map((e) => e.innerText.slice(0, 120)));
  if (kind === 'text') {
    const found = els.find((e) => e.innerText.includes(want));
    if (found) texts.push([`${css}: ${want}`, ...cut(found)]);
    else failed.push(`${css}: none in view with the text ${JSON.stringify(want)} (in view: ${shownTexts()})`);
  } else if (kind === 'count') {
    if (els.length !== want) failed.push(`${css}: ${els.length} in view, not ${want} ${shownTexts()}`);
  } else if (kind === 'drawn') {
    const n = els.filter(drawn).length;
    if (n < want) failed.push(`${css}: ${n} drawn in view (of ${els.length}), not at least ${want}`);
  } else if (kind === 'value') {
    if (!els.some((e) => e.value === want))
      failed.push(`${css}: none in view with the value ${JSON.stringify(want)} (${JSON.stringify(els.map((e) => e.value))})`);
  } else if (kind === 'fits') {
    const over = els.filter((e) => { const r = e.getBoundingClientRect(); return r.left < 0 || r.right > innerWidth; });
    if (!els.length || over.length)
      failed.push(`${css}: ${over.length} of ${els.length} in view wider than the viewport (${innerWidth} px)`);
  } else if (kind === 'dark') {
    const bg = getComputedStyle(document.body).backgroundColor;
    const l = lightness(bg);
    if (l < 0 || (want ? l > 0.35 : l < 0.65))
      failed.push(`the background ${bg} is not ${want ? 'dark' : 'light'}`);
  }
}
return { failed, texts, width: innerWidth, height: innerHeight, url: location.href, text: document.body.innerText.slice(0, 2000) };
"#;
