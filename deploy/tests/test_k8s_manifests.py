"""Static checks of deploy/k8s (no cluster, no Docker): the manifests are
valid Kubernetes objects (kubernetes-validate, strict), and they agree with
each other and with keel where schemas cannot tell: selectors, service
names, ports, probe paths, peer names, config keys, grace period."""

import re

import kubernetes_validate
import pytest

import manifests as m

RESOURCES = m.load_k8s()
# The oldest Kubernetes these manifests target (persistentVolumeClaimRetentionPolicy
# is GA from 1.32) and the newest the validator knows.
VERSIONS = ["1.32.0", kubernetes_validate.latest_version()]


def sts() -> dict:
    return m.one(RESOURCES, "StatefulSet", "keel")


def pod_spec() -> dict:
    return sts()["spec"]["template"]["spec"]


def container() -> dict:
    (c,) = [c for c in pod_spec()["containers"] if c["name"] == "keel"]
    return c


def env() -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container()["env"]}


def container_port(ref) -> int:
    """A port reference (name or number) resolved against the container."""
    for p in container()["ports"]:
        if ref in (p["name"], p["containerPort"]):
            return p["containerPort"]
    raise AssertionError(f"port {ref!r} is not a container port of keel")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: f"{r[0]}:{r[1]['kind']}/{r[1]['metadata']['name']}")
def test_manifest_is_valid_strict(resource, version):
    _, obj = resource
    kubernetes_validate.validate(obj, version, strict=True)


