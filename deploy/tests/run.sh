#!/usr/bin/env bash
# Runs the deployment tests (called by scripts/test after the Rust tests):
#   - always: static checks of deploy/k8s (kubernetes-validate, strict, plus
#     cross-checks against keel's routes and config), the Dockerfiles and
#     the compose file; the API contract (schemathesis against a dev node
#     started from the debug binary, test_api_contract.py);
#   - when a Docker engine answers (`docker info`): the image checks, the
#     compose fault tests and the Kubernetes pod spec run on Docker.
# Python deps go into a venv ($KEEL_VENV, default $HOME/.cache/keel-venv),
# pinned by requirements.txt. Every container, network and volume the
# tests create is removed on exit, also on failure or timeout. The whole
# run is bounded by KEEL_DEPLOY_TEST_TIMEOUT seconds (default 840).
# Extra arguments go to pytest (e.g. -k partition).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="${KEEL_VENV:-$HOME/.cache/keel-venv}"
PROJECT="${KEEL_TEST_PROJECT:-keeltest}"
export KEEL_TEST_PROJECT="$PROJECT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/keel-target}"
export PYTHONDONTWRITEBYTECODE=1

# --- Python environment (reinstalled only when requirements.txt changes) ---
PYTHON="$(command -v python3.11 || command -v python3)"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.keel-deploy-requirements"
if ! cmp -s "$HERE/requirements.txt" "$stamp"; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
  cp "$HERE/requirements.txt" "$stamp"
fi

# --- Docker: present or not -------------------------------------------------
cleanup() {
  # Only what these tests made: their compose project's and labelled objects.
  local ids
  for filter in "label=com.docker.compose.project=$PROJECT" "label=keel.test=deploy-k8s"; do
    ids="$(docker ps -aq --filter "$filter" 2>/dev/null || true)"
    [ -n "$ids" ] && docker rm -f -v $ids >/dev/null 2>&1 || true
    ids="$(docker network ls -q --filter "$filter" 2>/dev/null || true)"
    [ -n "$ids" ] && docker network rm $ids >/dev/null 2>&1 || true
    ids="$(docker volume ls -q --filter "$filter" 2>/dev/null || true)"
    [ -n "$ids" ] && docker volume rm $ids >/dev/null 2>&1 || true
  done
  return 0
}

if timeout 30 docker info >/dev/null 2>&1; then
  export KEEL_DEPLOY_DOCKER=1
  trap cleanup EXIT
  cleanup
  echo "deploy tests: Docker engine answers: running the static checks and the compose fault tests"
else
  export KEEL_DEPLOY_DOCKER=0
  echo "deploy tests: NO Docker engine answers (docker info failed): the compose fault tests and"
  echo "deploy tests: image checks are SKIPPED; only the static checks (Kubernetes manifests,"
  echo "deploy tests: Dockerfiles, compose file) run"
fi

# --- pytest ----------------------------------------------------------------
cd "$HERE"
# pytest's own summary line ("N passed ... in Ns") is the last line printed;
# not exec'd, so the cleanup trap still runs, also after a timeout.
status=0
timeout --kill-after=30 "${KEEL_DEPLOY_TEST_TIMEOUT:-840}" \
  "$VENV/bin/python" -m pytest -rfEs "$@" || status=$?
exit "$status"
