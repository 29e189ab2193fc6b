#!/usr/bin/env bash
# Install what `make pi-check` needs from Debian when missing (debootstrap, qemu-user-static,
# binfmt-support), then make sure qemu-aarch64 is registered (deploy/pi/binfmt.sh).
# Exit status 1 with one line saying why when this machine cannot run arm64 binaries.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
[ -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || [ -x /usr/bin/qemu-aarch64-static ] ||
	missing+=(qemu-user-static)
command -v update-binfmts >/dev/null || missing+=(binfmt-support)
if [ ${#missing[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || { echo "pi-check needs root to install ${missing[*]}"; exit 1; }
	echo "pi-check: installing ${missing[*]} (apt-get)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
		{ apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; } ||
		{ echo "pi-check: could not install ${missing[*]}"; exit 1; }
fi
"$here/binfmt.sh"
