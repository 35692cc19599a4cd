#!/usr/bin/env bash
# Stops and removes the compose cluster's containers and network. The data
# volumes are kept unless -v is given (then every node's data is gone).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=compose.sh
source "$HERE/compose.sh"
compose down --remove-orphans "$@"
