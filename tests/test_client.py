"""Tests of equeue.client: the splash page rendering and the browser files."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from equeue import client

ROOT = Path(__file__).resolve().parent.parent
SOCKETIO_DIST = ROOT / "node_modules" / "socket.io-client" / "dist"

HOSTILE = "</script><script>alert(1)</script>"


class _PageParser(HTMLParser):
    """Collects what a browser's parser would see: script bodies and element ids."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, dict[str, str | None]] = {}
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._script_attrs: dict[str, str | None] | None = None
        self._script_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        element_id = attributes.get("id")
        if element_id:
            self.ids[element_id] = {"tag": tag, **attributes}
        if tag == "script":
            self._script_attrs = attributes
            self._script_text = []

    def handle_data(self, data: str) -> None:
        if self._script_attrs is not None:
            self._script_text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script_attrs is not None:
            self.scripts.append((self._script_attrs, "".join(self._script_text)))
            self._script_attrs = None


def _parse(page: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(page)
    parser.close()
    return parser


def _config_from_page(page: str) -> object:
    parser = _parse(page)
    bodies = [
        text for attrs, text in parser.scripts if attrs.get("id") == "equeue-config"
    ]
    assert len(bodies) == 1
    return json.loads(bodies[0])


def _config(**overrides: object) -> dict[str, object]:
    config: dict[str, object] = {
        "room": "default",
        "pass": "pass.value.sig",
        "next": "/shop/tickets/7",
        "wait_url": "/equeue/wait?room=default&next=/shop/tickets/7",
        "admit_url": "/equeue/admit?room=default&next=/shop/tickets/7",
        "static_url": "/equeue/static",
        "socket": {"url": None, "path": "/socket.io"},
        "socketio_client": client.socketio_client_source(None),
        "heartbeat_interval_ms": 5000,
        "heartbeat_ack_timeout_ms": 5000,
        "heartbeat_max_retries": 3,
        "connect_max_attempts": 8,
        "initial": {"position": 3, "queue_length": 4, "eta_seconds": None},
    }
    config.update(overrides)
    return config


def test_rendered_page_carries_the_config_unchanged() -> None:
    config = _config()

    page = client.render_splash(config, static_url="/equeue/static")

    assert _config_from_page(page) == config
    assert "__EQUEUE_" not in page


def test_hostile_config_values_cannot_close_the_script_element() -> None:
    config = _config(
        room=HOSTILE,
        next=f"/shop?q={HOSTILE}&x=<!--",
        extra="line\u2028separator\u2029and & ampersand > gt",
    )

    page = client.render_splash(config, static_url="/equeue/static")

    assert HOSTILE not in page
    body = re.search(r'type="application/json">(.*?)</script>', page, re.DOTALL)
    assert body is not None
    assert "<!--" not in body.group(1)
    assert "\u2028" not in page and "\u2029" not in page
    parser = _parse(page)
    assert not any("alert(1)" in text for attrs, text in parser.scripts if not attrs)
    assert _config_from_page(page) == config


def test_static_url_is_html_escaped_in_the_script_src() -> None:
    hostile_url = '/static"><script>alert(1)</script><x a="'

    page = client.render_splash(_config(), static_url=hostile_url)

    assert hostile_url not in page
    sources = [
        attrs.get("src") for attrs, _ in _parse(page).scripts if attrs.get("src")
    ]
    assert sources == [hostile_url + "/equeue.js"]


def test_static_url_loses_its_trailing_slash() -> None:
    page = client.render_splash(_config(), static_url="/equeue/static/")

    assert 'src="/equeue/static/equeue.js"' in page


def test_placeholders_inside_config_values_are_not_replaced() -> None:
    config = _config(room="__EQUEUE_STATIC__", next="__EQUEUE_CONFIG__")

    page = client.render_splash(config, static_url="/s")

    assert _config_from_page(page) == config


def test_an_edited_template_is_used_instead_of_the_packaged_one() -> None:
    template = (
        "<!doctype html><title>Mine</title>"
        '<script id="equeue-config" type="application/json">__EQUEUE_CONFIG__</script>'
        '<script src="__EQUEUE_STATIC__/equeue.js" defer></script>'
    )

    page = client.render_splash(_config(), static_url="/s", template=template)

    assert page.startswith("<!doctype html><title>Mine</title>")
    assert 'src="/s/equeue.js"' in page
    assert _config_from_page(page) == _config()


def test_a_template_without_the_config_placeholder_is_refused() -> None:
    with pytest.raises(ValueError, match="__EQUEUE_CONFIG__"):
        client.render_splash(_config(), static_url="/s", template="<p>hello</p>")


def test_packaged_splash_page_has_the_elements_the_script_writes_to() -> None:
    page = client.render_splash(_config(), static_url="/equeue/static")
    parser = _parse(page)

    for element_id in (
        "equeue-position",
        "equeue-queue-length",
        "equeue-eta",
        "equeue-status",
        "equeue-error",
        "equeue-retry",
        "equeue-rejoin",
    ):
        assert element_id in parser.ids, element_id
    assert "hidden" in parser.ids["equeue-error"]
    assert parser.ids["equeue-config"]["type"] == "application/json"
    assert re.search(
        r'aria-live="polite"[^>]*>\s*<span[^>]*>[^<]*</span>\s*'
        r'<span[^>]*id="equeue-position"',
        page,
    )
    script = [a for a, _ in parser.scripts if a.get("src")]
    assert script == [{"src": "/equeue/static/equeue.js", "defer": None}]


@pytest.mark.parametrize("name", ["equeue.js", "heartbeat-worker.js"])
def test_static_files_are_served_from_the_package(name: str) -> None:
    body = client.static_file(name)

    assert body == (ROOT / "equeue" / "static" / name).read_bytes()
    assert client.content_type(name) == "text/javascript; charset=utf-8"


@pytest.mark.parametrize(
    "name",
    [
        "../pyproject.toml",
        "../client.py",
        "splash.html",
        "__init__.py",
        "/etc/passwd",
        "equeue.js/../../pyproject.toml",
        "",
    ],
)
def test_static_file_refuses_names_outside_the_allowlist(name: str) -> None:
    with pytest.raises(ValueError, match="not a static file"):
        client.static_file(name)


def test_content_type_of_self_hosted_client_and_unknown_files() -> None:
    assert client.content_type("socket.io.min.js").startswith("text/javascript")
    with pytest.raises(ValueError):
        client.content_type("pyproject.toml")


def test_socketio_client_defaults_to_the_pinned_cdn_copy() -> None:
    source = client.socketio_client_source(None)

    assert source == {
        "url": client.SOCKETIO_CDN_URL,
        "integrity": client.SOCKETIO_INTEGRITY,
    }
    expected_url = (
        f"https://cdn.socket.io/{client.SOCKETIO_CLIENT_VERSION}/socket.io.min.js"
    )
    assert expected_url == client.SOCKETIO_CDN_URL
    assert re.fullmatch(r"sha384-[A-Za-z0-9+/]{64}", client.SOCKETIO_INTEGRITY)


def test_socketio_client_self_hosted_has_no_integrity() -> None:
    source = client.socketio_client_source("/equeue/static/socket.io.min.js")

    assert source == {"url": "/equeue/static/socket.io.min.js", "integrity": None}


def _sri_sha384(path: Path) -> str:
    digest = hashlib.sha384(path.read_bytes()).digest()
    return "sha384-" + base64.b64encode(digest).decode("ascii")


def _npm_client_or_skip() -> Path:
    minified = SOCKETIO_DIST / "socket.io.min.js"
    if not minified.exists():
        message = (
            f"{minified} is missing: run `npm ci` at the repository root (or "
            "`npm install --no-save socket.io-client@"
            f"{client.SOCKETIO_CLIENT_VERSION}`)"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return minified


def test_integrity_matches_the_npm_package_of_the_pinned_version() -> None:
    minified = _npm_client_or_skip()
    installed = json.loads((minified.parent.parent / "package.json").read_text())

    assert installed["version"] == client.SOCKETIO_CLIENT_VERSION
    assert _sri_sha384(minified) == client.SOCKETIO_INTEGRITY


def test_repository_lockfile_pins_the_same_client_version() -> None:
    # `npm ci` installs what the lockfile says, so that is the copy the tests serve.
    lockfile = ROOT / "package-lock.json"
    if not lockfile.exists():
        message = "no package-lock.json at the repository root"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    packages = json.loads(lockfile.read_text())["packages"]

    locked = packages["node_modules/socket.io-client"]["version"]

    assert locked == client.SOCKETIO_CLIENT_VERSION
