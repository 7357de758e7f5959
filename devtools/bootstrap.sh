#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian/Ubuntu machine, idempotently:
# system packages (InfluxDB 1.x, RabbitMQ, Node.js for the CDK's jsii runtime) and
# the project's virtual environment with pinned dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
have() { command -v "$1" >/dev/null 2>&1; }
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_pkgs+=(python3-venv python3-pip)
have python3 || need_pkgs+=(python3)
have influxd || need_pkgs+=(influxdb)
have rabbitmq-server || need_pkgs+=(rabbitmq-server)
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

stamp=.venv/.installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade "pip==25.3"
.venv/bin/python -m pip install -q -c constraints.txt -e '.[dev,cdk]'
echo "$want" > "$stamp"
echo "bootstrap: virtual environment ready (.venv)"
