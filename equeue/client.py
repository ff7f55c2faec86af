"""What the adapters need to serve the browser side of the waiting room.

The splash page, ``equeue.js`` and the heartbeat Web Worker ship as package files in
``equeue/static``. Both adapters (Flask and Starlette) use these helpers so that they
render the same page with the same configuration JSON and serve the same scripts.

The browser client of Socket.IO itself is not shipped: by default the page loads it
from the Socket.IO CDN pinned with a subresource-integrity hash, and an adapter setting
points it at a self-hosted copy instead (the file ``dist/socket.io.min.js`` of the npm
package ``socket.io-client``).
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Mapping
from importlib import resources

__all__ = [
    "SOCKETIO_CDN_URL",
    "SOCKETIO_CLIENT_VERSION",
    "SOCKETIO_INTEGRITY",
    "STATIC_FILES",
    "content_type",
    "render_splash",
    "socketio_client_source",
    "static_file",
]

logger = logging.getLogger(__name__)

#: The socket.io-client release the page loads; the repository's package.json pins
#: the same version so that tests serve the very file the CDN serves.
SOCKETIO_CLIENT_VERSION = "4.8.4"
SOCKETIO_CDN_URL = f"https://cdn.socket.io/{SOCKETIO_CLIENT_VERSION}/socket.io.min.js"
#: SHA-384 of ``dist/socket.io.min.js`` in the npm package of that version. The CDN
#: serves the same bytes, so the browser refuses a tampered copy.
SOCKETIO_INTEGRITY = (
    "sha384-fBrXvbDtHoeKWJ/hcA6M+YGueiDW+h45I7V6F2kD1S8bOkrF9rZYPLVkCR6BLR/1"
)

#: The only package files the static route may serve. An explicit list rather than
#: a directory listing, so that a crafted name can never reach another file.
STATIC_FILES = frozenset({"equeue.js", "heartbeat-worker.js"})

_SPLASH_TEMPLATE = "splash.html"
_CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".map": "application/json",
}
_PLACEHOLDER = re.compile(r"__EQUEUE_(CONFIG|STATIC)__")
# Characters that could end the <script> element or start an HTML comment, and the
# two line separators that older JavaScript parsers treat as newlines. JSON allows
# every one of them to be written as a \u escape, so JSON.parse gets the same value.
_JSON_SCRIPT_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def _package_bytes(name: str) -> bytes:
    return resources.files("equeue").joinpath("static", name).read_bytes()


def static_file(name: str) -> bytes:
    """Return the bytes of the package file ``equeue/static/<name>``.

    :param name: one of :data:`STATIC_FILES`.
    :raises ValueError: for any other name, including paths such as
        ``../pyproject.toml``.
    """
    if name not in STATIC_FILES:
        raise ValueError(
            f"not a static file of equeue: {name!r} "
            f"(served files: {', '.join(sorted(STATIC_FILES))})"
        )
    return _package_bytes(name)


def content_type(name: str) -> str:
    """Return the ``Content-Type`` to serve the static file ``name`` with.

    Works for the package files and for a self-hosted ``socket.io.min.js``.

    :raises ValueError: if the file's extension is not one equeue serves.
    """
    for suffix, value in _CONTENT_TYPES.items():
        if name.endswith(suffix):
            return value
    raise ValueError(f"no content type known for {name!r}")


def socketio_client_source(self_hosted_url: str | None) -> dict[str, str | None]:
    """Say where the page loads the Socket.IO browser client from.

    :param self_hosted_url: URL of a self-hosted ``socket.io.min.js``, or ``None``
        to use the pinned CDN copy.
    :returns: ``{"url": ..., "integrity": ...}``; ``integrity`` is ``None`` for a
        self-hosted copy, which may be any build the operator chose.
    """
    if self_hosted_url:
        return {"url": self_hosted_url, "integrity": None}
    return {"url": SOCKETIO_CDN_URL, "integrity": SOCKETIO_INTEGRITY}


def _json_for_script(config: Mapping[str, object]) -> str:
    text = json.dumps(config, ensure_ascii=False, separators=(",", ":"))
    return text.translate(_JSON_SCRIPT_ESCAPES)


def render_splash(
    config: Mapping[str, object],
    *,
    static_url: str,
    template: str | None = None,
) -> str:
    """Render the splash page.

    Replaces ``__EQUEUE_CONFIG__`` with ``config`` as JSON that cannot end the
    ``<script type="application/json">`` element it sits in, and
    ``__EQUEUE_STATIC__`` with the HTML-escaped ``static_url`` (without a trailing
    slash). Both are replaced in one pass, so text inside the configuration is
    never taken for a placeholder.

    :param config: the page configuration (see ``docs/splash-page.md``).
    :param static_url: the URL prefix ``equeue.js`` is served under.
    :param template: the text of an edited copy of ``splash.html``; ``None`` uses
        the packaged page.
    :raises ValueError: if the template has no ``__EQUEUE_CONFIG__`` placeholder,
        because the page would then never connect.
    """
    if template is None:
        template = _package_bytes(_SPLASH_TEMPLATE).decode("utf-8")
    if "__EQUEUE_CONFIG__" not in template:
        raise ValueError(
            "the splash template has no __EQUEUE_CONFIG__ placeholder; keep the "
            '<script id="equeue-config" type="application/json"> element of the '
            "packaged splash.html"
        )

    config_json = _json_for_script(config)
    static_prefix = html.escape(static_url.rstrip("/"), quote=True)

    def substitute(match: re.Match[str]) -> str:
        return config_json if match.group(1) == "CONFIG" else static_prefix

    return _PLACEHOLDER.sub(substitute, template)
