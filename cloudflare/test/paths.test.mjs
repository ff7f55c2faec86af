// Every spelling of a protected path is gated; only paths genuinely under a bypass prefix
// go through without a token. Each case is sent twice: through Miniflare's dispatchFetch
// (the URL parsed by a WHATWG parser first, as a browser would) and as a raw HTTP request
// line that reaches workerd byte for byte, as a hostile client would send it.

import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { after, before, describe, test } from "node:test";

import { FakeOrigin, loadVectors, startGate, visit } from "../support/gate.mjs";

const document = loadVectors();

const GATED = [
  "/shop",
  "/SHOP/Item",
  "//shop",
  "///shop//item",
  "/STATIC/../shop",
  "/static/../shop",
  "/static/%2e%2e/shop",
  "/static/%2E%2E/shop",
  "/static/.%2e/shop",
  "/static/%2e%2e%2fshop",
  "/equeue/..%2fshop",
  "/equeue/..%2Fshop",
  "/equeue/%2e%2e%2fshop",
  "/static/..%5cshop",
  "/static/..\\shop",
  "/static/%252e%252e%252fshop",
  "/static/%25252e%25252e%25252fshop",
  "/equeue/..;/shop",
  "/static/..%3b/shop",
  "/static%2f..%2fshop",
  "/static/%00/../../shop",
  "/staticfiles/app.js",
  "/static",
  "/favicon.icox",
  "/healthzz",
  "/socket.iox/",
  "/",
];

const BYPASSED = [
  "/static/app.js",
  "/STATIC/app.js",
  "/Static/css/site.css",
  "//static/app.js",
  "/static/./app.js",
  "/static/img/../app.js",
  "/static/my%20file.png",
  "/static/caf%C3%A9.png",
  "/static/app.js;v=3",
  "/equeue/wait?room=spring-sale&next=%2Fshop",
  "/equeue/static/equeue.js",
  "/socket.io/?EIO=4&transport=polling",
  "/favicon.ico",
  "/healthz",
  "/healthz/deep",
];

/** Sends `path` exactly as written in the request line. */
function rawVisit(baseUrl, path) {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      { host: baseUrl.hostname, port: baseUrl.port, path, method: "GET", headers: { Accept: "text/html" } },
      (incoming) => {
        incoming.resume();
        incoming.on("end", () => resolve({ status: incoming.statusCode, headers: incoming.headers }));
      },
    );
    outgoing.setTimeout(10_000, () => outgoing.destroy(new Error(`timed out on ${path}`)));
    outgoing.on("error", reject);
    outgoing.end();
  });
}

describe("path spellings with the default bypass list", () => {
  const origin = new FakeOrigin();
  let mf;
  let baseUrl;

  before(async () => {
    mf = await startGate(origin, document);
    baseUrl = await mf.ready;
  });
  after(async () => {
    await mf?.dispose();
  });

  for (const path of GATED) {
    test(`${path} is gated`, async () => {
      origin.reset();
      const parsed = await visit(mf, path);
      await parsed.arrayBuffer();
      assert.equal(parsed.headers.get("X-Equeue-Gate"), "redirected", "via dispatchFetch");

      const raw = await rawVisit(baseUrl, path);
      assert.equal(raw.headers["x-equeue-gate"], "redirected", "via a raw request line");
      assert.equal(origin.originRequests().length, 0);
    });
  }

  for (const path of BYPASSED) {
    test(`${path} is bypassed`, async () => {
      origin.reset();
      const parsed = await visit(mf, path);
      await parsed.arrayBuffer();
      assert.equal(parsed.status, 200);
      assert.equal(parsed.headers.get("X-Equeue-Gate"), "bypass", "via dispatchFetch");

      const raw = await rawVisit(baseUrl, path);
      assert.equal(raw.headers["x-equeue-gate"], "bypass", "via a raw request line");
      assert.equal(origin.originRequests().length, 2);
      assert.deepEqual(origin.healthChecks, [], "a bypass needs no health check");
    });
  }
});

describe("configured bypass paths", () => {
  const origin = new FakeOrigin();
  let mf;

  before(async () => {
    mf = await startGate(origin, document, { EQUEUE_BYPASS_PATHS: " /Assets/ , /robots.txt,," });
  });
  after(async () => {
    await mf?.dispose();
  });

  for (const [path, gate] of [
    ["/assets/logo.svg", "bypass"],
    ["/ASSETS/logo.svg", "bypass"],
    ["/robots.txt", "bypass"],
    ["/robots.txt.bak", "redirected"],
    ["/static/app.js", "redirected"],
    ["/equeue/wait", "redirected"],
  ]) {
    test(`${path} -> ${gate}`, async () => {
      const response = await visit(mf, path);
      await response.arrayBuffer();
      assert.equal(response.headers.get("X-Equeue-Gate"), gate);
    });
  }
});

describe("an empty bypass list", () => {
  const origin = new FakeOrigin();
  let mf;

  before(async () => {
    mf = await startGate(origin, document, { EQUEUE_BYPASS_PATHS: "" });
  });
  after(async () => {
    await mf?.dispose();
  });

  test("gates everything", async () => {
    const response = await visit(mf, "/static/app.js");
    await response.arrayBuffer();
    assert.equal(response.headers.get("X-Equeue-Gate"), "redirected");
  });
});
