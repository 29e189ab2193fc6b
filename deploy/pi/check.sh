#!/usr/bin/env bash
# `make pi-check`: the project on an arm64 Debian bookworm root under qemu-user emulation,
# beside the same figures on this host. Needs root (chroot, mounts), debootstrap and
# qemu-user-static (deploy/pi/root.sh builds and caches the root outside the clone).
# Runs there: the unit tests that need no browser (PI_TESTS below), `klynge feed check`,
# `klynge demo` (the cluster must fill), and bench/serve_bench.py's measurement at 15 villages
# x 50 entries; then prints one table (deploy/pi/table.py).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${PI_CACHE:-/var/cache/klynge}"
# The shared library's model, recurrence and series unit tests, the layout rules and the
# demo's start-up wait: no browser, no JavaScript (Node), no Docker. Under emulation on a
# shared machine the other test files took too long (93 tests in 10 min at a load of 20);
# PI_TESTS="tests/..." runs others. -m leaves out the browser, slow and fuzz ones.
PI_TESTS="${PI_TESTS:-tests/test_model.py tests/test_recurrence.py tests/test_series.py
	tests/test_layout.py tests/test_demo_wait.py}"
PI_MARKS="not browser and not slow and not fuzz"

say() { printf '\n== pi-check: %s\n' "$*"; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(round(float(sys.argv[1]) - float(sys.argv[2]), 1))" "$(now)" "$1"; }

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
	rm -rf "$out"
}
trap cleanup EXIT
for m in proc sys dev; do
	# rslave: unmounting the copies later must not propagate to the host's own mounts.
	mountpoint -q "$base/$m" || {
		mount --rbind "/$m" "$base/$m" && mount --make-rslave "$base/$m"
		mounted+=("$base/$m")
	}
done
cp -L /etc/resolv.conf "$base/etc/resolv.conf"
arm() { chroot "$base" /usr/bin/env -i HOME=/root PATH="$venv/bin:/usr/bin:/bin" LANG=C.UTF-8 \
	PYTHONDONTWRITEBYTECODE=1 sh -c "cd /src && $*"; }

say "this tree into the root (/src) and installed there"
rm -rf "$base/src" && mkdir -p "$base/src"
(cd "$repo" && git ls-files -co --exclude-standard -z | grep -zv '^node_modules' |
	xargs -0 tar -cf - 2>/dev/null) | tar -xf - -C "$base/src"
start=$(now)
arm "pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation --force-reinstall ."
arm_install=$(since "$start")

host_venv="$cache/host-venv-$(basename "$venv" | sed 's/klynge-venv-//')"
if [ ! -e "$host_venv/.klynge-deps-ok" ]; then
	say "the host's virtualenv for the comparison (once per pyproject.toml)"
	rm -rf "$host_venv"; start=$(now)
	python3 -m venv "$host_venv"
	"$host_venv/bin/pip" install --quiet --disable-pip-version-check -r "$base/tmp/klynge-requirements.txt"
	since "$start" >"$host_venv/.klynge-deps-seconds"; touch "$host_venv/.klynge-deps-ok"
fi
start=$(now)
"$host_venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-build-isolation --force-reinstall "$repo"
host_install=$(since "$start")

read -r -a test_files <<<"$(tr -s " \n\t" "   " <<<"$PI_TESTS")"
tests="${test_files[*]}"
say "unit tests on arm64: $tests -m '$PI_MARKS'"
start=$(now)
arm "python -m pytest -q -p no:cacheprovider -m '$PI_MARKS' $tests" | tee "$out/arm-tests.txt" | tail -3
arm_tests=$(since "$start")
say "the same unit tests on the host"
start=$(now)
(cd "$repo" && "$host_venv/bin/python" -m pytest -q -p no:cacheprovider -m "$PI_MARKS" "${test_files[@]}") \
	| tee "$out/host-tests.txt" | tail -3
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
