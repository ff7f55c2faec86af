"""The built wheel ships every package file, and the code passes its own checks."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SHIPPED = [
    "equeue/py.typed",
    "equeue/static/splash.html",
    "equeue/static/equeue.js",
    "equeue/static/heartbeat-worker.js",
    "equeue/edge/worker.js",
    "equeue/lua/_common.lua",
    "equeue/lua/join.lua",
    "equeue/lua/heartbeat.lua",
    "equeue/lua/snapshot.lua",
    "equeue/lua/tick.lua",
    "equeue/lua/renew.lua",
    "equeue/lua/leave.lua",
    "equeue/adapters/flask.py",
    "equeue/adapters/starlette.py",
]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
    )
    (built,) = out.glob("equeue-*.whl")
    return built


def test_the_wheel_ships_the_page_the_scripts_and_the_worker(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())

    assert [name for name in SHIPPED if name not in names] == []
    assert not [n for n in names if "node_modules" in n or n.startswith("tests/")]


def test_package_files_load_from_the_installed_wheel(wheel: Path, tmp_path: Path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    probe = (
        "import equeue, importlib.resources as r\n"
        f"assert equeue.__file__.startswith({str(target)!r}), equeue.__file__\n"
        "from equeue.client import static_file\n"
        "from equeue.stores._redis_common import load_script\n"
        "assert b'socket' in static_file('equeue.js')\n"
        "assert 'ZPOPMIN' in load_script('tick')\n"
        "assert 'fetch' in r.files('equeue.edge').joinpath('worker.js').read_text()\n"
        "print('ok')\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )

    assert result.stdout.strip() == "ok", result.stderr


def test_ruff_finds_nothing():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "equeue", "tests", "examples"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout


def test_the_package_is_formatted():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "equeue"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout


def test_mypy_strict_passes_on_the_package():
    result = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout
