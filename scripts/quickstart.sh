#!/usr/bin/env bash
# Installs what ooo needs, then starts the seed on the embedded defaults (SQLite under
# ~/.local/share/ooo, API on 127.0.0.1:6385) with four simulated machines taken through their
# whole life cycle. The seed keeps running in the foreground; Ctrl-C stops it.
# Extra arguments go to `ooo seed up` (e.g. --listen 127.0.0.1:7000 --data-dir /tmp/seed).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
bash scripts/setup.sh
exec bin/ooo seed up --demo 4 "$@"
