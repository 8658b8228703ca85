#!/usr/bin/env bash
# Installs what is needed and runs the whole test suite (unit, integration, end to end).
# Usage: scripts/test.sh [TEST-FILE-PATTERN]
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
bash scripts/setup.sh
# PostgreSQL for the store/API tests that run on both databases.
eval "$(bash scripts/postgres.sh start)"
export OOO_TEST_POSTGRES_URL
pattern=${1:-}
files=$(find dist/test -name '*.test.js' | sort | { if [ -n "$pattern" ]; then grep -- "$pattern"; else cat; fi })
if [ -z "$files" ]; then echo "no test files match '$pattern'" >&2; exit 2; fi
# One file at a time: the lab tests share one network namespace and the DHCP/TFTP ports.
# shellcheck disable=SC2086
exec node --enable-source-maps --test --test-concurrency=1 --test-reporter=spec $files
