# shellcheck shell=bash
# Shared setup steps for scripts/test.sh and scripts/demo.sh. Source this file; it
# defines functions only and changes nothing by itself.
#
# Every step checks first and acts only when something is missing or stale, so a
# second run on a prepared machine costs a few hashes and no network.

EQUEUE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EQUEUE_VENV="$EQUEUE_ROOT/.venv"

log() {
    printf '[equeue] %s\n' "$*" >&2
}

die() {
    printf '[equeue] error: %s\n' "$*" >&2
    exit 1
}

# Prints the SHA-256 of the given files (missing files hash as empty), one value.
_hash_files() {
    local f
    for f in "$@"; do
        printf '%s\n' "$f"
        if [ -f "$f" ]; then cat "$f"; fi
    done | sha256sum | cut -d' ' -f1
}

# Runs a command under an exclusive lock, so that two scripts started at once in the
# same checkout (a demo and a test run, say) do not build one venv or node_modules
# twice over each other.
_with_lock() {
    local name="$1"
    shift
    local lock_file
    lock_file="${TMPDIR:-/tmp}/equeue-setup-$(printf '%s' "$EQUEUE_ROOT" | sha256sum | cut -c1-16)-$name.lock"
    if command -v flock >/dev/null 2>&1; then
        (
            flock -w 900 9 || die "timed out waiting for the lock $lock_file"
            "$@"
        ) 9>"$lock_file"
    else
        "$@"
    fi
}

# ensure_system_packages COMMAND:PACKAGE ...
# Installs, with apt-get, the Debian package of each command that is not found. A
# COMMAND that starts with / is checked as a path. Stops with a message naming the
# packages when it cannot install them (not root, or no apt-get).
ensure_system_packages() {
    local pair cmd pkg
    local -a missing=()
    for pair in "$@"; do
        cmd="${pair%%:*}"
        pkg="${pair#*:}"
        if [[ "$cmd" == /* ]]; then
            [ -x "$cmd" ] && continue
        elif command -v "$cmd" >/dev/null 2>&1; then
            continue
        fi
        case " ${missing[*]} " in
            *" $pkg "*) ;;
            *) missing+=("$pkg") ;;
        esac
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    apt_install "${missing[@]}"
}

# apt_install PACKAGE ...
# Installs Debian packages, running apt-get update first (these are only called when
# something is missing). Stops with a message naming the packages when it cannot.
apt_install() {
    local -a missing=("$@")
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        die "missing system package(s): ${missing[*]}. Install them (on Debian: apt-get install ${missing[*]}) and run this again."
    fi

    log "installing system package(s) with apt-get: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q </dev/null >&2 \
        || die "apt-get update failed; install ${missing[*]} by hand and run this again"
    apt-get install -y -q "${missing[@]}" </dev/null >&2 \
        || die "apt-get install failed for: ${missing[*]}"
}

_python_has_venv() {
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1
}

# Makes sure python3 exists and can create a venv (Debian splits venv support into
# python3-venv).
ensure_python() {
    ensure_system_packages python3:python3
    if ! _python_has_venv; then
        apt_install python3-venv
        _python_has_venv || die "python3 cannot create virtual environments; install python3-venv"
    fi
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
        || die "equeue needs Python >= 3.10; python3 is $(python3 --version 2>&1)"
}

_venv_stamp() {
    printf '%s/.equeue-installed-%s' "$EQUEUE_VENV" "$1"
}

_ensure_venv_locked() {
    local extras="$1"
    local want stamp
    want="$(_hash_files "$EQUEUE_ROOT/pyproject.toml")"

    if [ -x "$EQUEUE_VENV/bin/python" ] && ! "$EQUEUE_VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        # A venv copied from another path or built on another Python cannot start:
        # build it again rather than fail later in a confusing way.
        log "the venv at $EQUEUE_VENV is broken; recreating it"
        rm -rf "$EQUEUE_VENV"
    fi
    if [ ! -x "$EQUEUE_VENV/bin/python" ]; then
        log "creating the virtual environment $EQUEUE_VENV"
        python3 -m venv "$EQUEUE_VENV" || die "python3 -m venv failed"
    fi

    # The dev extra includes flask and eventlet, so its stamp also serves the demo.
    for stamp in "$(_venv_stamp "$extras")" "$(_venv_stamp dev)"; do
        if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
            return 0
        fi
    done

    log "installing equeue[$extras] into $EQUEUE_VENV (pyproject.toml changed or first run)"
    "$EQUEUE_VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2 \
        || die "could not upgrade pip in $EQUEUE_VENV"
    (cd "$EQUEUE_ROOT" && "$EQUEUE_VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[$extras]") >&2 \
        || die "pip install -e '.[$extras]' failed"
    printf '%s\n' "$want" >"$(_venv_stamp "$extras")"
}

# ensure_venv EXTRAS
# Creates or reuses .venv and installs the project editable with EXTRAS ("dev",
# "flask,eventlet"), skipping pip when pyproject.toml has not changed since the last
# install with those extras (or with "dev", which includes the others).
ensure_venv() {
    ensure_python
    _with_lock venv _ensure_venv_locked "$1" || exit 1
}

_npm_ci_locked() {
    local dir="$1"
    local want stamp="$dir/node_modules/.equeue-installed"
    want="$(_hash_files "$dir/package.json" "$dir/package-lock.json")"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi

    if [ -f "$dir/package-lock.json" ]; then
        log "npm ci in $dir"
        (cd "$dir" && npm ci --no-audit --no-fund </dev/null) >&2 || die "npm ci failed in $dir"
    else
        # Without a lock file npm ci refuses to run; install what package.json asks
        # for without writing a lock file into someone else's folder.
        log "npm install in $dir (no package-lock.json there)"
        (cd "$dir" && npm install --no-audit --no-fund --no-package-lock </dev/null) >&2 \
            || die "npm install failed in $dir"
    fi
    printf '%s\n' "$want" >"$stamp"
}

# ensure_npm_packages DIR
# Runs npm ci in DIR (which holds package.json) unless node_modules already matches
# package.json and package-lock.json.
ensure_npm_packages() {
    local dir="$1"
    [ -f "$dir/package.json" ] || return 0
    ensure_system_packages node:nodejs npm:npm
    _with_lock "npm-$(printf '%s' "$dir" | sha256sum | cut -c1-8)" _npm_ci_locked "$dir" || exit 1
}
