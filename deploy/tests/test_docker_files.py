"""Static checks of the image and compose definitions (no Docker needed):
what a reviewer would check by eye, kept true by a test."""

import re

import yaml

from manifests import DEPLOY, seconds

DOCKERFILE = (DEPLOY / "docker" / "Dockerfile").read_text()
LOCAL_DOCKERFILE = (DEPLOY / "docker" / "local.Dockerfile").read_text()
BUILD_LOCAL = (DEPLOY / "docker" / "build-local.sh").read_text()
COMPOSE = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())


def instructions(text: str) -> list[str]:
    """Dockerfile instructions with continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [l.strip() for l in joined.splitlines() if l.strip() and not l.strip().startswith("#")]


def test_dockerfile_is_multi_stage_non_root_with_healthcheck():
    ins = instructions(DOCKERFILE)
    froms = [i for i in ins if i.startswith("FROM ")]
    assert len(froms) == 2 and "rust:" in froms[0] and "bookworm-slim" in froms[1]
    assert any("libclang-dev" in i for i in ins)
    runtime = ins[ins.index(froms[1]) :]
    user = [i for i in runtime if i.startswith("USER ")]
    assert user and user[-1].split()[1].split(":")[0] not in ("0", "root")
    assert any(i.startswith("HEALTHCHECK") and "keel" in i and "health" in i for i in runtime)
    assert "STOPSIGNAL SIGTERM" in runtime
    assert any(i.startswith("VOLUME") and "/data" in i for i in runtime)
    assert any(i.startswith("EXPOSE") and "7400" in i and "7401" in i for i in runtime)


def test_local_image_matches_dockerfile():
    """build-local.sh + local.Dockerfile set what the Dockerfile sets."""
    local = instructions(LOCAL_DOCKERFILE)
    assert any(i.startswith("HEALTHCHECK") and "keel" in i and "health" in i for i in local)
    assert "STOPSIGNAL SIGTERM" in local
    assert "KEEL_UID=10001" in BUILD_LOCAL
    for change in ("USER $KEEL_UID", "VOLUME /data", "EXPOSE 7400 7401", "ENTRYPOINT", "WORKDIR /data"):
        assert change in BUILD_LOCAL, f"build-local.sh does not set {change}"
    assert "useradd --system --uid 10001" in DOCKERFILE
    assert "--release" not in BUILD_LOCAL.replace("never --release", "")


def test_compose_three_named_nodes():
    services = COMPOSE["services"]
    assert sorted(services) == ["keel-0", "keel-1", "keel-2", "keel-3", "keel-4"]
    default = sorted(name for name, svc in services.items() if not svc.get("profiles"))
    assert default == ["keel-0", "keel-1", "keel-2"], "`up -d` starts three nodes"
    for name in ("keel-3", "keel-4"):
        assert services[name]["profiles"] == ["scale"], f"{name} only when scaling out"
    for name, svc in services.items():
        assert svc["hostname"] == name, "keel takes its node id from the host name"
        env = svc["environment"]
        peers = dict(p.split("=", 1) for p in env["KEEL_PEERS"].split(","))
        assert peers == {str(i): f"keel-{i}:7401" for i in range(3)}, "peers by name, never by IP"
        vols = [v.split(":") for v in svc["volumes"]]
        assert [v[1] for v in vols] == ["/data"] and vols[0][0] in COMPOSE["volumes"], "named volume at /data"
        hc = svc["healthcheck"]["test"]
        assert hc[0] == "CMD" and hc[1].endswith("/keel") and hc[2] == "health"
        grace = seconds(svc["stop_grace_period"])
        assert grace > seconds(env["KEEL_SHUTDOWN_TIMEOUT"]) + 10, "stop_grace_period must exceed the drain"
        assert set(svc["secrets"]) == {"keel_admin_token", "keel_cluster_secret", "keel_unseal_key"}
        assert env["KEEL_ADMIN_TOKEN_FILE"] == "/run/secrets/keel_admin_token"
        assert env["KEEL_CLUSTER_SECRET_FILE"] == "/run/secrets/keel_cluster_secret"
        assert env["KEEL_UNSEAL_KEY_FILE"] == "/run/secrets/keel_unseal_key"
        for port in svc["ports"]:
            assert port.startswith("${KEEL_BIND:-127.0.0.1}:"), "publish on loopback by default"
