#!/usr/bin/env bash
# `make pi-check`: the project on an arm64 Debian bookworm root under qemu-user emulation,
# beside the same figures on this host. Needs root (chroot, mounts), debootstrap and
# qemu-user-static (deploy/pi/root.sh builds and caches the root outside the clone).
# Runs there: every test that needs no browser (PI_TESTS and PI_MARKS below, less LEFT_OUT),
# `klynge feed check`, `klynge demo` (the cluster must fill), and bench/serve_bench.py's
# measurement at 15 villages x 50 entries; then prints one table (deploy/pi/table.py). The host
# column runs the same tests with the same requirement list.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${PI_CACHE:-/var/cache/klynge}"
# The issue asks for the unit tests that need no browser: all of them, the slow and fuzz ones
# too, in two xdist workers (the machine's cores). PI_TESTS="tests/test_x.py" runs fewer.
PI_TESTS="${PI_TESTS:-tests}"
PI_MARKS="${PI_MARKS:-not browser}"
PI_WORKERS="${PI_WORKERS:-2}"
# Both sides run hypothesis' "emulated" profile (tests/conftest.py): no 200 ms deadline.
# What cannot run in the root, one group a line: the reason, a TAB, then pytest's arguments.
# Both sides leave the same out, so the columns compare the same tests.
LEFT_OUT=()

