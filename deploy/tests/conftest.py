"""Fixtures of the deployment tests.

- The static checks (Kubernetes manifests, Dockerfiles, compose file) need
  nothing but Python and always run.
- The compose fault tests need a Docker engine: they are skipped, with the
  reason printed, when none answers. Each test gets a fresh three-node
  cluster (its own secrets, loopback ports and volumes) and tears it down,
  volumes included, whatever the outcome.
- The figures the tests measured are printed at the end of the run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402

DEPLOY = Path(__file__).resolve().parent.parent
PROJECT = os.environ.get("KEEL_TEST_PROJECT", "keeltest")


def docker_answers() -> bool:
    """`docker info` succeeds (KEEL_DEPLOY_DOCKER=0/1 from run.sh decides)."""
    decided = os.environ.get("KEEL_DEPLOY_DOCKER")
    if decided is not None:
        return decided == "1"
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Lets fixtures see whether their test failed (for diagnostics)."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


def pytest_terminal_summary(terminalreporter):
    if report.LINES:
        terminalreporter.section("keel deployment figures")
        for text in report.LINES:
            terminalreporter.write_line(text)


@pytest.fixture(scope="session")
def docker_engine():
    if not docker_answers():
        pytest.skip("no Docker engine answers (`docker info` failed): Docker tests skipped")


@pytest.fixture(scope="session")
def keel_image(docker_engine):
    """keel:local, built once per run from the local debug binary."""
    if os.environ.get("KEEL_TEST_IMAGE"):
        return os.environ["KEEL_TEST_IMAGE"]
    subprocess.run([str(DEPLOY / "docker" / "build-local.sh")], check=True, timeout=600)
    return "keel:local"


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    """Fresh admin token and cluster secret files for one cluster."""
    d = tmp_path / "secrets"
    env = dict(os.environ, KEEL_SECRETS_DIR=str(d))
    subprocess.run([str(DEPLOY / "compose" / "secrets.sh")], check=True, timeout=30, env=env, capture_output=True)
    return d


@pytest.fixture
def cluster_factory(request, keel_image, secrets_dir):
    """Makes the test's compose cluster (not started) and always removes
    it afterwards, printing its logs first if the test failed."""
    from compose_cluster import ComposeCluster

    made: list[ComposeCluster] = []

    def make(subnet: str | None = None) -> ComposeCluster:
        c = ComposeCluster(PROJECT, secrets_dir, subnet=subnet)
        c.down()  # anything a crashed earlier run left behind
        made.append(c)
        return c

    yield make
    for c in made:
        failed = getattr(request.node, "rep_call", None)
        if failed is None or failed.failed:
            print(f"--- logs of {c.project} ---\n{c.logs()}")
        c.down(volumes=True)


@pytest.fixture
def cluster(request, cluster_factory):
    """A started, converged three-node cluster; reports how long `up` took."""
    c = cluster_factory()
    took = c.up()
    report.line(f"{request.node.name}: compose cluster ready {took:.1f}s after `up` (3 nodes ready, one leader)")
    return c
