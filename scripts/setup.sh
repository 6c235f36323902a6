#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine: the servers the tests and the demo
# start themselves (redis-server, nats-server, varnishd with the xkey vmod, PostgreSQL), and the
# package with its dev extras, editable. None of them is left running as a system service.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v nats-server >/dev/null 2>&1 || need_apt+=(nats-server)
command -v varnishd >/dev/null 2>&1 || need_apt+=(varnish)
[ -n "$(find /usr/lib -name libvmod_xkey.so 2>/dev/null | head -n 1)" ] || need_apt+=(varnish-modules)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need_apt+=(postgresql)
command -v dot >/dev/null 2>&1 || need_apt+=(graphviz)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
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
if command -v service >/dev/null 2>&1; then
    for svc in redis-server nats-server varnish postgresql; do
        service "$svc" stop >/dev/null 2>&1 || true
    done
fi

python3 -m pip install --quiet --disable-pip-version-check -e '.[dev]'

# Node 20 and npm: the npm packages below are pinned by their lock files.
if ! command -v npm >/dev/null 2>&1; then
    echo "setup: please install Node 20 and npm (the TypeScript and AsyncAPI tests need them)" >&2
    exit 1
fi
# The TypeScript generator formats with a pinned prettier, and its tests compile and run the
# output with the npm packages pinned in node/package-lock.json.
npm ci --prefix node --no-audit --no-fund --loglevel=error
# The official AsyncAPI JSON schemas that tests/test_asyncapi.py validates against, pinned by
# tests/asyncapi/package-lock.json.
npm ci --prefix tests/asyncapi --no-audit --no-fund --silent
