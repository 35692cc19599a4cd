#!/usr/bin/env bash
# Creates the compose cluster's secret files when they are missing:
# admin-token (one token per line), cluster-secret and unseal-key (the
# auto-unseal key every node derives the root key from), 64 random hex
# characters each, in $KEEL_SECRETS_DIR (default deploy/compose/secrets).
# Existing files are kept: replacing the cluster secret of a running
# cluster locks its nodes out of each other.
set -euo pipefail
DIR="${KEEL_SECRETS_DIR:-$(cd "$(dirname "$0")" && pwd)/secrets}"
mkdir -p "$DIR"
chmod 0700 "$DIR"
for name in admin-token cluster-secret unseal-key; do
  f="$DIR/$name"
  if [ ! -s "$f" ]; then
    od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$f"
    echo >>"$f"
    # Readable inside the container by keel's non-root uid (compose mounts
    # the file as it is); the directory above stays private on the host.
    chmod 0644 "$f"
    echo "secrets: created $f"
  fi
done
