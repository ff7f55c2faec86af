"""A missing install extra is a clear error naming the pip command."""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCK = """
import importlib.abc, sys

class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}")
        return None

sys.meta_path.insert(0, Missing())
try:
    import {module}
except ImportError as exc:
    print(exc)
"""


@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [
        ("equeue.adapters.flask", {"flask", "flask_socketio"}, "equeue[flask]"),
        (
            "equeue.adapters.starlette",
            {"starlette", "socketio", "engineio"},
            "equeue[starlette]",
        ),
    ],
)
def test_importing_an_adapter_without_its_extra_names_the_pip_command(
    module, blocked, extra
):
    result = subprocess.run(
        [sys.executable, "-c", BLOCK.format(module=module, blocked=sorted(blocked))],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert f"pip install '{extra}'" in result.stdout, result.stdout + result.stderr


def test_the_core_imports_no_web_framework():
    probe = (
        "import sys, equeue, equeue.stores.redis, equeue.stores.redis_async\n"
        "print(sorted(m for m in ('flask', 'flask_socketio', 'starlette', 'socketio',"
        " 'eventlet') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )

    assert result.stdout.strip() == "[]", result.stderr