say() { printf '\n== pi-check: %s\n' "$*"; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(round(float(sys.argv[1]) - float(sys.argv[2]), 1))" "$(now)" "$1"; }
# Fill `selection` with pytest's arguments, printing each group left out with its reason.
select_tests() {
	local group args test_files
	read -r -a test_files <<<"$(tr -s " \n\t" "   " <<<"$PI_TESTS")"
	selection=(-q -rfE -p no:cacheprovider -n "$PI_WORKERS" -m "$PI_MARKS" "${test_files[@]}")
	for group in "${LEFT_OUT[@]}"; do
		printf 'pi-check: left out on both sides: %s (%s)\n' "${group%%$'\t'*}" "${group#*$'\t'}"
		read -r -a args <<<"${group#*$'\t'}"
		selection+=("${args[@]}")
	done
	printf 'pi-check: the tests, on both sides: pytest'
	printf ' %q' "${selection[@]}"
	echo
}

# `check.sh --selection`: print the tests it would run and stop (tests/test_pi_check.py).
if [ "${1:-}" = --selection ]; then
	select_tests
	exit 0
fi

[ "$(id -u)" = 0 ] || { echo "pi-check: needs root (chroot and mounts)"; exit 1; }
for tool in debootstrap chroot; do
	command -v "$tool" >/dev/null || { echo "pi-check: $tool missing (apt-get install debootstrap qemu-user-static binfmt-support)"; exit 1; }
done
whole=$(now)
say "the arm64 root (built once, cached in $cache)"
paths="$("$here/root.sh")"
read -r base venv <<<"$paths"
out="$(mktemp -d /tmp/pi-check.XXXXXX)"
mounted=()
cleanup() {
	for m in "${mounted[@]}"; do umount -R -l "$m" 2>/dev/null || true; done
	# Both sides' whole pytest output stays for reading why a test failed.
	mkdir -p "$cache/last-run"
	cp "$out"/*-tests.txt "$cache/last-run/" 2>/dev/null || true
	rm -rf "$out"
}
trap cleanup EXIT
# A stopped check must not leave the root's bind mounts behind (a copy of the root would copy them).
trap 'exit 143' TERM INT HUP
for m in proc sys dev; do
	# rslave: unmounting the copies later must not propagate to the host's own mounts.
	mountpoint -q "$base/$m" || {
		mount --rbind "/$m" "$base/$m" && mount --make-rslave "$base/$m"
		mounted+=("$base/$m")
	}
done
cp -L /etc/resolv.conf "$base/etc/resolv.conf"
# debootstrap's minbase writes no /etc/hosts; Raspberry Pi OS has one, and tests use localhost.
[ -s "$base/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$base/etc/hosts"
# /src is a scratch copy, so Python may write its bytecode there: the tests' and the demo's
# subprocesses then import compiled modules, as an installed Klynge on a Pi does.
arm() { chroot "$base" /usr/bin/env -i HOME=/root PATH="$venv/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
	LANG=C.UTF-8 HYPOTHESIS_PROFILE=emulated KLYNGE_TEST_PATIENCE=10 sh -c "cd /src && $*"; }

say "this tree into the root (/src) and installed there"
rm -rf "$base/src" && mkdir -p "$base/src"
(cd "$repo" && git ls-files -co --exclude-standard -z | grep -zv '^node_modules' |
	xargs -0 tar -cf - 2>/dev/null) | tar -xf - -C "$base/src"
# ical.js (tests/icaljs_support.py) is JavaScript: the host's node_modules serves both sides.
if [ ! -d "$repo/node_modules/ical.js" ] && command -v npm >/dev/null; then
	(cd "$repo" && npm install --no-audit --no-fund --silent)
fi
[ ! -d "$repo/node_modules" ] || cp -rL "$repo/node_modules" "$base/src/node_modules"
start=$(now)
arm "pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation --force-reinstall ."
arm_install=$(since "$start")

host_venv="$cache/host-venv-$(basename "$venv" | sed 's/klynge-venv-//')"
host_ok="$host_venv/.klynge-deps-$(sha256sum <"$base/tmp/klynge-requirements.txt" | cut -c1-12)-ok"
if [ ! -e "$host_ok" ]; then
	say "the host's virtualenv for the comparison (the root's requirement list, once)"
	rm -rf "$host_venv"; start=$(now)
	python3 -m venv "$host_venv"
	"$host_venv/bin/pip" install --quiet --disable-pip-version-check -r "$base/tmp/klynge-requirements.txt"
	since "$start" >"$host_venv/.klynge-deps-seconds"; touch "$host_ok"
fi
start=$(now)
"$host_venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-build-isolation --force-reinstall "$repo"
host_install=$(since "$start")

select_tests
say "the tests on arm64"
start=$(now); arm_rc=0
# The marker expression holds spaces: each argument goes into the root's shell quoted.
arm "python -m pytest $(printf "'%s' " "${selection[@]}")" | tee "$out/arm-tests.txt" | grep -E '^(FAILED|ERROR) | in [0-9.]+s( |$)' ||
	arm_rc=$?
arm_tests=$(since "$start")
say "the same tests on the host"
start=$(now); host_rc=0
(cd "$repo" && HYPOTHESIS_PROFILE=emulated "$host_venv/bin/python" -m pytest "${selection[@]}") | tee "$out/host-tests.txt" |
	grep -E '^(FAILED|ERROR) | in [0-9.]+s( |$)' || host_rc=$?
host_tests=$(since "$start")

say "demo, feed check and aggregator bench on arm64"
arm "python deploy/pi/figures.py /tmp/pi-arm64.json --demo-starts ${PI_DEMO_STARTS:-2}"
mv "$base/tmp/pi-arm64.json" "$out/arm64.json"
say "demo, feed check and aggregator bench on the host"
(cd "$repo" && "$host_venv/bin/python" deploy/pi/figures.py "$out/host.json" --demo-starts "${PI_DEMO_STARTS:-2}")

python3 "$here/table.py" "$out" \
	--install "$host_install" "$arm_install" \
	--cold "$(cat "$host_venv/.klynge-deps-seconds")" "$(cat "$base$venv/.klynge-deps-seconds")" \
	--tests "$host_tests" "$arm_tests" --debootstrap "$(cat "$base/.klynge-base-seconds")" \
	--whole "$(since "$whole")"
# Failed tests fail the check, after the table: its figures still tell what ran.
[ "$arm_rc" = 0 ] || { echo "pi-check: FAILED: tests failed on arm64 (pytest exit $arm_rc, above)"; exit 1; }
[ "$host_rc" = 0 ] || { echo "pi-check: FAILED: tests failed on the host (pytest exit $host_rc, above)"; exit 1; }
