"""Fault tests of the three-node docker compose cluster.

Each test starts from a fresh converged cluster (conftest.py) and checks
one failure: every node serving reads and writes, the leader killed, the
leader partitioned, a rolling restart, and containers recreated with new
IP addresses. Tests that write under a fault run a continuous writer
(writer.py) and report: writes attempted, acknowledged, lost (must be 0),
and the longest window without an acknowledged write."""

import ipaddress
import time

import pytest

import report
from compose_cluster import SERVICES, ComposeCluster, pick_subnets
from waiting import wait_until
from writer import Writer, find_lost

pytestmark = pytest.mark.docker


def check_writes(cluster: ComposeCluster, writer: Writer, label: str) -> None:
    """Every acknowledged write is on every node, once; no 5xx but 503s with
    Retry-After. Reports the writer's figures."""
    s = writer.stats
    found = find_lost(cluster.nodes, s.acknowledged, writer.prefix)
    report.line(writer.report(label, lost=len(found["lost"])))
    assert s.acknowledged, f"{label}: no write was acknowledged at all"
    assert not found["lost"], f"{label}: acknowledged writes lost: {found['lost'][:10]}"
    assert not found["duplicates"], f"{label}: writes applied twice: {found['duplicates'][:10]}"
    assert not found["behind"], f"{label}: nodes never caught up: {found['behind']}"
    assert not s.defects, f"{label}: unexpected answers: {s.defects[:10]}"


def wait_acks(writer: Writer, more: int, what: str, timeout: float = 60) -> None:
    """Waits until the writer has `more` acknowledgements beyond now."""
    target = writer.acked_count() + more
    wait_until(what, lambda: writer.acked_count() >= target, timeout)


def test_every_node_serves_reads_and_writes(cluster: ComposeCluster):
    written: dict[str, str] = {}
    for node in cluster.nodes:
        for n in range(5):
            name = f"rw-{node.name}-{n}"
            r = node.grant(name, idempotency_key=name)
            assert r.status == 201, f"write through {node.name}: {r.status} {r.error or r.body}"
            written[name] = r.body["id"]
    for node in cluster.nodes:
        for name, lease_id in written.items():
            r = node.get_lease(lease_id)
            assert r.status == 200, f"read {name} from {node.name}: {r.status} {r.error or r.body}"
            assert r.body["name"] == name and r.body["id"] == lease_id
    # Followers also hold them locally (replicated, not only readable via the leader).
    found = find_lost(cluster.nodes, written, "rw-", timeout=30)
    assert not found["lost"] and not found["behind"] and not found["duplicates"], found
    report.line(f"read/write: {len(written)} writes through 3 nodes, each read back from all 3")


def test_leader_killed(cluster: ComposeCluster):
    old = cluster.leader()
    assert old is not None
    with Writer(cluster.nodes, "kill") as writer:
        wait_acks(writer, 20, "writes before the kill")
        killed_at = time.monotonic()
        cluster.kill(old)
        survivors = [i for i in range(len(SERVICES)) if i != old]
        new = wait_until(
            "a new leader among the survivors",
            lambda: (lambda l: l if l is not None and l != old else None)(cluster.agreed(survivors)),
            60,
        )
        elected = time.monotonic() - killed_at
        wait_acks(writer, 20, "writes continue after the kill")
        cluster.start(old)
        cluster.wait_ready(old, timeout=120)
        wait_acks(writer, 20, "writes continue with the old leader back")
    check_writes(cluster, writer, f"leader kill (node {old} SIGKILLed, node {new} elected in {elected:.2f}s)")
    cluster.wait_converged(timeout=60)


def test_leader_partitioned(cluster: ComposeCluster):
    old = cluster.leader()
    assert old is not None
    majority = [i for i in range(len(SERVICES)) if i != old]
    # The writer uses only the majority's ports: the isolated node's
    # published port is gone with its network anyway.
    with Writer([cluster.nodes[i] for i in majority], "part") as writer:
        wait_acks(writer, 20, "writes before the partition")
        cut_at = time.monotonic()
        cluster.disconnect(old)
        new = wait_until(
            "the majority elects a new leader",
            lambda: (lambda l: l if l is not None and l != old else None)(cluster.agreed(majority)),
            60,
        )
        elected = time.monotonic() - cut_at
        wait_acks(writer, 20, "the majority keeps acknowledging writes")
        # The isolated node must acknowledge nothing (it may still think it
        # leads; a write there can never reach a quorum).
        isolated = []
        for n in range(2):
            proc = cluster.exec_keel(old, ["lease", "grant", "--ttl", "1h", "--name", f"iso-{n}"], timeout=40)
            isolated.append(proc)
        isolated_ready = cluster.exec_keel(old, ["health"], timeout=20).returncode == 0
        cluster.connect(old)
        healed_at = time.monotonic()
        cluster.wait_converged(timeout=90)
        converged = time.monotonic() - healed_at
        wait_acks(writer, 20, "writes continue after healing")
    acked_by_isolated = [p.stdout.strip() for p in isolated if p.returncode == 0]
    refusals = "; ".join((p.stderr.strip() or p.stdout.strip()).splitlines()[-1] for p in isolated if p.returncode)
    report.line(
        f"partition: isolated node {old} acknowledged {len(acked_by_isolated)} of {len(isolated)} writes "
        f"(answers: {refusals}); its /readyz while isolated: {'200' if isolated_ready else 'not 200'}; "
        f"majority elected node {new} in {elected:.2f}s; converged {converged:.1f}s after healing"
    )
    assert not acked_by_isolated, f"split brain: the isolated node acknowledged {acked_by_isolated}"
    stray = cluster.nodes[new].list_leases("iso-")
    assert not stray, f"writes refused by the isolated node were applied after healing: {stray}"
    check_writes(cluster, writer, f"leader partition (node {old} cut off, node {new} elected)")


