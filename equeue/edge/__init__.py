"""The edge gate: a Cloudflare Worker script shipped as package data.

``worker.js`` in this package is the one source of the Worker, and
``cloudflare/wrangler.toml`` points at it. Read it with
``importlib.resources.files("equeue.edge") / "worker.js"``.
"""
