"""Online backup and restore of the compose cluster with
deploy/compose/backup.sh and restore.sh (`keel operator snapshot save` and
`restore`), as deploy/README.md describes.

A snapshot is saved while a writer keeps writing; the cluster is then
destroyed with its volumes, a fresh one (a new cluster id) is brought up,
and the snapshot is restored into it with --force. Every write
acknowledged before the save began must be on every node of the new
cluster, nothing that was never acknowledged may appear, and the new
cluster keeps its own id and takes writes."""

import json
import os
import time

import pytest

import report
from compose_cluster import IMAGE, ComposeCluster, run
from writer import Writer, find_lost

pytestmark = pytest.mark.docker


def inspect(file) -> dict:
    """`keel operator snapshot inspect --json` in a throwaway container
    (as the calling user: the file is private to its owner)."""
    proc = run(
        [
            "docker", "run", "--rm", "--network", "none", "--user", f"{os.getuid()}:{os.getgid()}",
            "-v", f"{file.parent}:/backup:ro",
            IMAGE, "operator", "snapshot", "inspect", f"/backup/{file.name}", "--json",
        ],
        timeout=60,
    )
    return json.loads(proc.stdout)


def test_online_backup_under_load_restored_into_a_fresh_cluster(cluster: ComposeCluster, tmp_path):
    old_id = cluster.nodes[0].cluster()["cluster_id"]
    file = tmp_path / "backup" / "keel.snap"
    with Writer(cluster.nodes, "snap") as writer:
        target = writer.acked_count() + 30
        while writer.acked_count() < target:
            time.sleep(0.05)
        save_started = time.monotonic()
        save_took = cluster.script("backup.sh", str(file))
        during_save = writer.stats.acks_between(save_started, time.monotonic())
        target = writer.acked_count() + 10
        while writer.acked_count() < target:
            time.sleep(0.05)
    stats = writer.stats
    names = list(stats.acknowledged)
    before_save = {n: stats.acknowledged[n] for n, t in zip(names, stats.ack_times) if t < save_started}
    assert before_save, "no write was acknowledged before the save"
    header = inspect(file)
    assert header["checksum"].startswith("ok"), header
    assert header["cluster_id"] == old_id, header
    assert len(before_save) <= header["leases"] <= len(stats.acknowledged), (len(before_save), header)

    cluster.down(volumes=True)
    fresh_took = cluster.up()
    new_id = cluster.nodes[0].cluster()["cluster_id"]
    assert new_id != old_id, "down -v and up made the same cluster"
    restore_took = cluster.script("restore.sh", str(file), "--force")

    found = find_lost(cluster.nodes, before_save, "snap", timeout=60)
    assert not found["lost"], f"acknowledged before the snapshot, missing after the restore: {found['lost'][:10]}"
    assert not found["behind"], f"nodes without the restored writes: {found['behind']}"
    assert not found["duplicates"], found["duplicates"][:10]
    restored = {item["name"]: item["id"] for item in cluster.nodes[1].list_leases("snap")}
    assert len(restored) == header["leases"], (len(restored), header["leases"])
    unknown = set(restored) - set(stats.acknowledged) - {f"snap-{n:06d}" for n in range(stats.attempted)}
    assert not unknown, f"restored writes nobody attempted: {sorted(unknown)[:10]}"
    assert all(stats.acknowledged.get(n, i) == i for n, i in restored.items()), "a lease came back with another id"
    assert {cluster.nodes[i].cluster()["cluster_id"] for i in range(3)} == {new_id}
    r = cluster.nodes[2].grant("after-restore", idempotency_key="after-restore")
    assert r.status == 201, (r.status, r.error or r.body)
    report.line(
        f"online backup/restore: snapshot saved in {save_took:.1f}s while {during_save} writes were acknowledged "
        f"(index {header['index']}, {header['leases']} leases, {file.stat().st_size} bytes); "
        f"fresh cluster ready {fresh_took:.1f}s; restore --force {restore_took:.1f}s; "
        f"{len(before_save)} writes acknowledged before the save all on 3 nodes, none lost"
    )
