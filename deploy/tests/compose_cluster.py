"""Drives the compose cluster of deploy/compose/docker-compose.yml for the
fault tests: up/down, finding containers, kill/stop/start, partitions and
re-addressing, and the cluster-level conditions the tests wait for.

All containers, networks and volumes belong to one compose project (name
given by the caller) and carry its labels, so cleanup finds exactly them.
The tests reach the nodes only through their API ports published on
127.0.0.1, and a partitioned node through `docker exec`."""

import ipaddress
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from keelapi import Node
from waiting import wait_until

DEPLOY = Path(__file__).resolve().parent.parent
COMPOSE_FILE = DEPLOY / "compose" / "docker-compose.yml"
SUBNET_OVERRIDE = Path(__file__).resolve().parent / "compose.subnet.yml"
SERVICES = ["keel-0", "keel-1", "keel-2"]
# Started only when named (compose profile `scale`): scaling 3 -> 5 -> 3.
SCALE_SERVICES = ["keel-3", "keel-4"]
IMAGE = os.environ.get("KEEL_TEST_IMAGE", "keel:local")


def run(cmd: list[str], timeout: float = 120, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs a command with a deadline; output captured as text."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def compose_command() -> list[str]:
    """`docker compose` (v2 plugin) when it answers, else `docker-compose`."""
    try:
        if run(["docker", "compose", "version"], timeout=20, check=False).returncode == 0:
            return ["docker", "compose"]
    except (OSError, subprocess.TimeoutExpired):
        pass
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise RuntimeError("neither `docker compose` nor `docker-compose` is installed")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def used_subnets() -> list[ipaddress.IPv4Network]:
    """IPv4 networks already in use: Docker networks and host routes."""
    nets: list[ipaddress.IPv4Network] = []
    ids = run(["docker", "network", "ls", "-q"], timeout=30).stdout.split()
    if ids:
        for net in json.loads(run(["docker", "network", "inspect", *ids], timeout=30).stdout):
            for cfg in (net.get("IPAM") or {}).get("Config") or []:
                try:
                    nets.append(ipaddress.IPv4Network(cfg.get("Subnet", ""), strict=False))
                except ValueError:
                    pass
    try:
        for line in run(["ip", "-4", "route"], timeout=10, check=False).stdout.splitlines():
            dest = line.split()[0] if line.split() else ""
            if "/" in dest:
                nets.append(ipaddress.IPv4Network(dest, strict=False))
    except OSError:
        pass
    return nets


def pick_subnets(count: int) -> list[str]:
    """`count` /24 subnets in 172.30.0.0/16 that overlap nothing in use."""
    used = used_subnets()
    picked = []
    for candidate in ipaddress.IPv4Network("172.30.0.0/16").subnets(new_prefix=24):
        if candidate.network_address.packed[2] < 10:
            continue
        if not any(candidate.overlaps(u) for u in used):
            picked.append(str(candidate))
            if len(picked) == count:
                return picked
    raise RuntimeError("no free /24 in 172.30.0.0/16 for the test network")


class ComposeCluster:
    """One compose project: three keel nodes on loopback ports."""

    def __init__(self, project: str, secrets_dir: Path, subnet: str | None = None):
        self.project = project
        self.secrets_dir = secrets_dir
        self.subnet = subnet
        self.ports = [free_port() for _ in SERVICES]
        self.token = (secrets_dir / "admin-token").read_text().splitlines()[0].strip()
        self.nodes = [Node(svc, port, self.token) for svc, port in zip(SERVICES, self.ports)]
        self.scale_ports = [free_port() for _ in SCALE_SERVICES]
        self.scale_nodes = [Node(svc, port, self.token) for svc, port in zip(SCALE_SERVICES, self.scale_ports)]
        self._compose = compose_command()

    # --- compose ------------------------------------------------------------

    def env(self) -> dict:
        env = dict(os.environ)
        env.update(
            KEEL_IMAGE=IMAGE,
            KEEL_SECRETS_DIR=str(self.secrets_dir),
            KEEL_LOG_LEVEL="info,openraft=warn",
        )
        for i, port in enumerate(self.ports + self.scale_ports):
            env[f"KEEL_API_PORT_{i}"] = str(port)
        if self.subnet:
            env["KEEL_TEST_SUBNET"] = self.subnet
        return env

    def compose(self, *args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess:
        files = ["-f", str(COMPOSE_FILE)]
        if self.subnet:
            files += ["-f", str(SUBNET_OVERRIDE)]
        cmd = [*self._compose, "-p", self.project, *files, *args]
        return run(cmd, timeout=timeout, check=check, env=self.env())

    def up(self, *args: str, timeout: float = 180) -> float:
        """`compose up -d`, then waits until every node is ready and they
        agree on a leader. Returns the seconds from `up` to that point."""
        for attempt in range(3):
            started = time.monotonic()
            proc = self.compose("up", "-d", *args, timeout=timeout, check=False)
            if proc.returncode == 0:
                break
            # A loopback port picked as free may have been taken meanwhile.
            if "address already in use" not in proc.stderr + proc.stdout or attempt == 2:
                raise RuntimeError(f"compose up exited {proc.returncode}: {proc.stderr.strip()}")
            self.compose("down", "--remove-orphans", timeout=timeout, check=False)
            self.ports = [free_port() for _ in SERVICES]
            for node, port in zip(self.nodes, self.ports):
                node.port = port
        self.wait_converged(timeout=timeout)
        return time.monotonic() - started

    def down(self, volumes: bool = True, timeout: float = 180) -> None:
        args = ["down", "--remove-orphans", "--timeout", "45"]
        if volumes:
            args.append("-v")
        self.compose(*args, timeout=timeout, check=False)

    def script(self, name: str, *args: str, timeout: float = 300) -> float:
        """Runs deploy/compose/NAME against this project; returns seconds."""
        env = self.env()
        env.update(KEEL_PROJECT=self.project, KEEL_SKIP_BUILD="1")
        if self.subnet:
            env["KEEL_COMPOSE_FILES"] = str(SUBNET_OVERRIDE)
        started = time.monotonic()
        run([str(COMPOSE_FILE.parent / name), *args], timeout=timeout, env=env)
        return time.monotonic() - started

    def logs(self, tail: int = 60) -> str:
        proc = self.compose("logs", "--no-color", f"--tail={tail}", timeout=60, check=False)
        return proc.stdout + proc.stderr

    # --- containers ---------------------------------------------------------

    def container(self, i: int) -> str:
        """The container id of node i (running or not)."""
        out = run(
            [
                "docker", "ps", "-aq",
                "--filter", f"label=com.docker.compose.project={self.project}",
                "--filter", f"label=com.docker.compose.service={(SERVICES + SCALE_SERVICES)[i]}",
            ],
            timeout=30,
        ).stdout.split()
        if len(out) != 1:
            raise RuntimeError(f"expected one container for {(SERVICES + SCALE_SERVICES)[i]}, found {out}")
        return out[0]

    def inspect(self, i: int) -> dict:
        return json.loads(run(["docker", "inspect", self.container(i)], timeout=30).stdout)[0]

    def network(self) -> str:
        """The name of the project's network."""
        nets = run(
            [
                "docker", "network", "ls", "--format", "{{.Name}}",
                "--filter", f"label=com.docker.compose.project={self.project}",
            ],
            timeout=30,
        ).stdout.split()
        if len(nets) != 1:
            raise RuntimeError(f"expected one network for project {self.project}, found {nets}")
        return nets[0]

    def ip(self, i: int) -> str | None:
        nets = self.inspect(i)["NetworkSettings"]["Networks"]
        return next((n["IPAddress"] for n in nets.values() if n.get("IPAddress")), None)

    def kill(self, i: int) -> None:
        """SIGKILL: no drain, no hand-off."""
        run(["docker", "kill", self.container(i)], timeout=60)

    def stop(self, i: int, grace: int = 45) -> tuple[float, int]:
        """SIGTERM, SIGKILL after `grace` s. Returns (seconds, exit code)."""
        started = time.monotonic()
        run(["docker", "stop", "-t", str(grace), self.container(i)], timeout=grace + 30)
        took = time.monotonic() - started
        return took, int(self.inspect(i)["State"]["ExitCode"])

    def replace_with_empty_volume(self, i: int) -> None:
        """Node i's container and data volume deleted, then created afresh
        (a lost disk, or a pod rescheduled onto a new empty volume)."""
        volume = next(m["Name"] for m in self.inspect(i)["Mounts"] if m["Destination"] == "/data")
        self.compose("rm", "-s", "-f", SERVICES[i], timeout=120)
        run(["docker", "volume", "rm", volume], timeout=60)
        self.compose("up", "-d", SERVICES[i], timeout=120)

    def start(self, i: int) -> None:
        run(["docker", "start", self.container(i)], timeout=60)

    def disconnect(self, i: int) -> None:
        """Cuts node i off the cluster network (and from its published port)."""
        run(["docker", "network", "disconnect", self.network(), self.container(i)], timeout=60)

    def connect(self, i: int, ip: str | None = None) -> None:
        """Reattaches node i under its service name, optionally at a new IP."""
        cmd = ["docker", "network", "connect", "--alias", SERVICES[i]]
        if ip:
            cmd += ["--ip", ip]
        run([*cmd, self.network(), self.container(i)], timeout=60)

    def exec_keel(self, i: int, args: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
        """Runs the keel CLI inside node i's container, against its own API
        (the way to reach a node that is cut off the network)."""
        cmd = ["docker", "exec", "-e", f"KEEL_TOKEN={self.token}", self.container(i), "/usr/local/bin/keel", *args]
        return run(cmd, timeout=timeout, check=False)

    # --- cluster conditions -------------------------------------------------

    def leader(self, among: list[int] | None = None) -> int | None:
        """The leader a majority of the given nodes (default all) agree on."""
        among = list(range(len(SERVICES))) if among is None else among
        votes: dict[int, int] = {}
        for i in among:
            view = self.nodes[i].cluster()
            if view and view.get("leader") is not None:
                votes[view["leader"]] = votes.get(view["leader"], 0) + 1
        for leader, count in votes.items():
            if count * 2 > len(SERVICES) or count == len(among):
                return leader
        return None

    def agreed(self, among: list[int] | None = None) -> int | None:
        """The leader, if every given node is ready and they all name it
        in the same term."""
        among = list(range(len(SERVICES))) if among is None else among
        seen = set()
        for i in among:
            if not self.nodes[i].ready():
                return None
            view = self.nodes[i].cluster()
            if not view or view.get("leader") is None:
                return None
            seen.add((view["leader"], view["term"], view["cluster_id"]))
        if len(seen) != 1:
            return None
        return next(iter(seen))[0]

    def converged(self, among: list[int] | None = None) -> bool:
        """Every given node is ready, they agree on the leader, and each has
        applied what the leader had committed just before."""
        among = list(range(len(SERVICES))) if among is None else among
        leader = self.agreed(among)
        if leader is None:
            return False
        leader_view = self.nodes[leader].cluster() if leader in among else None
        if leader_view is None:
            return leader not in among
        target = leader_view["commit_index"]
        for i in among:
            view = self.nodes[i].cluster()
            if not view or view["applied_index"] < target:
                return False
        return True

    def wait_converged(self, timeout: float = 120, among: list[int] | None = None) -> None:
        wait_until("the cluster converges (all ready, one leader, caught up)", lambda: self.converged(among), timeout)

    def wait_ready(self, i: int, timeout: float = 120) -> None:
        wait_until(f"{SERVICES[i]} is ready", self.nodes[i].ready, timeout)
