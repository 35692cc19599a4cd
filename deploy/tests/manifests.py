"""Reading what the static checks compare: the Kubernetes manifests, keel's
own sources (routes, config keys) and its API contract."""

import re
import tomllib
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent.parent
REPO = DEPLOY.parent
K8S = DEPLOY / "k8s"


def load_k8s() -> list[tuple[str, dict]]:
    """(file name, resource) for every resource the kustomization lists."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    out = []
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text()):
            if doc:
                out.append((name, doc))
    return out


def one(resources: list[tuple[str, dict]], kind: str, name: str | None = None) -> dict:
    found = [r for _, r in resources if r["kind"] == kind and (name is None or r["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def router_paths() -> set[str]:
    """Paths keel's API router serves (web/src/router.rs)."""
    text = (REPO / "web" / "src" / "router.rs").read_text()
    return set(re.findall(r'\.route\(\s*"([^"]+)"', text))


def api_md_paths() -> set[str] | None:
    """Paths the API contract lists (shared/API.md beside the repository),
    or None when the contract is not on this machine."""
    for candidate in (REPO.parent / "shared" / "API.md", Path("/work/shared/API.md")):
        if candidate.is_file():
            return set(re.findall(r"\|\s*(?:GET|POST|PATCH|DELETE|PUT)[^`|]*`([^`]+)`", candidate.read_text()))
    return None


def config_file_keys() -> set[str]:
    """Keys `keel server --config FILE` accepts: the fields of `ServerArgs`
    (node/src/cli.rs), which the file deserializes into, less those marked
    `#[serde(skip)]`."""
    text = (REPO / "node" / "src" / "cli.rs").read_text()
    body = text[text.index("pub struct ServerArgs") :]
    body = body[: body.index("\n}")]
    keys, skip = set(), False
    for line in body.splitlines()[1:]:
        line = line.strip()
        if line.startswith("#[serde(skip"):
            skip = True
        m = re.match(r"pub (\w+): ", line)
        if m:
            if not skip:
                keys.add(m.group(1))
            skip = False
    return keys


def seconds(duration: str | int) -> float:
    """keel's duration syntax: integer seconds, or `500ms`, `30s`, `5m`, `1h`."""
    if isinstance(duration, int):
        return float(duration)
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", duration.strip())
    assert m, f"not a duration: {duration!r}"
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    return int(m.group(1)) * scale


def keel_toml(resources: list[tuple[str, dict]]) -> dict:
    """The keel.toml the ConfigMap carries, parsed."""
    cm = one(resources, "ConfigMap", "keel-config")
    return tomllib.loads(cm["data"]["keel.toml"])
