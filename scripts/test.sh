#!/usr/bin/env bash
# Runs every equeue test: pytest (extra arguments go to pytest), then the Cloudflare
# Worker's node tests when cloudflare/test/ has any.
#
# On a fresh Debian machine it first installs what the tests need: redis-server,
# redis-tools and chromium with apt-get (as root), a venv at .venv with
# `pip install -e '.[dev]'`, and the npm packages at the repo root and in cloudflare/.
# Each step is skipped when already done, so a second run goes straight to the tests.
#
# The last line printed is the combined count, "N passed, N failed[, N skipped]"; the
# exit status is non-zero when anything failed or when a runner ran no test.
#
# Environment: CI=true turns a missing browser or service into a failure instead of a
# skip (the fixtures read it); EQUEUE_SKIP_NODE_TESTS=1 leaves out the node tests.
set -euo pipefail

# shellcheck source=scripts/_setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"
cd "$EQUEUE_ROOT"

ensure_system_packages redis-server:redis-server redis-cli:redis-tools chromium:chromium
ensure_venv dev
ensure_npm_packages "$EQUEUE_ROOT"
ensure_npm_packages "$EQUEUE_ROOT/cloudflare"

results_dir="$(mktemp -d "${TMPDIR:-/tmp}/equeue-test.XXXXXX")"
trap 'rm -rf "$results_dir"' EXIT

# Test runners' failures are counted below, not fatal here.
set +e

log "running pytest $*"
# The report path goes last so that it wins over one given on the command line.
"$EQUEUE_VENV/bin/python" -m pytest "$@" --junitxml="$results_dir/pytest.xml"
pytest_rc=$?

node_rc=skipped
node_test_dir="cloudflare/test"
if [ "${EQUEUE_SKIP_NODE_TESTS:-0}" = "1" ]; then
    log "EQUEUE_SKIP_NODE_TESTS=1: not running the node tests"
elif [ -d "$node_test_dir" ] && [ -n "$(find "$node_test_dir" -path '*/node_modules' -prune -o \
        -type f \( -name '*.js' -o -name '*.mjs' -o -name '*.cjs' \) -print -quit)" ]; then
    log "running node --test $node_test_dir/"
    # The Worker tests mint tokens with the Python library through this interpreter.
    EQUEUE_PYTHON="$EQUEUE_VENV/bin/python" node --test \
        --test-reporter=spec --test-reporter-destination=stdout \
        --test-reporter=tap --test-reporter-destination="$results_dir/node.tap" \
        "$node_test_dir/" </dev/null
    node_rc=$?
fi

"$EQUEUE_VENV/bin/python" - "$results_dir/pytest.xml" "$pytest_rc" \
    "$results_dir/node.tap" "$node_rc" <<'PY'
"""Adds up pytest's JUnit XML and node's TAP summary into one closing line."""

import os
import re
import sys
import xml.etree.ElementTree as ET

junit_path, pytest_rc_text, tap_path, node_rc_text = sys.argv[1:5]
passed = failed = skipped = 0


def note(message: str) -> None:
    print(f"[equeue] {message}", file=sys.stderr)


pytest_rc = int(pytest_rc_text)
pytest_failed = 0
if os.path.exists(junit_path) and os.path.getsize(junit_path) > 0:
    root = ET.parse(junit_path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    for suite in suites:
        total = int(suite.get("tests", 0))
        bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skip = int(suite.get("skipped", 0))
        passed += max(total - bad - skip, 0)
        pytest_failed += bad
        skipped += skip
if pytest_rc == 5:
    note("pytest collected no tests: counted as a failure")
    pytest_failed += 1
elif pytest_rc != 0 and pytest_failed == 0:
    # Interrupted, internal error or usage error: nothing in the XML says so.
    note(f"pytest exited with status {pytest_rc}: counted as a failure")
    pytest_failed += 1
failed += pytest_failed

if node_rc_text != "skipped":
    node_rc = int(node_rc_text)
    counts: dict[str, int] = {}
    if os.path.exists(tap_path):
        with open(tap_path, encoding="utf-8", errors="replace") as tap:
            for line in tap:
                match = re.fullmatch(r"# (tests|pass|fail|cancelled|skipped|todo) (\d+)", line.strip())
                if match:
                    counts[match.group(1)] = int(match.group(2))
    node_failed = counts.get("fail", 0) + counts.get("cancelled", 0)
    passed += counts.get("pass", 0)
    skipped += counts.get("skipped", 0) + counts.get("todo", 0)
    if counts.get("tests", 0) == 0:
        note("node --test ran no tests: counted as a failure")
        node_failed += 1
    elif node_rc != 0 and node_failed == 0:
        note(f"node --test exited with status {node_rc}: counted as a failure")
        node_failed += 1
    failed += node_failed

line = f"{passed} passed, {failed} failed"
if skipped:
    line += f", {skipped} skipped"
print(line)
sys.exit(1 if failed else 0)
PY
