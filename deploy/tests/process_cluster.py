"""Three real `keel server` processes on loopback, started from the built
binary (no Docker): what the browser test of the status page runs against.

Flags as the Rust process harness (tests/src/cluster.rs) passes them:
node ids 1..n, free loopback ports, one token file and one secret file,
every node given the whole `--peers` list. Logs go to files in the
cluster's directory; `stop()` kills every process it started."""

import os
import secrets
import signal
import socket
import subprocess
from pathlib import Path

from keelapi import Node
from waiting import wait_until

REPO = Path(__file__).resolve().parent.parent.parent


def keel_binary() -> Path:
    """$KEEL_BIN, else the debug build in $CARGO_TARGET_DIR
    (default ~/.cache/keel-target), built if missing."""
    if os.environ.get("KEEL_BIN"):
        return Path(os.environ["KEEL_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "keel-target"))
    binary = target / "debug" / "keel"
    if not binary.exists():
        subprocess.run(["cargo", "build", "--workspace", "--bin", "keel"], cwd=REPO, check=True, timeout=3600)
    return binary


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ProcessCluster:
    """`size` keel processes on loopback, in directory `root`."""

    def __init__(self, root: Path, size: int = 3):
        self.root = root
        self.binary = keel_binary()
        self.token = secrets.token_hex(24)
        (root / "admin-token").write_text(self.token + "\n")
        (root / "cluster-secret").write_text(secrets.token_hex(24))
        (root / "unseal-key").write_text(secrets.token_hex(32))
        self.ports = {i: (free_port(), free_port()) for i in range(1, size + 1)}
        self.procs: dict[int, subprocess.Popen] = {}

    def args(self, node: int) -> list[str]:
        api, peer = self.ports[node]
        peers = ",".join(f"{i}=127.0.0.1:{p}" for i, (_, p) in self.ports.items())
        return [
            str(self.binary), "server",
            "--node-id", str(node),
            "--data-dir", str(self.root / f"node-{node}"),
            "--api-listen", f"127.0.0.1:{api}",
            "--peer-listen", f"127.0.0.1:{peer}",
            "--peers", peers,
            "--admin-token-file", str(self.root / "admin-token"),
            "--cluster-secret-file", str(self.root / "cluster-secret"),
            "--unseal-key-file", str(self.root / "unseal-key"),
            "--log-level", "info,openraft=warn",
        ]

    def start(self, timeout: float = 60) -> None:
        """Starts every node and waits until all are ready."""
        for node in self.ports:
            log = open(self.root / f"node-{node}.log", "ab")  # noqa: SIM115 - the child keeps it
            self.procs[node] = subprocess.Popen(self.args(node), stdout=log, stderr=log, stdin=subprocess.DEVNULL)
            log.close()
        for node in self.ports:
            wait_until(f"node {node} ready", self.api(node).ready, timeout)

    def api(self, node: int) -> Node:
        """A client of a node's API with the admin token."""
        return Node(str(node), self.ports[node][0], self.token)

    def url(self, node: int) -> str:
        """The node's API base URL."""
        return f"http://127.0.0.1:{self.ports[node][0]}"

    def kill(self, node: int) -> None:
        """SIGKILL, and reap."""
        proc = self.procs.pop(node)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def running(self) -> list[int]:
        """Nodes whose process runs."""
        return [n for n, p in self.procs.items() if p.poll() is None]

    def leader(self, via: int) -> int | None:
        """The leader node `via` knows of."""
        r = self.api(via).request("GET", "/v1/cluster")
        return r.body.get("leader") if r.status == 200 else None

    def logs(self) -> str:
        """Every node's log tail."""
        out = []
        for node in self.ports:
            path = self.root / f"node-{node}.log"
            lines = path.read_text(errors="replace").splitlines() if path.exists() else []
            out.append(f"--- node {node} ---\n" + "\n".join(lines[-40:]))
        return "\n".join(out)

    def stop(self) -> None:
        """Kills every process still running."""
        for node in list(self.procs):
            self.kill(node)
