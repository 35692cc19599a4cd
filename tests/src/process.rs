//! One `keel server` process: spawn, signal, kill -9, restart, logs.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::api::Api;

/// The `keel` binary under test: `KEEL_BIN`, or `target/<profile>/keel`
/// beside this executable (a harness program such as `bench_lifecycle`) or
/// beside its `deps/` directory (an integration test).
pub fn keel_bin() -> PathBuf {
    if let Ok(p) = std::env::var("KEEL_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let here = exe.parent().expect("executable directory");
    let candidates = [Some(here), here.parent()];
    let found = candidates
        .iter()
        .flatten()
        .map(|d| d.join("keel"))
        .find(|b| b.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "keel not found beside {}: build it first (cargo build --bin keel) or set KEEL_BIN",
            exe.display()
        )
    })
}

/// What a `keel` run that was expected to end produced.
#[derive(Debug)]
pub struct Finished {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

/// Runs `keel <args>` to completion with stdout and stderr captured apart,
/// killing it (and panicking) if it is still running after `deadline`.
pub async fn run_keel(args: &[String], deadline: Duration) -> Finished {
    let mut child = tokio::process::Command::new(keel_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn keel");
    let (mut out, mut err) = (
        child.stdout.take().expect("stdout"),
        child.stderr.take().expect("stderr"),
    );
    let read_out = tokio::spawn(async move {
        let mut s = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut out, &mut s).await;
        s
    });
    let read_err = tokio::spawn(async move {
        let mut s = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut err, &mut s).await;
        s
    });
    let status = match tokio::time::timeout(deadline, child.wait()).await {
        Ok(status) => status.expect("wait for keel"),
        Err(_) => {
            let _ = child.kill().await;
            let stderr = read_err.await.unwrap_or_default();
            panic!("keel {args:?} still running after {deadline:?}; stderr:\n{stderr}");
        }
    };
    Finished {
        code: status.code(),
        stdout: read_out.await.unwrap_or_default(),
        stderr: read_err.await.unwrap_or_default(),
    }
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
    pub fn new(
        id: u64,
        api_addr: String,
        peer_addr: String,
        data_dir: PathBuf,
        log_path: PathBuf,
        args: Vec<String>,
        token: String,
    ) -> Self {
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
                panic!(
                    "node {} did not exit within {deadline:?}\n{}",
                    self.id,
                    self.log_tail(40)
                );
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
        // The harness's own readiness polls (a refused `/readyz` every 50
        // ms while a node starts) would push everything else out.
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("route=/readyz"))
            .collect();
        let start = lines.len().saturating_sub(n);
        format!(
            "--- node {} log ({}) ---\n{}",
            self.id,
            self.log_path.display(),
            lines[start..].join("\n")
        )
    }

    /// The whole log (readiness polls included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}
