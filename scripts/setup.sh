#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine: the servers the tests and the demo
# start themselves (redis-server, nats-server), and the package with its dev extras, editable.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
if [ "${#need_apt[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
    else
        echo "setup: please install ${need_apt[*]} (apt-get install -y ${need_apt[*]})" >&2
        exit 1
    fi
fi
# The servers must not keep running as system services: tests start their own on free ports.
if command -v service >/dev/null 2>&1; then service redis-server stop >/dev/null 2>&1 || true; fi

python3 -m pip install --quiet --disable-pip-version-check -e '.[dev]'