def test_kustomization_lists_every_manifest():
    listed = {name for name, _ in RESOURCES}
    on_disk = {p.name for p in m.K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


def test_statefulset_shape():
    spec = sts()["spec"]
    assert spec["replicas"] == 3
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["volumeClaimTemplates"], "data must live on per-pod claims"
    claim = spec["volumeClaimTemplates"][0]["metadata"]["name"]
    mounts = {v["name"]: v["mountPath"] for v in container()["volumeMounts"]}
    assert mounts.get(claim) == m.keel_toml(RESOURCES)["data_dir"], "the claim must be mounted at data_dir"


def test_selectors_match_pod_labels():
    labels = sts()["spec"]["template"]["metadata"]["labels"]
    selectors = {"StatefulSet": sts()["spec"]["selector"]["matchLabels"]}
    for _, r in RESOURCES:
        if r["kind"] == "Service":
            selectors[f"Service/{r['metadata']['name']}"] = r["spec"]["selector"]
        if r["kind"] == "PodDisruptionBudget":
            selectors[f"PDB/{r['metadata']['name']}"] = r["spec"]["selector"]["matchLabels"]
    for who, sel in selectors.items():
        assert sel, f"{who} selects everything"
        assert all(labels.get(k) == v for k, v in sel.items()), f"{who} selector {sel} misses pod labels {labels}"


def test_headless_peer_service():
    name = sts()["spec"]["serviceName"]
    svc = m.one(RESOURCES, "Service", name)
    assert svc["spec"]["clusterIP"] == "None", "serviceName must name a headless Service"
    assert svc["spec"]["publishNotReadyAddresses"] is True, "peers must resolve before they are ready"
    clients = [r for _, r in RESOURCES if r["kind"] == "Service" and r["spec"].get("clusterIP") != "None"]
    assert clients, "a client Service is missing"


def test_service_ports_match_container_ports():
    cfg = m.keel_toml(RESOURCES)
    api_port = int(cfg["api_listen"].rsplit(":", 1)[1])
    peer_port = int(cfg["peer_listen"].rsplit(":", 1)[1])
    assert container_port("api") == api_port
    assert container_port("peer") == peer_port
    for _, r in RESOURCES:
        if r["kind"] != "Service":
            continue
        for p in r["spec"]["ports"]:
            target = container_port(p.get("targetPort", p["port"]))
            assert target in (api_port, peer_port), f"Service {r['metadata']['name']} port {p}"


def test_probes_use_served_paths():
    served = m.router_paths()
    documented = m.api_md_paths()
    c = container()
    expected = {"readinessProbe": "/readyz", "livenessProbe": "/livez"}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert probe in c, f"{probe} missing"
        get = c[probe]["httpGet"]
        path = get["path"]
        if probe in expected:
            assert path == expected[probe]
        assert path in served, f"{probe} path {path} is not a route of web/src/router.rs"
        if documented is not None:
            assert path in documented, f"{probe} path {path} is not in API.md"
        assert container_port(get["port"]) == container_port("api")


def test_grace_period_exceeds_shutdown_timeout():
    timeout = m.seconds(m.keel_toml(RESOURCES).get("shutdown_timeout", "30s"))
    grace = pod_spec()["terminationGracePeriodSeconds"]
    # The drain deadline, plus the managers' stop and the leader hand-off.
    assert grace >= timeout + 15, f"terminationGracePeriodSeconds {grace} vs shutdown_timeout {timeout}s"


def test_runs_as_non_root_with_resources():
    sc = pod_spec()["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0
    assert container()["securityContext"]["allowPrivilegeEscalation"] is False
    res = container()["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(res[kind]), f"resources.{kind} must set cpu and memory"


def test_config_file_keys_are_known():
    unknown = set(m.keel_toml(RESOURCES)) - m.config_file_keys()
    assert not unknown, f"keel.toml keys keel does not know: {unknown}"
    assert "node_id" not in m.keel_toml(RESOURCES), "node_id must come from the pod ordinal"


def test_secret_files_exist_in_secret():
    cfg = m.keel_toml(RESOURCES)
    mounts = {v["name"]: v["mountPath"] for v in container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    for key in ("admin_token_file", "cluster_secret_file", "unseal_key_file"):
        path = cfg[key]
        (volume,) = [n for n, mp in mounts.items() if path.startswith(mp.rstrip("/") + "/")]
        secret = m.one(RESOURCES, "Secret", volumes[volume]["secret"]["secretName"])
        item = path.rsplit("/", 1)[1]
        value = secret["stringData"][item]
        # Placeholders only, and ones keel refuses (whitespace), so nobody
        # runs a cluster on a token published in the repository.
        assert value.startswith("REPLACE ME") and re.search(r"\s", value), f"{item}: not a refused placeholder"


def test_config_mount_matches_args():
    args = container()["args"]
    config_path = args[args.index("--config") + 1]
    mounts = {v["name"]: v["mountPath"] for v in container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    (volume,) = [n for n, mp in mounts.items() if config_path.startswith(mp.rstrip("/") + "/")]
    assert volumes[volume]["configMap"]["name"] == "keel-config"
    assert config_path.endswith("/keel.toml")


def test_peers_are_stable_dns_names():
    e = env()
    names = [x["name"] for x in container()["env"]]
    service = sts()["spec"]["serviceName"]
    peer_port = container_port("peer")
    entries = dict(p.split("=", 1) for p in e["KEEL_PEERS"].split(","))
    assert sorted(int(i) for i in entries) == list(range(sts()["spec"]["replicas"]))
    for ordinal, addr in entries.items():
        want = f"{sts()['metadata']['name']}-{ordinal}.{service}.$(POD_NAMESPACE).svc.cluster.local:{peer_port}"
        assert addr == want
    assert e["KEEL_ADVERTISE_PEER"] == f"$(POD_NAME).{service}.$(POD_NAMESPACE).svc.cluster.local:{peer_port}"
    assert e["KEEL_ADVERTISE_API"].endswith(f":{container_port('api')}")
    # $(VAR) expands only variables defined earlier in the list.
    for i, item in enumerate(container()["env"]):
        for ref in re.findall(r"\$\((\w+)\)", item.get("value") or ""):
            assert ref in names[:i], f"{item['name']} uses $({ref}) before it is defined"
    assert "KEEL_NODE_ID" not in e, "the node id must come from the pod ordinal"


def test_pdb_keeps_quorum():
    pdb = m.one(RESOURCES, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
