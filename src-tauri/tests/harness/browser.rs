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

    /// Saves a screenshot as `name`.png under $DSMON_SCREENSHOT_DIR (default target/screenshots).
    pub async fn screenshot(&self, name: &str) {
        self.screenshot_area(name, None).await
    }

    /// A screenshot of `area` ("WxH+X+Y") of the desktop app's display.
    pub async fn screenshot_area(&self, name: &str, area: Option<&str>) {
        let dir = std::env::var_os("DSMON_SCREENSHOT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots")
            });
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let file = dir.join(format!("{name}.png"));
        if let Some((_, display)) = &self.display {
            // The app's display (ImageMagick's `import`), after WebKit has painted the last change.
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
            return;
        }
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(file, png).expect("write screenshot");
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
