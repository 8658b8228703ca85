#!/usr/bin/env bash
# Installs everything ooo needs on a Debian 12 machine (run as root, or with sudo available):
# the Debian packages listed in scripts/packages/*.txt, the npm dependencies, and the build.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

want=$(cat scripts/packages/*.txt | sed 's/#.*//' | tr -s ' \n' '\n' | sed '/^$/d' | sort -u)
missing=()
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "setup: building"
npx tsc -p tsconfig.json
