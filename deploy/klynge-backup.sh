#!/bin/sh
# Back up one Klynge data directory and keep the newest copies.
#
#   klynge-backup ROLE [KEEP]      ROLE is node or aggregator; KEEP defaults to 14
#
# Run nightly by deploy/systemd/klynge-backup@.timer (installed as /usr/local/sbin/klynge-backup).
# Each run makes $KLYNGE_BACKUPS/ROLE/<UTC time>/ with `klynge ROLE backup`, a consistent copy
# taken while the service keeps running, then deletes all but the newest KEEP copies.
# Restore: stop the service, copy a backup directory into place, start (docs/raspberry-pi.md).
set -eu

[ $# -ge 1 ] || { echo "usage: klynge-backup node|aggregator [KEEP]" >&2; exit 2; }
role="$1"
keep="${2:-14}"
case "$role" in
    node | aggregator) ;;
    *) echo "klynge-backup: ROLE must be node or aggregator, not '$role'" >&2; exit 2 ;;
esac
case "$keep" in
    '' | *[!0-9]* | 0) echo "klynge-backup: KEEP must be a whole number of at least 1" >&2; exit 2 ;;
esac

klynge="${KLYNGE_BIN:-/opt/klynge/venv/bin/klynge}"
data="${KLYNGE_STATE:-/var/lib/klynge}/$role"
backups="${KLYNGE_BACKUPS:-/var/backups/klynge}/$role"

mkdir -p "$backups"
# UTC timestamps sort by name in time order, and never repeat across a DST change.
dest="$backups/$(date -u +%Y-%m-%dT%H%M%SZ)"
"$klynge" "$role" backup "$data" "$dest"
echo "klynge-backup: wrote $dest"

# Delete only directories named like our timestamps, oldest first, keeping the newest KEEP.
find "$backups" -mindepth 1 -maxdepth 1 -type d -name '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T*Z' \
    | sort -r | tail -n "+$((keep + 1))" | while IFS= read -r old; do
    rm -rf -- "$old"
    echo "klynge-backup: removed $old"
done
