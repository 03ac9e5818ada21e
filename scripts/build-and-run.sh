#!/usr/bin/env bash
# Builds jtap and runs its main job (the README's first command).
# Without a hypervisor the main job runs on the embedded simulated Xen.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
mvn -B -ntp -q -DskipTests install
exec bin/jtap demo "$@"
