#!/usr/bin/env bash
# Runs the example ticket shop behind the waiting room (examples/flask_app.py).
#
# Sets up .venv with equeue[flask,eventlet] the first time (reused afterwards), and,
# when npm is available, installs socket.io-client so the page loads the Socket.IO
# browser client from this server instead of its public CDN. Arguments go to the
# example; settings come from the environment (HOST, PORT, REDIS_URL, EQUEUE_CAPACITY,
# EQUEUE_SECRET, ...), as the README describes.
set -euo pipefail

# shellcheck source=scripts/_setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"
cd "$EQUEUE_ROOT"

ensure_venv flask,eventlet

if command -v npm >/dev/null 2>&1; then
    ensure_npm_packages "$EQUEUE_ROOT"
else
    log "npm not found: the page will load the Socket.IO client from its CDN"
fi

client_file="$EQUEUE_ROOT/node_modules/socket.io-client/dist/socket.io.min.js"
if [ -z "${EQUEUE_SOCKETIO_CLIENT_FILE:-}" ] && [ -f "$client_file" ]; then
    export EQUEUE_SOCKETIO_CLIENT_FILE="$client_file"
fi

# Without a secret the demo runs in debug mode, which uses a development secret and
# says so in its log; set EQUEUE_SECRET (32+ characters) to run it for real.
if [ -z "${EQUEUE_SECRET:-}" ]; then
    export EQUEUE_DEBUG="${EQUEUE_DEBUG:-1}"
fi

exec "$EQUEUE_VENV/bin/python" examples/flask_app.py "$@"
