"""The locally built image (keel:local) as Docker sees it: non-root, data
volume, ports, health check, stop signal; and it starts read-only."""

import json
import subprocess

import pytest

pytestmark = pytest.mark.docker


def test_image_config(keel_image):
    out = subprocess.run(["docker", "image", "inspect", keel_image], capture_output=True, text=True, timeout=30, check=True)
    cfg = json.loads(out.stdout)[0]["Config"]
    assert cfg["User"].split(":")[0] not in ("", "0", "root")
    assert "/data" in cfg["Volumes"]
    assert {"7400/tcp", "7401/tcp"} <= set(cfg["ExposedPorts"])
    assert cfg["Healthcheck"]["Test"] == ["CMD", "/usr/local/bin/keel", "health"]
    assert cfg["StopSignal"] == "SIGTERM"
    assert cfg["Entrypoint"] == ["/usr/local/bin/keel"]


def test_image_runs_the_cli(keel_image):
    out = subprocess.run(
        ["docker", "run", "--rm", "--read-only", "--network", "none", keel_image, "--version"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0 and "keel" in out.stdout, out.stderr
