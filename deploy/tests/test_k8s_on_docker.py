"""The Kubernetes pod spec run for real, on Docker: each StatefulSet pod is
emulated by a container built from the manifests (the ConfigMap's keel.toml,
the env with $(POD_NAME)/$(POD_NAMESPACE) expanded, the same args, user,
read-only root, volumes and stable DNS name keel-N.keel-peer.keel.svc.cluster.local
as a network alias). It checks what only running keel can: the config is
accepted, pods become ready on the readiness probe's path, members advertise
DNS names, and the README's scaling procedure 3 -> 5 -> 3 works with no
other manual step.

Docker objects carry the label keel.test=deploy-k8s and are removed after."""

import os
import re
import secrets
import subprocess
import time
from pathlib import Path

import pytest

import manifests as m
import report
from compose_cluster import IMAGE, free_port, run
from keelapi import Node
from waiting import wait_until

pytestmark = pytest.mark.docker

NAMESPACE = "keel"
LABEL = "keel.test=deploy-k8s"
PREFIX = "keeltest-k8s"


def remove_all() -> None:
    """Removes every container, volume and network this module made."""
    for kind, ls in (
        ("container", ["docker", "ps", "-aq"]),
        ("volume", ["docker", "volume", "ls", "-q"]),
        ("network", ["docker", "network", "ls", "-q"]),
    ):
        ids = run([*ls, "--filter", f"label={LABEL}"], timeout=30, check=False).stdout.split()
        if ids:
            rm = ["docker", "rm", "-f", "-v"] if kind == "container" else ["docker", kind, "rm"]
            run([*rm, *ids], timeout=120, check=False)


