//! A minimal W3C WebDriver client over `chromedriver` (Debian's `chromium-driver`) driving a
//! headless Debian `chromium`: enough to load a page, find, read and click elements, type, and
//! take a screenshot.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process with one headless browser session.
pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
}

impl Browser {
    /// Starts chromedriver and a headless chromium session of `width` × `height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        dumpwatch::deliver::install_tls_provider();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver (Debian package chromium-driver: run scripts/setup.sh)");
        let mut browser = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let start = Instant::now();
        while browser
            .http
            .get(format!("{}/status", browser.base))
            .send()
            .await
            .is_err()
        {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                // Sound without a click first: the alarm's tones are checked, as if the operator
                // had allowed them.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--autoplay-policy=no-user-gesture-required",
                         format!("--window-size={width},{height}")]
            }
        }}});
        let v = browser.call(reqwest::Method::POST, "/session", caps).await;
        let id = v["sessionId"].as_str().expect("a session id").to_owned();
        browser.base = format!("{}/session/{id}", browser.base);
        browser
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if method != reqwest::Method::GET {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("chromedriver answers");
        let status = resp.status();
        let v: Value = resp.json().await.expect("chromedriver sends JSON");
        assert!(
            status.is_success(),
            "WebDriver {method} {path}: {status} {v}"
        );
        v["value"].clone()
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    /// Runs `script` in the page and returns its result.
    pub async fn eval(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// The first element matching `css`, waiting up to `timeout` for it; panics with `what`.
    pub async fn wait_for(&self, css: &str, timeout: Duration, what: &str) -> String {
        let start = Instant::now();
        loop {
            let resp = self
                .http
                .post(format!("{}/element", self.base))
                .json(&json!({ "using": "css selector", "value": css }))
                .send()
                .await
                .expect("chromedriver answers");
            if resp.status().is_success() {
                let v: Value = resp.json().await.unwrap();
                return v["value"][ELEMENT_KEY]
                    .as_str()
                    .unwrap_or_else(|| panic!("WebDriver element reply without an element: {v}"))
                    .to_owned();
            }
            assert!(
                start.elapsed() < timeout,
                "{what}: nothing matches {css:?} after {timeout:?}; the page shows:\n{}",
                self.eval("return document.body.innerText").await
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The visible text of an element.
    pub async fn text(&self, element: &str) -> String {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{element}/text"),
                Value::Null,
            )
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Clicks an element.
    pub async fn click(&self, element: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            json!({}),
        )
        .await;
    }

    /// Types into an input.
    pub async fn type_into(&self, element: &str, text: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// Ends the browser session (chromium exits) and the driver.
    pub async fn quit(self) {
        let _ = self.http.delete(&self.base).send().await;
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends chromium with the driver's session; the driver goes with the test either way.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
