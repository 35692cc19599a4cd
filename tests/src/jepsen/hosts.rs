//! The keel cluster of a fault run: one `keel server` per network
//! namespace, each behind its delaying peer proxy, each (optionally) under
//! libfaketime with a clock the nemesis can move while it runs.
//!
//! Host `i` runs node name `i`: API on `10.77.0.<i>:7400` (reached by the
//! clients directly), peer listener on the namespace's loopback, advertised
//! as the proxy `10.77.0.<i>:7401`. Processes are started with
//! `PR_SET_PDEATHSIG` so they die with the harness.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::api::Api;
use crate::cluster::{CLUSTER_SECRET, TOKEN, UNSEAL_KEY};
use crate::process::keel_bin;

use super::netns::{Net, host_ip};
use super::proxy::{Delay, Proxy};

/// API port on every host.
pub const API_PORT: u16 = 7400;
/// The proxied peer port every host advertises.
pub const PEER_PORT: u16 = 7401;
/// The node's own peer listener (namespace loopback only).
const INNER_PEER_PORT: u16 = 7411;
/// libfaketime, for clock faults.
pub const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// One node process and where it keeps its things.
pub struct Host {
    /// Node name (= host number).
    pub id: usize,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Log file (appended across restarts).
    pub log_path: PathBuf,
    /// The libfaketime offset file (`None`: real clock).
    pub clock_file: Option<PathBuf>,
    /// Whether the process is stopped with SIGSTOP.
    pub paused: bool,
    child: Option<Child>,
    proxy: Proxy,
}

/// All hosts of a run.
pub struct Hosts {
    /// The network (dropped last: processes must die before namespaces go).
    pub hosts: Vec<Host>,
    /// The run directory (data dirs, logs, token files).
    pub dir: PathBuf,
    net: Net,
    token_file: PathBuf,
    secret_file: PathBuf,
    extra: Vec<String>,
}

