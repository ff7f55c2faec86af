// When the waiting room cannot be reached the gate follows EQUEUE_FAIL_MODE and says so
// in X-Equeue-Gate; clock skew is tolerated up to EQUEUE_CLOCK_SKEW_S; a broken
// configuration refuses everything. The last group runs against a real HTTP server on
// loopback instead of Miniflare's outbound hook.

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, beforeEach, describe, test } from "node:test";

import {
  FakeOrigin,
  admissionCookie,
  loadVectors,
  startGate,
  vectorNamed,
  visit,
} from "../support/gate.mjs";

const document = loadVectors();
const token = (name) => vectorNamed(document, name).admission_token;

async function drained(responsePromise) {
  const response = await responsePromise;
  const text = await response.text();
  return { response, text };
}

describe("fail closed (the default)", () => {
  const origin = new FakeOrigin();
  let mf;

  before(async () => {
    origin.health = "down";
    mf = await startGate(origin, document, {
      EQUEUE_FAIL_MODE: undefined,
      EQUEUE_RETRY_AFTER_S: "12",
      EQUEUE_HEALTH_CACHE_S: "0",
    });
  });
  after(async () => {
    await mf?.dispose();
  });
  beforeEach(() => origin.reset());

  test("a page gets a friendly 503 that retries by itself", async () => {
    const { response, text } = await drained(visit(mf, "/shop", { accept: "text/html" }));
    assert.equal(response.status, 503);
    assert.equal(response.headers.get("X-Equeue-Gate"), "fail-closed");
    assert.equal(response.headers.get("Retry-After"), "12");
    assert.match(response.headers.get("Content-Type"), /^text\/html/);
    assert.match(text, /<meta http-equiv="refresh" content="12">/);
    assert.match(text, /tries again by itself in 12 seconds/);
    assert.equal(origin.originRequests().length, 0);
    assert.equal(origin.healthChecks.length, 1);
  });

  test("a JSON client gets a 503 JSON answer", async () => {
    const { response, text } = await drained(visit(mf, "/api/cart", { accept: "application/json" }));
    assert.equal(response.status, 503);
    assert.equal(response.headers.get("X-Equeue-Gate"), "fail-closed");
    assert.equal(response.headers.get("Retry-After"), "12");
    assert.deepEqual(JSON.parse(text), { error: "waiting_room_unavailable", room: document.room });
  });

  test("admitted visitors and bypass paths are not affected", async () => {
    const admitted = await drained(visit(mf, "/shop", { cookie: admissionCookie(document, token("valid")) }));
    assert.equal(admitted.response.headers.get("X-Equeue-Gate"), "admitted");
    const asset = await drained(visit(mf, "/static/app.js"));
    assert.equal(asset.response.headers.get("X-Equeue-Gate"), "bypass");
    assert.deepEqual(origin.healthChecks, []);
  });

  test("a waiting room that is back is used again", async () => {
    origin.health = "up";
    try {
      const { response } = await drained(visit(mf, "/shop"));
      assert.equal(response.status, 303);
      assert.equal(response.headers.get("X-Equeue-Gate"), "redirected");
    } finally {
      origin.health = "down";
    }
  });

  for (const health of ["hang", "refuse"]) {
    test(`a health check that ${health === "hang" ? "times out" : "fails"} counts as down`, async () => {
      origin.health = health;
      try {
        const started = Date.now();
        const { response } = await drained(visit(mf, "/shop"));
        assert.equal(response.headers.get("X-Equeue-Gate"), "fail-closed");
        assert.ok(Date.now() - started < 4_000, "the health check must time out quickly");
      } finally {
        origin.health = "down";
      }
    });
  }
});

describe("fail open", () => {
  const origin = new FakeOrigin();
  let mf;

  before(async () => {
    origin.health = "down";
    mf = await startGate(origin, document, { EQUEUE_FAIL_MODE: "open" });
  });
  after(async () => {
    await mf?.dispose();
  });

  test("lets the visitor through to the origin and says so", async () => {
    origin.reset();
    const { response, text } = await drained(
      visit(mf, "/shop?x=1", { cookie: admissionCookie(document, token("tampered_signature")) }),
    );
    assert.equal(response.status, 200);
    assert.equal(text, "origin page /shop?x=1");
    assert.equal(response.headers.get("X-Equeue-Gate"), "fail-open");
    assert.equal(origin.originRequests().length, 1);
  });

  test("caches the health result for a few seconds", async () => {
    origin.reset();
    for (let visitor = 0; visitor < 5; visitor += 1) {
      const { response } = await drained(visit(mf, `/shop/${visitor}`));
      assert.equal(response.headers.get("X-Equeue-Gate"), "fail-open");
    }
    assert.ok(origin.healthChecks.length <= 1, `${origin.healthChecks.length} health checks`);
  });
});

