//! Test hosts with their own network: one Linux network namespace per keel
//! node, joined by veth pairs to a bridge that lives in the harness's own
//! (anonymous) namespace, so faults cut real links.
//!
//! Nothing touches the machine's root namespace: [`enter_private_netns`]
//! moves the calling thread (and every thread and process it later starts)
//! into a fresh namespace before any runtime exists; the bridge, the
//! harness address `10.77.0.254` and the veth ends live there and vanish
//! with the harness. Node namespaces are named `keelj<harness pid>n<i>`;
//! [`Net::drop`] deletes them, and [`clean_stale`] deletes what a killed
//! harness left (its processes first), so a crash never leaks hosts.

use std::os::fd::AsRawFd;
use std::process::Command;

/// The subnet every run uses (private; it exists only inside this run's
/// namespaces, so concurrent runs cannot collide).
pub const SUBNET: &str = "10.77.0";
/// The harness's address on the bridge: clients connect from here.
pub const HARNESS_IP: &str = "10.77.0.254";
const PREFIX: &str = "keelj";
const NETNS_DIR: &str = "/var/run/netns";

/// Why the suite cannot run here (not root, no `ip`, no namespaces), or
/// `None`. The suite reports this and fails instead of skipping.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("the fault suite needs root (network namespaces, iptables)".into());
    }
    for tool in ["ip", "iptables", "tc"] {
        let found = Command::new(tool).arg("-V").output().is_ok()
            || Command::new(tool).arg("-h").output().is_ok();
        if !found {
            return Some(format!(
                "the fault suite needs `{tool}` (iproute2/iptables)"
            ));
        }
    }
    None
}

/// Moves the calling thread into a new, empty network namespace. Call it
/// first thing on the thread that will build the runtime: threads and
/// processes started afterwards inherit it.
pub fn enter_private_netns() -> Result<(), String> {
    // SAFETY: unshare only changes this thread's namespace membership.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        ));
    }
    run("ip", &["link", "set", "lo", "up"])
}

/// Runs a command to completion; `Err` with its stderr on failure.
pub fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Deletes the namespaces (and kills the processes in them) of harnesses
/// that are no longer running.
pub fn clean_stale() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let owner: Option<i32> = rest.split('n').next().and_then(|p| p.parse().ok());
        // SAFETY: kill with signal 0 only checks that the pid exists.
        let alive = owner.is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0);
        if !alive {
            delete_ns(&name);
        }
    }
}

fn delete_ns(name: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                // SAFETY: SIGKILL to a process inside a test namespace.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    let _ = run("ip", &["netns", "del", name]);
}

/// The hosts of one run: a bridge in the harness namespace and one named
/// namespace per node, each with `eth0` at `10.77.0.<i>`.
pub struct Net {
    names: Vec<String>,
}

impl Net {
    /// Creates the bridge and `hosts` namespaces (1-based host numbers).
    /// The caller must already be in its private namespace.
    pub fn create(hosts: usize) -> Result<Net, String> {
        clean_stale();
        run("ip", &["link", "add", "kbr0", "type", "bridge"])?;
        run(
            "ip",
            &["addr", "add", &format!("{HARNESS_IP}/24"), "dev", "kbr0"],
        )?;
        run("ip", &["link", "set", "kbr0", "up"])?;
        let mut net = Net { names: Vec::new() };
        for i in 1..=hosts {
            net.add_host(i)?;
        }
        Ok(net)
    }

    fn add_host(&mut self, i: usize) -> Result<(), String> {
        let name = format!("{PREFIX}{}n{i}", std::process::id());
        run("ip", &["netns", "add", &name])?;
        self.names.push(name.clone());
        let outer = format!("vj{i}");
        run(
            "ip",
            &[
                "link", "add", &outer, "type", "veth", "peer", "name", "eth0", "netns", &name,
            ],
        )?;
        run("ip", &["link", "set", &outer, "master", "kbr0", "up"])?;
        let addr = format!("{}/24", host_ip(i));
        for args in [
            vec!["addr", "add", addr.as_str(), "dev", "eth0"],
            vec!["link", "set", "eth0", "up"],
            vec!["link", "set", "lo", "up"],
        ] {
            let mut full = vec!["-n", name.as_str()];
            full.extend(args);
            run("ip", &full)?;
        }
        Ok(())
    }

    /// The namespace name of host `i`.
    pub fn ns(&self, i: usize) -> &str {
        &self.names[i - 1]
    }

    /// Number of hosts.
    pub fn hosts(&self) -> usize {
        self.names.len()
    }

    /// Runs `cmd args` inside host `i`'s namespace.
    pub fn exec(&self, i: usize, cmd: &str, args: &[&str]) -> Result<(), String> {
        let mut full = vec!["netns", "exec", self.ns(i), cmd];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// An open handle on host `i`'s namespace (for `setns`).
    pub fn ns_file(&self, i: usize) -> Result<std::fs::File, String> {
        let path = format!("{NETNS_DIR}/{}", self.ns(i));
        std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for name in &self.names {
            delete_ns(name);
        }
        // The veth ends went with their namespaces; the bridge stays in the
        // harness's namespace until removed (a program may run again).
        let _ = run("ip", &["link", "del", "kbr0"]);
    }
}

/// The address of host `i`.
pub fn host_ip(i: usize) -> String {
    format!("{SUBNET}.{i}")
}

/// Runs `f` on a short-lived thread that has joined host `ns`'s network
/// namespace: sockets it creates belong to that host.
pub fn in_ns<T: Send + 'static>(
    ns: &std::fs::File,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let fd = ns.try_clone().map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        // SAFETY: setns on this thread only, with a valid namespace fd.
        let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(format!("setns: {}", std::io::Error::last_os_error()));
        }
        Ok(f())
    })
    .join()
    .map_err(|_| "namespace thread panicked".to_string())?
}
