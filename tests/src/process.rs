//! One `keel server` process: spawn, signal, kill -9, restart, logs.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::api::Api;

/// The `keel` binary under test: `KEEL_BIN`, or `target/<profile>/keel`
/// next to this test executable's `deps/` directory.
pub fn keel_bin() -> PathBuf {
    if let Ok(p) = std::env::var("KEEL_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = profile_dir.join("keel");
    assert!(
        bin.exists(),
        "{} not found: build it first (cargo build --bin keel) or set KEEL_BIN",
        bin.display()
    );
    bin
}

/// A node process and everything needed to restart it.
pub struct Node {
    /// Node id.
    pub id: u64,
    /// API address (`127.0.0.1:port`).
    pub api_addr: String,
    /// Peer address.
    pub peer_addr: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Where stdout and stderr go.
    pub log_path: PathBuf,
    /// Command-line arguments after `keel`.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    token: String,
    child: Option<Child>,
}

impl Node {
    /// Describes a node (not started).
    pub fn new(id: u64, api_addr: String, peer_addr: String, data_dir: PathBuf, log_path: PathBuf, args: Vec<String>, token: String) -> Self {
        Node {
            id,
            api_addr,
            peer_addr,
            data_dir,
            log_path,
            args,
            env: Vec::new(),
            token,
            child: None,
        }
    }

    /// Starts the process (appending to its log).
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "node {} is already running", self.id);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open node log");
        let mut cmd = Command::new(keel_bin());
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("spawn keel"));
    }

    /// The process id, if running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is alive.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            None => false,
            Some(c) => matches!(c.try_wait(), Ok(None)),
        }
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: sending a signal to our own child process.
            unsafe {
                libc::kill(pid as i32, sig);
            }
        }
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the process to exit; returns its exit code (`None` if
    /// killed by a signal), or panics after `deadline`.
    pub async fn wait_exit(&mut self, deadline: Duration) -> Option<i32> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let child = self.child.as_mut().expect("node not running");
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status.code();
            }
            if tokio::time::Instant::now() >= until {
                panic!("node {} did not exit within {deadline:?}\n{}", self.id, self.log_tail(40));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A client with the admin token.
    pub fn api(&self) -> Api {
        Api::new(&self.api_addr, Some(&self.token))
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(n);
        format!("--- node {} log ({}) ---\n{}", self.id, self.log_path.display(), lines[start..].join("\n"))
    }

    /// The whole log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}
