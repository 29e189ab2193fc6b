#!/usr/bin/env bash
# Make sure arm64 binaries run here: binfmt_misc mounted and qemu-aarch64 registered with the F
# flag (the interpreter is opened at registration, so it also works inside a chroot).
# Exit status 0 when they do, 1 with one line saying why not.
set -uo pipefail
misc=/proc/sys/fs/binfmt_misc
if ! mountpoint -q "$misc"; then
	mount -t binfmt_misc binfmt_misc "$misc" 2>/dev/null || { echo "binfmt_misc cannot be mounted at $misc"; exit 1; }
fi
if [ ! -e "$misc/qemu-aarch64" ]; then
	command -v update-binfmts >/dev/null || { echo "update-binfmts missing (apt-get install qemu-user-static binfmt-support)"; exit 1; }
	update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || { echo "qemu-aarch64 could not be registered with binfmt_misc"; exit 1; }
fi
grep -q '^flags:.*F' "$misc/qemu-aarch64" 2>/dev/null || { echo "qemu-aarch64 is registered without the F flag"; exit 1; }
grep -q '^enabled' "$misc/qemu-aarch64" || { echo "qemu-aarch64 is registered but disabled"; exit 1; }
echo "binfmt_misc: qemu-aarch64 registered (F flag)"