class Pods:
    """StatefulSet pods emulated as containers."""

    def __init__(self, workdir: Path):
        self.resources = m.load_k8s()
        self.sts = m.one(self.resources, "StatefulSet", "keel")
        self.pod = self.sts["spec"]["template"]["spec"]
        (self.container,) = self.pod["containers"]
        self.service = self.sts["spec"]["serviceName"]
        self.network = f"{PREFIX}-net"
        self.workdir = workdir
        self.ports: dict[int, int] = {}
        self.token = secrets.token_hex(32)
        self._files()
        run(["docker", "network", "create", "--label", LABEL, self.network], timeout=60)

    def _files(self) -> None:
        """The ConfigMap and Secret as the kubelet would mount them."""
        for vol in self.pod["volumes"]:
            target = self.workdir / vol["name"]
            target.mkdir(parents=True, exist_ok=True)
            if "configMap" in vol:
                cm = m.one(self.resources, "ConfigMap", vol["configMap"]["name"])
                for key, text in cm["data"].items():
                    (target / key).write_text(text)
            if "secret" in vol:
                sec = m.one(self.resources, "Secret", vol["secret"]["secretName"])
                # Real values, as an operator would put in before starting.
                for key in sec["stringData"]:
                    (target / key).write_text((self.token if key == "admin-token" else secrets.token_hex(32)) + "\n")
                    mode = vol["secret"].get("defaultMode", 0o644)
                    if os.geteuid() == 0:
                        os.chown(target / key, 0, self.pod["securityContext"]["fsGroup"])
                    else:
                        mode |= 0o004
                    os.chmod(target / key, mode)

    def env(self, ordinal: int) -> dict[str, str]:
        """The container env with field refs and $(VAR) expanded."""
        fields = {"metadata.name": f"keel-{ordinal}", "metadata.namespace": NAMESPACE}
        out: dict[str, str] = {}
        for item in self.container["env"]:
            if "value" in item:
                out[item["name"]] = re.sub(r"\$\((\w+)\)", lambda mm: out[mm.group(1)], item["value"])
            else:
                out[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
        return out

    def dns(self, ordinal: int) -> str:
        return f"keel-{ordinal}.{self.service}.{NAMESPACE}.svc.cluster.local"

    def start(self, ordinal: int) -> Node:
        sc = self.pod["securityContext"]
        csc = self.container["securityContext"]
        port = self.ports.setdefault(ordinal, free_port())
        cmd = [
            "docker", "run", "-d", "--label", LABEL,
            "--name", f"{PREFIX}-keel-{ordinal}",
            "--hostname", f"keel-{ordinal}",
            "--network", self.network, "--network-alias", self.dns(ordinal),
            "--user", f"{sc['runAsUser']}:{sc['runAsGroup']}", "--group-add", str(sc["fsGroup"]),
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "-p", f"127.0.0.1:{port}:{self.port('api')}",
        ]
        if csc.get("readOnlyRootFilesystem"):
            cmd.append("--read-only")
        volumes = {v["name"]: v for v in self.pod["volumes"]}
        claim = self.sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
        for mount in self.container["volumeMounts"]:
            name, path = mount["name"], mount["mountPath"]
            if name == claim:
                vol = f"{PREFIX}-{claim}-keel-{ordinal}"
                run(["docker", "volume", "create", "--label", LABEL, vol], timeout=30)
                cmd += ["-v", f"{vol}:{path}"]
            elif "emptyDir" in volumes[name]:
                cmd += ["--tmpfs", path]
            else:
                cmd += ["-v", f"{self.workdir / name}:{path}:ro"]
        for k, v in self.env(ordinal).items():
            cmd += ["-e", f"{k}={v}"]
        cmd += [IMAGE, *self.container["args"]]
        run(cmd, timeout=60)
        return self.node(ordinal)

    def port(self, name: str) -> int:
        return next(p["containerPort"] for p in self.container["ports"] if p["name"] == name)

    def node(self, ordinal: int) -> Node:
        return Node(f"keel-{ordinal}", self.ports[ordinal], self.token)

    def stop_and_delete(self, ordinal: int) -> tuple[float, int]:
        """Pod deleted by a scale-in: SIGTERM, grace period, then its claim
        goes too (persistentVolumeClaimRetentionPolicy whenScaled: Delete)."""
        grace = self.pod["terminationGracePeriodSeconds"]
        name = f"{PREFIX}-keel-{ordinal}"
        started = time.monotonic()
        run(["docker", "stop", "-t", str(grace), name], timeout=grace + 30)
        took = time.monotonic() - started
        code = int(run(["docker", "inspect", "-f", "{{.State.ExitCode}}", name], timeout=30).stdout.strip())
        run(["docker", "rm", "-v", name], timeout=60)
        claim = self.sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
        run(["docker", "volume", "rm", f"{PREFIX}-{claim}-keel-{ordinal}"], timeout=60)
        return took, code

    def probe(self, ordinal: int, probe: str) -> bool:
        path = self.container[probe]["httpGet"]["path"]
        return self.node(ordinal).request("GET", path, auth=False, timeout=3).status == 200


@pytest.fixture
def pods(request, keel_image, tmp_path):
    remove_all()
    p = Pods(tmp_path)
    yield p
    rep = getattr(request.node, "rep_call", None)
    if rep is None or rep.failed:
        for ordinal in p.ports:
            logs = run(["docker", "logs", "--tail", "40", f"{PREFIX}-keel-{ordinal}"], timeout=30, check=False)
            print(f"--- keel-{ordinal} ---\n{logs.stdout}{logs.stderr}")
    remove_all()


def voters(node: Node) -> list[dict]:
    view = node.cluster()
    return [x for x in (view or {}).get("members", []) if x["role"] == "voter"]


def test_statefulset_pods_form_scale_out_and_in(pods: Pods):
    replicas = pods.sts["spec"]["replicas"]
    budget = min(180, pods.container["startupProbe"]["periodSeconds"] * pods.container["startupProbe"]["failureThreshold"])

    started = time.monotonic()
    for i in range(replicas):
        pods.start(i)
    for i in range(replicas):
        wait_until(f"keel-{i} passes its startup probe", lambda: pods.probe(i, "startupProbe"), budget)
    for i in range(replicas):
        wait_until(f"keel-{i} passes its readiness probe", lambda: pods.probe(i, "readinessProbe"), budget)
    formed = time.monotonic() - started
    assert all(pods.probe(i, "livenessProbe") for i in range(replicas))

    members = voters(pods.node(0))
    assert sorted(x["id"] for x in members) == list(range(replicas))
    for x in members:
        assert x["peer_addr"] == f"{pods.dns(x['id'])}:{pods.port('peer')}"
        assert x["api_addr"] == f"{pods.dns(x['id'])}:{pods.port('api')}"

    # Scale out to 5: the new ordinals are beyond the peer list and join.
    started = time.monotonic()
    for i in (3, 4):
        pods.start(i)
    for i in (3, 4):
        wait_until(f"keel-{i} joins and is ready", lambda: pods.probe(i, "readinessProbe"), budget)
    wait_until("five voters", lambda: len(voters(pods.node(0))) == 5, 120)
    scaled_out = time.monotonic() - started
    r = pods.node(4).grant("k8s-at-five", idempotency_key="k8s-at-five")
    assert r.status == 201, (r.status, r.body)
    lease_id = r.body["id"]

    # Scale in to 3 as the README says: remove the highest member, then
    # delete its pod (and claim); one at a time.
    started = time.monotonic()
    stops = []
    for i in (4, 3):
        removed = pods.node(0).request("DELETE", f"/v1/cluster/members/{i}", timeout=60)
        assert removed.status == 200, (removed.status, removed.body)
        took, code = pods.stop_and_delete(i)
        stops.append(f"keel-{i} stopped in {took:.1f}s exit {code}")
        assert code == 0
    wait_until(
        "three voters, all ready",
        lambda: len(voters(pods.node(0))) == 3 and all(pods.probe(i, "readinessProbe") for i in range(3)),
        60,
    )
    scaled_in = time.monotonic() - started
    for i in range(replicas):
        got = pods.node(i).get_lease(lease_id)
        assert got.status == 200, (i, got.status, got.body)
    report.line(
        f"k8s pod spec on docker: 3 pods ready in {formed:.1f}s; 3 -> 5 (joined unaided) in {scaled_out:.1f}s; "
        f"5 -> 3 (remove member, delete pod+claim) in {scaled_in:.1f}s ({'; '.join(stops)})"
    )
