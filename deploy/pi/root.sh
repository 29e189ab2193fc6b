#!/usr/bin/env bash
# Build (once) and cache the arm64 Debian bookworm root of `make pi-check`, with a virtualenv
# holding the project's dependencies from PyPI (aarch64 wheels; feedgen from its sdist).
# Both live OUTSIDE the clone (PI_CACHE, default /var/cache/klynge), so a fresh clone reuses
# them: the root is keyed by the suite and package list below, the virtualenv by a hash of
# pyproject.toml (a change of dependencies makes a new one). Prints the root's path last.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${PI_CACHE:-/var/cache/klynge}"
mirror="${PI_MIRROR:-http://deb.debian.org/debian}"
suite=bookworm # Raspberry Pi OS's base: Python 3.11.2
packages="python3,python3-venv,python3-pip,ca-certificates,procps"
# The test extra without what the chosen tests do not use (browser, PDF, linters, Docker).
not_on_pi='playwright|pypdf|mypy|ruff|types-|hadolint|pyyaml'

log() { printf 'pi-root: %s\n' "$*" >&2; }
key() { printf '%s' "$*" | sha256sum | cut -c1-12; }

base="$cache/pi-$suite-arm64-$(key "$suite $packages")"
venv="/opt/klynge-venv-$(sha256sum "$repo/pyproject.toml" | cut -c1-12)"
mkdir -p "$cache"
"$here/binfmt.sh" >&2

if [ ! -e "$base/.klynge-base-ok" ]; then
	log "building the arm64 $suite root in $base with debootstrap (once; 15-30 min emulated)"
	rm -rf "$base.tmp"
	start=$(date +%s)
	debootstrap --arch=arm64 --variant=minbase --include="$packages" "$suite" "$base.tmp" \
		"$mirror" >"$cache/debootstrap.log" 2>&1 || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
	echo $(($(date +%s) - start)) >"$base.tmp/.klynge-base-seconds"
	touch "$base.tmp/.klynge-base-ok"
	mv "$base.tmp" "$base"
fi

if [ ! -e "$base$venv/.klynge-deps-ok" ]; then
	log "installing the dependencies from PyPI into $venv in the root (once per pyproject.toml)"
	cp -L /etc/resolv.conf "$base/etc/resolv.conf"
	# A host behind a TLS-inspecting proxy names its CA bundle in PIP_CERT: the root's pip
	# needs the same bundle to reach PyPI.
	cert=""
	if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then
		cp -L "$PIP_CERT" "$base/etc/klynge-host-ca.crt"
		cert="PIP_CERT=/etc/klynge-host-ca.crt"
	fi
	python3 - "$repo/pyproject.toml" "$not_on_pi" >"$base/tmp/klynge-requirements.txt" <<'PY'
import re, sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
for req in project["dependencies"] + project["optional-dependencies"]["test"]:
    if not re.match(sys.argv[2], req):
        print(req)
print("setuptools>=77")  # the build backend, so installing the project needs no download
PY
	rm -rf "$base$venv"
	start=$(date +%s.%N)
	chroot "$base" /usr/bin/env -i HOME=/root PATH=/usr/bin:/bin LANG=C.UTF-8 $cert \
		sh -c "python3 -m venv $venv && $venv/bin/pip install --quiet --disable-pip-version-check \
			-r /tmp/klynge-requirements.txt" >&2
	python3 -c "import sys; print(round(float(sys.argv[1]) - float(sys.argv[2]), 1))" "$(date +%s.%N)" "$start" \
		>"$base$venv/.klynge-deps-seconds"
	touch "$base$venv/.klynge-deps-ok"
fi
echo "$base $venv"
