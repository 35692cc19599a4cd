#!/usr/bin/env bash
# Restores a backup.sh snapshot into the running compose cluster:
# `keel operator snapshot restore` verifies FILE (a corrupt or truncated
# one is refused before anything changes), uploads it, and the cluster
# replaces its state through Raft, on every node at the same log index.
# Everything written after the snapshot is gone; writes after the restore
# stay. A snapshot of another cluster (say, the cluster that was lost,
# restored into a new one) needs --force; the cluster keeps its own id.
# Usage: deploy/compose/restore.sh FILE [--force]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=compose.sh
source "$HERE/compose.sh"
FILE="${1:?usage: restore.sh FILE [--force]}"
shift
[ -s "$FILE" ] || { echo "restore: $FILE missing or empty" >&2; exit 1; }
DIR="$(cd "$(dirname "$FILE")" && pwd)"
NAME="$(basename "$FILE")"
KEEL_TOKEN="$(head -n1 "${KEEL_SECRETS_DIR:-$HERE/secrets}/admin-token")"
export KEEL_TOKEN

keel_cli "$DIR" ro http://keel-0:7400 operator snapshot restore "/backup/$NAME" "$@"
echo "restore: $FILE restored"
