#!/usr/bin/env bash
# Installs what ooo needs, then starts the seed on the embedded defaults (SQLite under
# ~/.local/share/ooo, API on 127.0.0.1:6385) with four simulated machines taken through their
# whole life cycle. The seed keeps running in the foreground; Ctrl-C stops it.
# Extra arguments go to `ooo seed up` (e.g. --listen 127.0.0.1:7000 --data-dir /tmp/seed);
# `--lab N` runs N qemu VMs behind virtual BMCs instead of the simulated machines, and really
# provisions them over the network.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
bash scripts/setup.sh
for a in "$@"; do
  case "$a" in --lab|--lab=*|--demo|--demo=*) exec bin/ooo seed up "$@" ;; esac
done
exec bin/ooo seed up --demo 4 "$@"