def test_rolling_restart(cluster: ComposeCluster):
    stops = []
    with Writer(cluster.nodes, "roll") as writer:
        wait_acks(writer, 20, "writes before the rolling restart")
        # Highest ordinal first, as the StatefulSet controller does.
        for i in reversed(range(len(SERVICES))):
            took, code = cluster.stop(i, grace=45)
            stops.append(f"node {i} stopped in {took:.1f}s exit {code}")
            assert code == 0, f"node {i} exited {code} on SIGTERM (not a clean stop)"
            wait_acks(writer, 5, f"writes continue with node {i} down")
            cluster.start(i)
            cluster.wait_ready(i, timeout=120)
            wait_until("all three nodes ready", lambda: all(n.ready() for n in cluster.nodes), 60)
        wait_acks(writer, 20, "writes after the rolling restart")
    report.line("rolling restart: " + "; ".join(stops))
    check_writes(cluster, writer, "rolling restart (3 nodes, one at a time, SIGTERM)")
    cluster.wait_converged(timeout=60)


@pytest.mark.parametrize(
    "remove_first",
    [
        pytest.param(True, id="removed-first"),
        pytest.param(False, id="still-a-member"),
    ],
)
def test_node_with_wiped_volume_rejoins(cluster: ComposeCluster, remove_first: bool):
    """A node whose data is lost (new empty volume, same host name) joins
    again. `removed-first` is the documented procedure (`keel cluster
    remove N` first); `still-a-member` is the unaided case."""
    old = cluster.leader()
    wiped = next(i for i in range(len(SERVICES)) if i != old)
    with Writer(cluster.nodes, "wipe") as writer:
        wait_acks(writer, 20, "writes before the wipe")
        started = time.monotonic()
        if remove_first:
            r = cluster.nodes[old].request("DELETE", f"/v1/cluster/members/{wiped}", timeout=60)
            assert r.status == 200, (r.status, r.body)
        cluster.replace_with_empty_volume(wiped)
        cluster.wait_ready(wiped, timeout=120)
        wait_until("three voters again", lambda: len(voters(cluster.nodes[old])) == 3, 120)
        rejoined = time.monotonic() - started
        wait_acks(writer, 20, "writes after the wiped node rejoined")
    how = "removed, then" if remove_first else "still a member,"
    check_writes(cluster, writer, f"node {wiped} {how} recreated with an empty volume (ready again in {rejoined:.1f}s)")
    cluster.wait_converged(timeout=60)


def voters(node) -> list[int]:
    view = node.cluster() or {}
    return sorted(x["id"] for x in view.get("members", []) if x["role"] == "voter")


def test_new_ip_addresses(cluster_factory):
    first, second = pick_subnets(2)
    cluster = cluster_factory(subnet=first)
    cluster.up()
    ids_before = {cluster.nodes[i].cluster()["cluster_id"] for i in range(3)}
    ips_before = [cluster.ip(i) for i in range(3)]

    # The leader re-attached at a new address while the others run: the
    # others must resolve its name anew to reach it.
    moved = cluster.leader()
    assert moved is not None
    new_ip = str(ipaddress.IPv4Network(first).network_address + 200)
    with Writer(cluster.nodes, "reip") as writer:
        wait_acks(writer, 20, "writes before re-addressing")
        cluster.disconnect(moved)
        cluster.connect(moved, ip=new_ip)
        assert cluster.ip(moved) == new_ip
        cluster.wait_converged(timeout=90)
        wait_acks(writer, 20, "writes after re-addressing")
    check_writes(cluster, writer, f"leader (node {moved}) re-addressed ({ips_before[moved]} -> {new_ip})")

    # Every container recreated on another subnet, data volumes kept.
    cluster.compose("down", "--timeout", "45", timeout=240)
    cluster.subnet = second
    took = cluster.up("--force-recreate")
    ips_after = [cluster.ip(i) for i in range(3)]
    assert all(a != b for a, b in zip(ips_before, ips_after)), (ips_before, ips_after)
    assert {cluster.nodes[i].cluster()["cluster_id"] for i in range(3)} == ids_before, "a new cluster was formed"
    found = find_lost(cluster.nodes, writer.stats.acknowledged, "reip", timeout=60)
    assert not found["lost"] and not found["behind"], found
    r = cluster.nodes[0].grant("reip-after", idempotency_key="reip-after")
    assert r.status == 201, (r.status, r.error or r.body)
    report.line(
        f"recreated on new subnet {first} -> {second}: IPs {ips_before} -> {ips_after}; "
        f"same cluster, ready {took:.1f}s after `up --force-recreate`, "
        f"{len(writer.stats.acknowledged)} earlier writes all present, no manual step"
    )
