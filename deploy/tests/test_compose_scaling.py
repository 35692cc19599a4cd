"""Scaling the compose cluster 3 -> 5 -> 3 with a writer running, the way
deploy/README.md describes it:

- out: `up -d keel-3 keel-4` (profile `scale`); outside KEEL_PEERS, they
  join as learners and are promoted once caught up: five voters;
- in: `keel cluster decommission 4`, then `3` (run inside keel-0), each
  refused by nothing (five and four voters tolerate a failure); each node
  stops, and Docker's restarts of it refuse to use its data directory;
  then its container is removed.

Every write the writer got acknowledged is on every node afterwards, and
no write failed other than with a retried 503."""

import time

import pytest

import report
from compose_cluster import ComposeCluster, run
from test_compose_faults import check_writes, wait_acks
from waiting import wait_until
from writer import Writer

pytestmark = pytest.mark.docker


def voters(cluster: ComposeCluster) -> list[int] | None:
    """Voters and members as keel-0 sees them, if all members vote."""
    view = cluster.nodes[0].cluster()
    if not view:
        return None
    members = sorted(m["id"] for m in view["members"])
    voting = sorted(m["id"] for m in view["members"] if m["role"] == "voter")
    return voting if voting == members else None


def container_logs(cluster: ComposeCluster, i: int) -> str:
    proc = run(["docker", "logs", "--tail", "200", cluster.container(i)], timeout=60, check=False)
    return proc.stdout + proc.stderr


def test_scale_three_to_five_to_three(cluster: ComposeCluster):
    figures = []
    with Writer(cluster.nodes, "scale") as writer:
        wait_acks(writer, 20, "writes before scaling out")

        started = time.monotonic()
        cluster.compose("up", "-d", "keel-3", "keel-4", timeout=180)
        wait_until("five voters", lambda: voters(cluster) == [0, 1, 2, 3, 4], 180)
        for node in cluster.scale_nodes:
            wait_until(f"{node.name} ready", node.ready, 120)
        figures.append(f"3 -> 5 in {time.monotonic() - started:.1f}s")
        wait_acks(writer, 20, "writes with five voters")

        remaining = [0, 1, 2, 3, 4]
        for i in (4, 3):
            started = time.monotonic()
            proc = cluster.exec_keel(0, ["cluster", "decommission", str(i)], timeout=120)
            assert proc.returncode == 0, f"decommission {i}: {proc.stdout}\n{proc.stderr}"
            assert "marked its data directory decommissioned" in proc.stdout, proc.stdout
            assert f"decommissioning node {i}" in proc.stderr, proc.stderr
            remaining.remove(i)
            wait_until(f"voters {remaining}", lambda: voters(cluster) == remaining, 60)
            figures.append(f"decommission {i} in {time.monotonic() - started:.1f}s")
            # It stopped; Docker restarts it (restart: unless-stopped), and
            # every such start refuses its retired data directory.
            wait_until(
                f"keel-{i} refusing to start with its decommissioned data",
                lambda: "can never rejoin" in container_logs(cluster, i),
                90,
            )
            cluster.compose("rm", "-s", "-f", f"keel-{i}", timeout=120)
            wait_acks(writer, 20, f"writes after decommissioning {i}")
    check_writes(cluster, writer, "scaling 3 -> 5 -> 3 (" + ", ".join(figures) + ")")
    assert voters(cluster) == [0, 1, 2]
    cluster.wait_converged(timeout=60)
    report.line("scaling: " + ", ".join(figures))
