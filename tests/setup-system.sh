#!/usr/bin/env bash
# Install what the test suite uses and this machine lacks, and nothing else:
#  * Debian packages with apt-get, only those missing (apt-get update once, first, and only
#    when something is missing);
#  * the npm packages of package.json in node_modules/, only when node_modules/ is missing or
#    older than package.json or package-lock.json.
# `make test` runs it before the tests; CI runs it as root on a fresh clone (.ci/run). Without
# root or passwordless sudo it prints one line naming what is missing and the command that
# installs it, and exits 1, instead of letting the tests fail one by one.
#
#   tests/setup-system.sh              everything the suite uses
#   tests/setup-system.sh PACKAGE...   only these Debian packages (make venv: python3-venv)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ME=tests/setup-system.sh

# Every Debian package the suite uses; present() says how to tell it is installed.
PACKAGES=(
    python3 python3-venv    # the virtualenv of `make venv`
    chromium fonts-dejavu-core    # the browser tests (Playwright drives /usr/bin/chromium)
    nodejs npm    # ical.js and axe-core from node_modules/
    docker-compose systemd shellcheck nginx caddy    # tests/test_deploy.py checks deploy/ with them
    faketime    # runs the suite at a chosen date
    khal calcurse    # tests/test_ical_clients.py reads our calendars with two Debian clients
    poppler-utils    # pdftoppm: the browser tests render printed PDFs to PNG (issue 13)
)

present() {
    case "$1" in
        python3) command -v python3 ;;
        python3-venv) python3 -c 'import ensurepip' ;;
        chromium) [ -x /usr/bin/chromium ] ;;
        fonts-dejavu-core) [ -d /usr/share/fonts/truetype/dejavu ] ;;
        nodejs) command -v node ;;
        npm) command -v npm ;;
        docker-compose) command -v docker-compose || docker compose version ;;
        systemd) command -v systemd-analyze ;;
        nginx) command -v nginx || [ -x /usr/sbin/nginx ] ;;
        poppler-utils) command -v pdftoppm ;;
        *) command -v "$1" ;;  # caddy, faketime, shellcheck: the command is named as the package
    esac >/dev/null 2>&1
}

missing_packages() {
    local package
    for package in "$@"; do
        present "$package" || printf '%s\n' "$package"
    done
}

# The command that runs apt-get here: nothing as root, `sudo -n` with passwordless sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        return 0
    fi
    command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && echo "sudo -n"
}

install_packages() {
    local install="apt-get install -y -q --no-install-recommends $*"
    local runner
    if ! runner="$(as_root)"; then
        echo "$ME: the tests need $* (missing here); install as root with:" \
            "apt-get update && $install" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null; then
        echo "$ME: the tests need $* (missing here) and this is not Debian:" \
            "install them with your package manager" >&2
        exit 1
    fi
    echo "$ME: installing the missing Debian packages: $*"
    # Word splitting of $runner is intended: it is empty or `sudo -n`.
    # shellcheck disable=SC2086
    $runner env DEBIAN_FRONTEND=noninteractive apt-get update -q
    # Wait for another apt (unattended-upgrades on a fresh machine) instead of failing.
    # shellcheck disable=SC2086
    $runner env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o DPkg::Lock::Timeout=300 "$@"
}

npm_packages() {
    local stamp=node_modules/.klynge-installed
    if [ -e "$stamp" ] && [ ! package.json -nt "$stamp" ] && [ ! package-lock.json -nt "$stamp" ]
    then
        return 0
    fi
    echo "$ME: installing the npm packages the tests use (node_modules/)"
    npm install --no-audit --no-fund
    touch "$stamp"
}

main() {
    local wanted=("$@") missing
    [ $# -gt 0 ] || wanted=("${PACKAGES[@]}")
    mapfile -t missing < <(missing_packages "${wanted[@]}")
    if [ ${#missing[@]} -gt 0 ]; then
        install_packages "${missing[@]}"
        mapfile -t missing < <(missing_packages "${missing[@]}")
        if [ ${#missing[@]} -gt 0 ]; then
            echo "$ME: apt-get installed ${missing[*]} but they are still not found" >&2
            exit 1
        fi
    fi
    [ $# -gt 0 ] || npm_packages
}

main "$@"
