"""The shared admission token vectors, checked against the Python side.

The same JSON drives the edge Worker's tests (``cloudflare/test/``), so a token that
Python accepts and the Worker refuses, or the other way round, fails one of the two.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import inspect
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from equeue import tokens
from equeue.errors import TokenError
from equeue.tokens import TokenSigner

_GENERATOR = Path(__file__).resolve().parent / "vectors" / "make_token_vectors.py"


def _load_generator() -> ModuleType:
    # tests/ is no package, so the generator is loaded by path rather than imported.
    spec = importlib.util.spec_from_file_location("make_token_vectors", _GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


generator = _load_generator()


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """Write the vectors the way the Worker tests get them, then read them back."""
    assert generator.main([str(generator.DEFAULT_OUTPUT)]) == 0
    loaded: dict[str, Any] = json.loads(generator.DEFAULT_OUTPUT.read_text("utf-8"))
    return loaded


_NAMES = [vector.name for vector in generator.build_vectors(1_700_000_000)]


def test_the_document_describes_the_settings_the_worker_needs(
    document: dict[str, Any],
) -> None:
    assert document["format"] == generator.FORMAT_VERSION
    assert document["cookie_name"] == tokens.admission_cookie_name(document["room"])
    assert len(document["secret"]) >= tokens.MIN_SECRET_LENGTH
    assert [vector["name"] for vector in document["vectors"]] == _NAMES
    assert len(set(_NAMES)) == len(_NAMES)


def test_every_refusal_reason_and_acceptance_is_covered(
    document: dict[str, Any],
) -> None:
    outcomes = {vector["reason"] for vector in document["vectors"]}
    assert outcomes == {None, "missing", "invalid", "expired", "wrong_room"}


@pytest.mark.parametrize("name", _NAMES)
def test_read_admission_reaches_the_vector_outcome(
    document: dict[str, Any], name: str
) -> None:
    vector = next(v for v in document["vectors"] if v["name"] == name)
    signer = TokenSigner(
        document["secret"],
        leeway_s=document["clock_skew_s"],
        clock=lambda: float(document["generated_at"]),
    )

    if vector["accepted"]:
        admission = signer.read_admission(vector["admission_token"], document["room"])
        assert admission.room == document["room"]
        assert admission.visitor_id == generator.VISITOR_ID
    else:
        with pytest.raises(TokenError) as caught:
            signer.read_admission(vector["admission_token"], document["room"])
        assert caught.value.reason == vector["reason"], str(caught.value)


def test_the_vectors_hold_a_few_seconds_later() -> None:
    """The Worker checks them against its own clock moments after they were made."""
    now = 1_700_000_000
    signer = TokenSigner(generator.SECRET, leeway_s=30, clock=lambda: now + 5.0)
    for vector in generator.build_vectors(now):
        try:
            signer.read_admission(vector.admission_token, generator.ROOM)
        except TokenError as exc:
            assert not vector.accepted, vector.name
            assert exc.reason == vector.reason, vector.name
        else:
            assert vector.accepted, vector.name


def _worker_source() -> str:
    return (importlib.resources.files("equeue.edge") / "worker.js").read_text("utf-8")


def test_the_worker_ships_as_package_data() -> None:
    assert "export default" in _worker_source()


@pytest.mark.parametrize(
    ("constant", "expected"),
    [
        ("ADMISSION_COOKIE_PREFIX", json.dumps(tokens.ADMISSION_COOKIE_PREFIX)),
        ("MIN_SECRET_LENGTH", str(tokens.MIN_SECRET_LENGTH)),
        ("MAX_TOKEN_LENGTH", str(tokens._MAX_TOKEN_LENGTH)),
        (
            "DEFAULT_CLOCK_SKEW_S",
            str(int(inspect.signature(TokenSigner).parameters["leeway_s"].default)),
        ),
    ],
)
def test_worker_constants_agree_with_the_python_side(
    constant: str, expected: str
) -> None:
    match = re.search(rf"^const {constant} = (.+);$", _worker_source(), re.MULTILINE)
    assert match is not None, f"{constant} not found in worker.js"
    assert match.group(1) == expected
