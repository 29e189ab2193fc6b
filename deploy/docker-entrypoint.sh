#!/bin/sh
# Entrypoint of the Klynge container image (deploy/Dockerfile).
#
#   docker-entrypoint.sh serve          initialise /data/$KLYNGE_ROLE on first start, then serve
#   docker-entrypoint.sh klynge ARGS…   run any klynge command (user add, backup, refresh, …)
#
# Environment, read only on the first start (when the data directory has no config yet):
#   KLYNGE_ROLE         node | aggregator (default node)
#   KLYNGE_NAME         the village or cluster name shown to residents (required)
#   KLYNGE_PUBLIC_URL   the URL residents and aggregators use, e.g. https://osterby.example.dk
#   KLYNGE_AGGREGATORS  node only: aggregator URLs to ping, separated by commas or spaces
#   KLYNGE_SOURCES      aggregator only: feeds to poll, one per line or separated by commas;
#                       each item is "FEED_URL" or "FEED_URL NAME"
# Read on every start:
#   PORT                the port to listen on inside the container (default 8081)
#   HOST                the address to listen on (default 0.0.0.0, every interface of the container)
#   KLYNGE_DATA         the volume (default /data); the data directory is $KLYNGE_DATA/$KLYNGE_ROLE
# The KLYNGE_* variables are also the services' environment overrides (see docs/deploy.md), so
# KLYNGE_PUBLIC_URL and KLYNGE_AGGREGATORS still win over the config file after the first start.
set -eu

role="${KLYNGE_ROLE:-node}"
port="${PORT:-8081}"
data="${KLYNGE_DATA:-/data}/$role"

die() {
    printf 'docker-entrypoint: %s\n' "$*" >&2
    exit 1
}

# Print the items of a list separated by commas or newlines, one per line, trimmed.
items() {
    printf '%s\n' "$1" | tr ',' '\n' | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' \
        | grep -v '^$' || true
}

init_node() {
    set -- node init "$1" --name "$KLYNGE_NAME" --url "$KLYNGE_PUBLIC_URL"
    # Aggregator URLs contain no spaces, so spaces separate them as well as commas.
    for url in $(items "${KLYNGE_AGGREGATORS:-}" | tr '\n' ' '); do
        set -- "$@" --aggregator "$url"
    done
    klynge "$@"
}

init_aggregator() {
    new="$1"
    klynge aggregator init "$new" --name "$KLYNGE_NAME" --url "$KLYNGE_PUBLIC_URL"
    items "${KLYNGE_SOURCES:-}" | while IFS= read -r item; do
        url="${item%%[[:space:]]*}"
        name="${item#"$url"}"
        name="${name#"${name%%[![:space:]]*}"}"
        if [ -n "$name" ]; then
            klynge aggregator source add "$new" "$url" --name "$name"
        else
            klynge aggregator source add "$new" "$url"
        fi
    done
}

init_once() {
    [ -f "$data/$role.toml" ] && return 0
    [ -n "${KLYNGE_NAME:-}" ] || die "set KLYNGE_NAME for the first start (the village or cluster name)"
    [ -n "${KLYNGE_PUBLIC_URL:-}" ] || die "set KLYNGE_PUBLIC_URL for the first start, e.g. https://osterby.example.dk"
    printf 'docker-entrypoint: first start, creating the %s data directory %s\n' "$role" "$data"
    # Build the directory beside its final place and rename it at the end, so a start that
    # fails half-way (a bad source URL) is retried in full instead of leaving half a config.
    if [ -e "$data" ]; then
        rmdir "$data" 2>/dev/null || die "$data exists but has no $role.toml: move it away or restore a backup into it"
    fi
    rm -rf "$data.new"
    "init_$role" "$data.new"
    mv "$data.new" "$data"
}

case "$role" in
    node | aggregator) ;;
    *) die "KLYNGE_ROLE must be 'node' or 'aggregator', not '$role'" ;;
esac

if [ "${1:-serve}" = serve ]; then
    init_once
    # 0.0.0.0 inside the container; publish the port on the host's loopback and put a
    # reverse proxy with HTTPS in front (deploy/Caddyfile).
    exec klynge "$role" serve "$data" --host "${HOST:-0.0.0.0}" --port "$port"
fi
exec "$@"
