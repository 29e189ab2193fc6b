#!/usr/bin/env bash
# Start `klynge demo` N times in a row (default 5) in the arm64 root under emulation, each on
# the same data (the first start creates it), checking each time that the cluster fills, and
# print each start's time. Run `make pi-check` first: it installs this tree in the root.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
starts="${1:-5}"
paths="$("$here/root.sh")"
read -r base venv <<<"$paths"
[ -e "$base/src/deploy/pi/figures.py" ] || { echo "demo-starts: run make pi-check first"; exit 1; }
mounted=()
cleanup() { for m in "${mounted[@]}"; do umount -R -l "$m" 2>/dev/null || true; done; }
trap cleanup EXIT
for m in proc sys dev; do
	# rslave: unmounting the copies later must not propagate to the host's own mounts.
	mountpoint -q "$base/$m" || {
		mount --rbind "/$m" "$base/$m" && mount --make-rslave "$base/$m"
		mounted+=("$base/$m")
	}
done
chroot "$base" /usr/bin/env -i HOME=/root PATH="$venv/bin:/usr/bin:/bin" LANG=C.UTF-8 \
	PYTHONDONTWRITEBYTECODE=1 sh -c \
	"cd /src && python deploy/pi/figures.py /tmp/pi-demo-starts.json --demo-starts $starts --no-bench"
cat "$base/tmp/pi-demo-starts.json"
