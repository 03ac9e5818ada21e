#!/usr/bin/env bash
# The whole test suite (the README's second command; .ci/run runs exactly this).
# Installs the system packages the tests need, then builds every module and runs every test.
# Tests that need a tool run for real; in CI (CI=true) a missing tool fails the test instead of skipping it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
exec mvn -B -ntp -e verify "$@"