impl Hosts {
    /// Creates `n` hosts in `dir` and starts a keel node on each.
    pub async fn start(
        net: Net,
        dir: &Path,
        extra: Vec<String>,
        fake_clocks: bool,
    ) -> Result<Hosts, String> {
        let token_file = dir.join("token");
        let secret_file = dir.join("secret");
        std::fs::write(&token_file, TOKEN).map_err(|e| e.to_string())?;
        std::fs::write(&secret_file, CLUSTER_SECRET).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("unseal-key"), UNSEAL_KEY).map_err(|e| e.to_string())?;
        if fake_clocks && !Path::new(FAKETIME_LIB).is_file() {
            return Err(format!(
                "{FAKETIME_LIB} is missing: install libfaketime (apt-get install faketime)"
            ));
        }
        let mut hosts = Vec::new();
        for i in 1..=net.hosts() {
            let ns = net.ns_file(i)?;
            let listen = format!("{}:{PEER_PORT}", host_ip(i)).parse().expect("addr");
            let proxy = Proxy::start(&ns, listen, INNER_PEER_PORT).await?;
            let clock_file = fake_clocks.then(|| dir.join(format!("clock-{i}")));
            if let Some(f) = &clock_file {
                std::fs::write(f, "+0\n").map_err(|e| e.to_string())?;
            }
            hosts.push(Host {
                id: i,
                data_dir: dir.join(format!("node-{i}")),
                log_path: dir.join(format!("node-{i}.log")),
                clock_file,
                paused: false,
                child: None,
                proxy,
            });
        }
        let mut all = Hosts {
            hosts,
            dir: dir.to_path_buf(),
            net,
            token_file,
            secret_file,
            extra,
        };
        for i in 1..=all.hosts.len() {
            all.spawn(i)?;
        }
        Ok(all)
    }

    /// The network namespaces.
    pub fn net(&self) -> &Net {
        &self.net
    }

    /// Number of hosts.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether there are no hosts.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Host `i` (1-based).
    pub fn host(&mut self, i: usize) -> &mut Host {
        &mut self.hosts[i - 1]
    }

    /// The admin client of host `i`, with a per-request `timeout`.
    pub fn api(&self, i: usize, timeout: Duration) -> Api {
        Api::with_timeout(&format!("{}:{API_PORT}", host_ip(i)), Some(TOKEN), timeout)
    }

    /// The `keel server` arguments of host `i`.
    fn args(&self, i: usize) -> Vec<String> {
        let peers: Vec<String> = (1..=self.hosts.len())
            .map(|j| format!("{j}={}:{PEER_PORT}", host_ip(j)))
            .collect();
        let h = &self.hosts[i - 1];
        let mut args: Vec<String> = [
            "server",
            "--node-id",
            &i.to_string(),
            "--data-dir",
            &h.data_dir.display().to_string(),
            "--api-listen",
            &format!("{}:{API_PORT}", host_ip(i)),
            "--advertise-api",
            &format!("{}:{API_PORT}", host_ip(i)),
            "--peer-listen",
            &format!("127.0.0.1:{INNER_PEER_PORT}"),
            "--advertise-peer",
            &format!("{}:{PEER_PORT}", host_ip(i)),
            "--peers",
            &peers.join(","),
            "--admin-token-file",
            &self.token_file.display().to_string(),
            "--cluster-secret-file",
            &self.secret_file.display().to_string(),
            "--unseal-key-file",
            &self
                .secret_file
                .with_file_name("unseal-key")
                .display()
                .to_string(),
            "--log-level",
            "info,openraft=warn",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(self.extra.iter().cloned());
        args
    }

    /// Starts host `i`'s node (its log is appended to).
    pub fn spawn(&mut self, i: usize) -> Result<(), String> {
        let args = self.args(i);
        let ns = self.net.ns_file(i)?;
        let h = &mut self.hosts[i - 1];
        if h.child.is_some() {
            return Err(format!("node {i} is already running"));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&h.log_path)
            .map_err(|e| e.to_string())?;
        let mut cmd = Command::new(keel_bin());
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        if let Some(f) = &h.clock_file {
            cmd.env("LD_PRELOAD", FAKETIME_LIB)
                .env("FAKETIME_TIMESTAMP_FILE", f)
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .env("FAKETIME_CACHE_DURATION", "1");
        }
        let fd = ns.as_raw_fd();
        // SAFETY: only async-signal-safe calls (setns, prctl) between fork
        // and exec; `ns` outlives the spawn.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        h.child = Some(cmd.spawn().map_err(|e| format!("spawn keel: {e}"))?);
        h.paused = false;
        drop(ns);
        Ok(())
    }

    /// Whether host `i`'s node process is alive.
    pub fn is_running(&mut self, i: usize) -> bool {
        match &mut self.hosts[i - 1].child {
            None => false,
            Some(c) => matches!(c.try_wait(), Ok(None)),
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self, i: usize) {
        let h = &mut self.hosts[i - 1];
        if let Some(mut c) = h.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        h.paused = false;
    }

    /// SIGTERM, then waits up to `deadline` for the exit (SIGKILL after).
    pub async fn terminate(&mut self, i: usize, deadline: Duration) -> bool {
        self.signal(i, libc::SIGCONT);
        self.signal(i, libc::SIGTERM);
        let until = tokio::time::Instant::now() + deadline;
        loop {
            if !self.is_running(i) {
                self.hosts[i - 1].child = None;
                return true;
            }
            if tokio::time::Instant::now() >= until {
                self.kill9(i);
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `sig` to host `i`'s node.
    pub fn signal(&mut self, i: usize, sig: i32) {
        let h = &mut self.hosts[i - 1];
        if let Some(c) = &h.child {
            // SAFETY: a signal to our own child.
            unsafe { libc::kill(c.id() as i32, sig) };
            match sig {
                libc::SIGSTOP => h.paused = true,
                libc::SIGCONT => h.paused = false,
                _ => {}
            }
        }
    }

    /// Sets host `i`'s wall-clock offset (libfaketime syntax: `+30s`,
    /// `-2m`, `+0`); takes effect within a second.
    pub fn set_clock(&self, i: usize, offset: &str) -> Result<(), String> {
        let f = self.hosts[i - 1]
            .clock_file
            .as_ref()
            .ok_or("this run has no fake clocks")?;
        let tmp = f.with_extension("tmp");
        std::fs::write(&tmp, format!("{offset}\n")).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, f).map_err(|e| e.to_string())
    }

    /// Host `i`'s proxy (delay faults).
    pub fn set_delay(&self, i: usize, delay: Delay) {
        self.hosts[i - 1].proxy.set_delay(delay);
    }

    /// Every node's log, for the failure folder.
    pub fn log_paths(&self) -> Vec<PathBuf> {
        self.hosts.iter().map(|h| h.log_path.clone()).collect()
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for i in 1..=self.hosts.len() {
            self.signal(i, libc::SIGCONT);
            self.kill9(i);
        }
    }
}

/// Copies a directory tree (for "an older copy of the data dir").
pub fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(to);
    super::netns::run(
        "cp",
        &["-a", &from.display().to_string(), &to.display().to_string()],
    )
}
