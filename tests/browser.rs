//! One headless Chromium per test binary, driven over WebDriver: chromedriver (Debian's
//! `chromium-driver`, installed by `scripts/ensure-tools`) and the `fantoccini` client.
//!
//! Starting Chromium costs about a second, so the tests share one: [`browser`] hands it to one
//! test at a time. It lives on a runtime of its own (a test's runtime ends with its test), and
//! chromedriver runs in its own process group, which is killed (and the profile removed) when
//! the test binary exits.
use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

use fantoccini::{Client, ClientBuilder, Locator};
use tokio::sync::{Mutex, MutexGuard};

/// The flags Chromium needs here: headless as root, and no background traffic (the closed
/// network refuses it, and it would only slow the tests).
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1100,720",
];

struct Browser {
    client: Mutex<Client>,
    // Kept alive for the session: the client's connection task runs on it.
    _runtime: tokio::runtime::Runtime,
    _profile: tempfile::TempDir,
    // Killed with its process group when the test binary exits (see `kill_chromedriver`).
    _driver: std::process::Child,
}

static BROWSER: OnceLock<Browser> = OnceLock::new();
static DRIVER_GROUP: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);
/// The browser's profile directory, removed at exit (a static is never dropped).
static PROFILE: OnceLock<std::path::PathBuf> = OnceLock::new();

/// The shared browser, for this test alone until the guard drops. Cookies are cleared first.
pub async fn browser() -> MutexGuard<'static, Client> {
    // Started on a thread of its own: a runtime cannot be blocked on from inside another.
    // The first test starts it; the others wait for that one.
    let browser = BROWSER.get_or_init(|| std::thread::spawn(start).join().expect("start the browser"));
    let client = browser.client.lock().await;
    client.delete_all_cookies().await.expect("clear cookies");
    client
}

fn start() -> Browser {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("the browser's runtime");
    let profile = tempfile::tempdir().expect("a profile directory");
    let _ = PROFILE.set(profile.path().to_owned());
    let (driver, port) = start_chromedriver();
    let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.path().display()));
    let mut options = serde_json::json!({ "args": args });
    if let Ok(binary) = std::env::var("CHROMIUM") {
        options["binary"] = binary.into();
    }
    let capabilities = serde_json::json!({ "goog:chromeOptions": options });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    let client = runtime
        .block_on(async {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            ClientBuilder::new(connector)
                .capabilities(capabilities)
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
        })
        .expect("a Chromium session through chromedriver");
    Browser {
        client: Mutex::new(client),
        _runtime: runtime,
        _profile: profile,
        _driver: driver,
    }
}

/// Starts chromedriver on a port of its choosing and returns it with the port.
fn start_chromedriver() -> (std::process::Child, u16) {
    use std::os::unix::process::CommandExt;
    let driver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let mut child = Command::new(&driver)
        .arg("--port=0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        // Its own process group, Chromium included, so one kill at exit ends them all.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {driver}: {e} (scripts/ensure-tools installs chromium and chromium-driver)")
        });
    DRIVER_GROUP.store(child.id() as i32, std::sync::atomic::Ordering::SeqCst);
    // SAFETY: registers a plain extern "C" function that only calls kill(2).
    unsafe {
        libc::atexit(kill_chromedriver);
    }
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    // "ChromeDriver was started successfully on port 34977."
    let port = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            line.split("started successfully on port ")
                .nth(1)
                .and_then(|rest| rest.trim_end_matches('.').parse().ok())
        })
        .expect("chromedriver names its port");
    // Keep reading so chromedriver never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, port)
}

extern "C" fn kill_chromedriver() {
    let group = DRIVER_GROUP.load(std::sync::atomic::Ordering::SeqCst);
    if group > 0 {
        // SAFETY: kill(2) on the process group of the chromedriver this binary started.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
    }
    if let Some(profile) = PROFILE.get() {
        let _ = std::fs::remove_dir_all(profile);
    }
}

/// The text a person sees in the element `css` selects (waiting for it up to a few seconds,
/// finding it again when a live refresh replaced it).
pub async fn text(client: &Client, css: &str) -> String {
    for _ in 0..5 {
        match find(client, css).await.text().await {
            Ok(text) => return text,
            Err(error) if error.to_string().contains("stale") => continue,
            Err(error) => panic!("text of {css:?}: {error}"),
        }
    }
    panic!("{css:?} kept going stale");
}

/// The element `css` selects, waiting for it up to a few seconds.
pub async fn find(client: &Client, css: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css:?}: {e}"))
}

/// Clicks the element `css` selects, finding it again when a live refresh replaced it.
pub async fn click(client: &Client, css: &str) {
    for _ in 0..5 {
        match find(client, css).await.click().await {
            Ok(()) => return,
            Err(error) if error.to_string().contains("stale") => continue,
            Err(error) => panic!("click {css:?}: {error}"),
        }
    }
    panic!("{css:?} kept going stale");
}