describe("clock skew", () => {
  const origin = new FakeOrigin();
  let strict;
  let lenient;

  before(async () => {
    strict = await startGate(origin, document, { EQUEUE_CLOCK_SKEW_S: "0" });
    lenient = await startGate(origin, document, { EQUEUE_CLOCK_SKEW_S: "300" });
  });
  after(async () => {
    await strict?.dispose();
    await lenient?.dispose();
  });

  async function gateFor(mf, name) {
    const { response } = await drained(visit(mf, "/shop", { cookie: admissionCookie(document, token(name)) }));
    return [response.headers.get("X-Equeue-Gate"), response.headers.get("X-Equeue-Reason")];
  }

  // With the default 30 s these are decided the other way (see vectors.test.mjs), which
  // shows that the configured skew is what decides them.
  test("without skew, a token expired 10 s ago is refused", async () => {
    assert.deepEqual(await gateFor(strict, "expired_within_skew"), ["redirected", "expired"]);
  });

  test("without skew, a valid token is still accepted", async () => {
    assert.deepEqual(await gateFor(strict, "valid"), ["admitted", null]);
  });

  test("with 300 s of skew, a token expired 120 s ago is accepted", async () => {
    assert.deepEqual(await gateFor(lenient, "expired"), ["admitted", null]);
  });

  test("with 300 s of skew, a token issued 120 s in the future is accepted", async () => {
    assert.deepEqual(await gateFor(lenient, "future_iat_beyond_skew"), ["admitted", null]);
  });
});

describe("misconfiguration", () => {
  const broken = {
    "no secret": { EQUEUE_SECRET: undefined },
    "a short secret": { EQUEUE_SECRET: "x".repeat(31) },
    "a bad room": { EQUEUE_ROOM: "spring sale" },
    "no waiting room URL": { EQUEUE_WAITING_ROOM_URL: undefined },
    "a relative waiting room URL": { EQUEUE_WAITING_ROOM_URL: "/equeue/wait" },
    "an unknown fail mode": { EQUEUE_FAIL_MODE: "sometimes" },
    "a bypass path of /": { EQUEUE_BYPASS_PATHS: "/static/,/" },
    "a negative skew": { EQUEUE_CLOCK_SKEW_S: "-5" },
  };

  for (const [what, vars] of Object.entries(broken)) {
    test(`${what} refuses every request, even with fail mode open`, async () => {
      const origin = new FakeOrigin();
      const mf = await startGate(origin, document, { EQUEUE_FAIL_MODE: "open", ...vars });
      try {
        for (const path of ["/shop", "/static/app.js"]) {
          const { response } = await drained(
            visit(mf, path, { cookie: admissionCookie(document, token("valid")) }),
          );
          assert.equal(response.status, 503);
          assert.equal(response.headers.get("X-Equeue-Gate"), "misconfigured");
        }
        assert.equal(origin.requests.length, 0);
      } finally {
        await mf.dispose();
      }
    });
  }
});

describe("a real origin on loopback", () => {
  const seen = [];
  let healthy = true;
  let server;
  let base;
  let mf;

  before(async () => {
    server = createServer((request, response) => {
      if (request.url === "/equeue/health") {
        response.writeHead(healthy ? 200 : 503, { "Content-Type": "application/json" });
        response.end(JSON.stringify({ ok: healthy }));
        return;
      }
      seen.push({ url: request.url, cookie: request.headers.cookie });
      response.writeHead(200, { "Content-Type": "text/plain" });
      response.end(`real origin ${request.url}`);
    });
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${server.address().port}`;
    // No outboundService: the Worker's fetches go out through workerd's own network stack.
    mf = await startGate(null, document, {
      EQUEUE_WAITING_ROOM_URL: `${base}/equeue/wait`,
      EQUEUE_HEALTH_CACHE_S: "0",
    });
  });
  after(async () => {
    await mf?.dispose();
    await new Promise((resolve) => server?.close(resolve));
  });

  test("admits, redirects and fails closed against real sockets", async () => {
    const cookie = admissionCookie(document, token("valid"));
    const admitted = await mf.dispatchFetch(`${base}/shop?a=1`, { headers: { Cookie: cookie } });
    assert.equal(await admitted.text(), "real origin /shop?a=1");
    assert.equal(admitted.headers.get("X-Equeue-Gate"), "admitted");
    assert.deepEqual(seen, [{ url: "/shop?a=1", cookie }]);

    const redirected = await mf.dispatchFetch(`${base}/shop`, { redirect: "manual" });
    await redirected.arrayBuffer();
    assert.equal(redirected.status, 303);
    assert.equal(new URL(redirected.headers.get("Location")).searchParams.get("next"), "/shop");

    healthy = false;
    const closed = await mf.dispatchFetch(`${base}/shop`, { redirect: "manual" });
    await closed.arrayBuffer();
    assert.equal(closed.headers.get("X-Equeue-Gate"), "fail-closed");
    assert.equal(seen.length, 1);
  });
});
