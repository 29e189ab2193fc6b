#!/usr/bin/env bash
# Build (once) and cache the arm64 Debian bookworm root of `make pi-check`: Debian's tools the
# tests drive, and a virtualenv holding the project's dependencies and test extras from PyPI
# (aarch64 wheels; feedgen from its sdist). All live OUTSIDE the clone (PI_CACHE, default
# /var/cache/klynge), so a fresh clone reuses them: the root is keyed by the suite and base
# package list, the tools by their list (apt-get in the root, on top of the base), the
# virtualenv's folder by a hash of pyproject.toml (a change of dependencies makes a new one)
# and its stamp by the requirement list it holds (an added requirement is installed into it).
# Prints the root's path and the virtualenv's last.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${PI_CACHE:-/var/cache/klynge}"
mirror="${PI_MIRROR:-http://deb.debian.org/debian}"
suite=bookworm # Raspberry Pi OS's base: Python 3.11.2
packages="python3,python3-venv,python3-pip,ca-certificates,procps"
# Debian's arm64 packages of the tools the tests run (tests/setup-system.sh's list without the
# browser's chromium, poppler-utils and fonts; faketime is not run by a test).
tools="nginx caddy shellcheck systemd docker-compose khal calcurse nodejs"
# The test extra without what no test outside the browser ones uses: Playwright, the linters.
not_on_pi='playwright|mypy|ruff|types-'

log() { printf 'pi-root: %s\n' "$*" >&2; }
key() { printf '%s' "$*" | sha256sum | cut -c1-12; }
in_root() { chroot "$base" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

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

tools_ok="$base/.klynge-tools-$(key "$tools")-ok"
if [ ! -e "$tools_ok" ]; then
	log "installing the tools the tests run into the root with apt-get (once per list): $tools"
	cp -L /etc/resolv.conf "$base/etc/resolv.conf"
	start=$(date +%s)
	# No daemon may start inside the root (nginx's and caddy's postinst try): policy-rc.d says no.
	printf '#!/bin/sh\nexit 101\n' >"$base/usr/sbin/policy-rc.d" && chmod 0755 "$base/usr/sbin/policy-rc.d"
	# Word splitting of $tools is intended: one argument per package.
	# shellcheck disable=SC2086
	in_root sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends $tools" >"$cache/apt-tools.log" 2>&1 ||
		{ tail -20 "$cache/apt-tools.log" >&2; exit 1; }
	in_root apt-get clean
	echo $(($(date +%s) - start)) >"$base/.klynge-tools-seconds"
	touch "$tools_ok"
fi

python3 - "$repo/pyproject.toml" "$not_on_pi" >"$base/tmp/klynge-requirements.txt" <<'PY'
import re, sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
for req in project["dependencies"] + project["optional-dependencies"]["test"]:
    if not re.match(sys.argv[2], req):
        print(req)
print("setuptools>=77")  # the build backend, so installing the project needs no download
PY
deps_ok="$base$venv/.klynge-deps-$(sha256sum <"$base/tmp/klynge-requirements.txt" | cut -c1-12)-ok"
if [ ! -e "$deps_ok" ]; then
	log "installing the dependencies from PyPI into $venv in the root (once per requirement list)"
	cp -L /etc/resolv.conf "$base/etc/resolv.conf"
	# A host behind a TLS-inspecting proxy names its CA bundle in PIP_CERT: the root's pip
	# needs the same bundle to reach PyPI.
	cert=""
	if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then
		cp -L "$PIP_CERT" "$base/etc/klynge-host-ca.crt"
		cert="PIP_CERT=/etc/klynge-host-ca.crt"
	fi
	# A virtualenv whose first install finished gets only what the list added; any other is new.
	[ -e "$base$venv/.klynge-deps-seconds" ] || rm -rf "$base$venv"
	start=$(date +%s.%N)
	# Word splitting of $cert is intended: an environment assignment for env, or nothing.
	# shellcheck disable=SC2086
	in_root $cert sh -c "{ [ -x $venv/bin/pip ] || python3 -m venv $venv; } && \
		$venv/bin/pip install --quiet --disable-pip-version-check -r /tmp/klynge-requirements.txt" >&2
	# The seconds of every install into this virtualenv: the cold figure of pi-check's table.
	python3 -c "import sys; print(round(float(sys.argv[1]) - float(sys.argv[2]) + float(sys.argv[3]), 1))" \
		"$(date +%s.%N)" "$start" "$(cat "$base$venv/.klynge-deps-seconds" 2>/dev/null || echo 0)" \
		>"$base$venv/.klynge-deps-seconds.new"
	mv "$base$venv/.klynge-deps-seconds.new" "$base$venv/.klynge-deps-seconds"
	touch "$deps_ok"
fi
echo "$base $venv"
