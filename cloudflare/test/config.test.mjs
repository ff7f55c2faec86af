// wrangler.toml deploys the script these tests run, and its variables form a working
// configuration once the secret is set.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { test } from "node:test";

import { FakeOrigin, WORKER_SCRIPT, WRANGLER_TOML, loadVectors, startGate, visit } from "../support/gate.mjs";

const toml = readFileSync(WRANGLER_TOML, "utf8");

// Enough TOML for this file: top-level `key = "string"` lines and the [vars] table.
function wranglerSettings() {
  const settings = { top: {}, vars: {} };
  let table = "top";
  for (const line of toml.split("\n")) {
    const header = /^\[([^\]]+)\]\s*$/.exec(line);
    if (header) {
      table = header[1] === "vars" ? "vars" : "other";
      continue;
    }
    const pair = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"([^"]*)"\s*$/.exec(line);
    if (pair && table !== "other") {
      settings[table][pair[1]] = pair[2];
    }
  }
  return settings;
}

test("main points at the script shipped in the Python package", () => {
  const { top } = wranglerSettings();
  assert.equal(resolve(dirname(WRANGLER_TOML), top.main), WORKER_SCRIPT);
  assert.match(top.compatibility_date, /^\d{4}-\d{2}-\d{2}$/);
  assert.ok(top.name);
});

test("the secret is not among the plain variables", () => {
  assert.doesNotMatch(toml, /^\s*EQUEUE_SECRET\s*=/m);
});

test("the [vars] of wrangler.toml plus a secret make a working gate", async () => {
  const document = loadVectors();
  const { vars } = wranglerSettings();
  assert.deepEqual(Object.keys(vars).sort(), [
    "EQUEUE_BYPASS_PATHS",
    "EQUEUE_CLOCK_SKEW_S",
    "EQUEUE_FAIL_MODE",
    "EQUEUE_RETRY_AFTER_S",
    "EQUEUE_ROOM",
    "EQUEUE_WAITING_ROOM_URL",
  ]);
  const origin = new FakeOrigin();
  const mf = await startGate(origin, document, { ...vars, EQUEUE_SECRET: document.secret });
  try {
    const page = await visit(mf, "/shop");
    await page.arrayBuffer();
    assert.equal(page.status, 303);
    assert.equal(page.headers.get("X-Equeue-Gate"), "redirected");
    assert.equal(new URL(page.headers.get("Location")).searchParams.get("room"), vars.EQUEUE_ROOM);

    const asset = await visit(mf, "/static/app.js");
    await asset.arrayBuffer();
    assert.equal(asset.headers.get("X-Equeue-Gate"), "bypass");
  } finally {
    await mf.dispose();
  }
});
