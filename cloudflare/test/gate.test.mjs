// What the gate does with admitted and unadmitted visitors: the origin sees admitted
// requests unchanged, pages are redirected to the waiting room with their return
// address, and clients asking for JSON get a 503 they can act on.

import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";

import {
  FakeOrigin,
  WAITING_ROOM_URL,
  admissionCookie,
  loadVectors,
  startGate,
  vectorNamed,
  visit,
} from "../support/gate.mjs";

const document = loadVectors();
const valid = vectorNamed(document, "valid").admission_token;
const expired = vectorNamed(document, "expired").admission_token;

describe("admitted visitors", () => {
  const origin = new FakeOrigin();
  let mf;

  before(async () => {
    mf = await startGate(origin, document);
  });
  after(async () => {
    await mf?.dispose();
  });
  beforeEach(() => origin.reset());

  test("a GET goes to the origin unchanged and the answer comes back unchanged", async () => {
    const cookie = `theme=dark; ${admissionCookie(document, valid)}; lang=en`;
    const response = await visit(mf, "/shop/item?id=3&colour=blue", {
      cookie,
      accept: "text/html",
      headers: { "X-Custom": "kept", "User-Agent": "gate-test" },
    });

    assert.equal(response.status, 200);
    assert.equal(await response.text(), "origin page /shop/item?id=3&colour=blue");
    assert.equal(response.headers.get("X-Origin"), "yes");
    assert.equal(response.headers.get("X-Equeue-Gate"), "admitted");

    const [seen] = origin.originRequests();
    assert.equal(origin.originRequests().length, 1);
    assert.equal(seen.method, "GET");
    assert.equal(seen.url, "https://shop.example.com/shop/item?id=3&colour=blue");
    assert.equal(seen.headers.cookie, cookie);
    assert.equal(seen.headers["x-custom"], "kept");
    assert.equal(seen.headers["user-agent"], "gate-test");
    assert.deepEqual(
      Object.keys(seen.headers).filter((name) => name.startsWith("x-equeue")),
      [],
      "the gate must not add headers to the origin request",
    );
  });

  test("a POST keeps its method and body", async () => {
    const response = await visit(mf, "/shop/cart", {
      method: "POST",
      cookie: admissionCookie(document, valid),
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: "item=42&quantity=2",
    });
    assert.equal(response.status, 200);
    await response.arrayBuffer();
    const [seen] = origin.originRequests();
    assert.equal(seen.method, "POST");
    assert.equal(seen.body, "item=42&quantity=2");
  });

  test("the origin is asked without a health check first", async () => {
    const response = await visit(mf, "/shop", { cookie: admissionCookie(document, valid) });
    await response.arrayBuffer();
    assert.deepEqual(origin.healthChecks, []);
  });

  test("any valid one of several same-named cookies admits", async () => {
    const cookie = `${admissionCookie(document, expired)}; ${admissionCookie(document, valid)}`;
    const response = await visit(mf, "/shop", { cookie });
    await response.arrayBuffer();
    assert.equal(response.headers.get("X-Equeue-Gate"), "admitted");
  });

  test("a quoted cookie value is read like an unquoted one", async () => {
    const response = await visit(mf, "/shop", {
      cookie: `${document.cookie_name}="${valid}"`,
    });
    await response.arrayBuffer();
    assert.equal(response.headers.get("X-Equeue-Gate"), "admitted");
  });

  test("a cookie for another room's name does not count", async () => {
    const response = await visit(mf, "/shop", {
      cookie: `equeue_admission_other=${valid}; x${document.cookie_name}=${valid}`,
    });
    await response.arrayBuffer();
    assert.equal(response.status, 303);
    assert.equal(response.headers.get("X-Equeue-Reason"), "missing");
  });
});

describe("visitors without admission", () => {
  const origin = new FakeOrigin();
  let mf;

  before(async () => {
    mf = await startGate(origin, document, { EQUEUE_RETRY_AFTER_S: "7" });
  });
  after(async () => {
    await mf?.dispose();
  });
  beforeEach(() => origin.reset());

  test("a page is redirected to the waiting room with its path as the return address", async () => {
    const response = await visit(mf, "/shop/item?id=3", {
      accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    });
    await response.arrayBuffer();

    assert.equal(response.status, 303);
    assert.equal(response.headers.get("X-Equeue-Gate"), "redirected");
    assert.equal(response.headers.get("Cache-Control"), "no-store");
    const location = new URL(response.headers.get("Location"));
    assert.equal(`${location.origin}${location.pathname}`, WAITING_ROOM_URL);
    assert.equal(location.searchParams.get("room"), document.room);
    assert.equal(location.searchParams.get("next"), "/shop/item?id=3");
    assert.equal(origin.originRequests().length, 0);
  });

  test("an expired token is redirected too, saying why", async () => {
    const response = await visit(mf, "/shop", { cookie: admissionCookie(document, expired) });
    await response.arrayBuffer();
    assert.equal(response.status, 303);
    assert.equal(response.headers.get("X-Equeue-Reason"), "expired");
  });

  test("a leading double slash never becomes a host in the return address", async () => {
    const response = await visit(mf, "//evil.example/x");
    await response.arrayBuffer();
    const location = new URL(response.headers.get("Location"));
    assert.equal(location.searchParams.get("next"), "/evil.example/x");
  });

  for (const accept of [
    "application/json",
    "application/json, text/plain, */*",
    "text/html;q=0.5, application/json",
    "application/*",
  ]) {
    test(`Accept: ${accept} gets a 503 JSON answer with Retry-After`, async () => {
      const response = await visit(mf, "/api/cart?x=1", { accept });
      assert.equal(response.status, 503);
      assert.equal(response.headers.get("X-Equeue-Gate"), "rejected");
      assert.equal(response.headers.get("X-Equeue-Reason"), "missing");
      assert.equal(response.headers.get("Retry-After"), "7");
      assert.match(response.headers.get("Content-Type"), /^application\/json/);
      const body = await response.json();
      assert.equal(body.error, "waiting_room");
      assert.equal(body.room, document.room);
      const target = new URL(body.waiting_room_url);
      assert.equal(target.searchParams.get("next"), "/api/cart?x=1");
      assert.equal(origin.originRequests().length, 0);
    });
  }

  for (const accept of [
    undefined,
    "*/*",
    "text/html",
    "text/html, application/json",
    "application/json;q=0.5, text/html",
    "application/json;q=0, */*",
  ]) {
    test(`Accept: ${accept ?? "(none)"} is treated as a page`, async () => {
      const response = await visit(mf, "/shop", { accept });
      await response.arrayBuffer();
      assert.equal(response.status, 303);
    });
  }
});

describe("a waiting room on another host", () => {
  const origin = new FakeOrigin();
  let mf;

  before(async () => {
    mf = await startGate(origin, document, {
      EQUEUE_WAITING_ROOM_URL: "https://queue.example.net/equeue/wait?lang=en",
    });
  });
  after(async () => {
    await mf?.dispose();
  });

  test("gets the full URL to return to, and its own query is kept", async () => {
    const response = await visit(mf, "/shop/item?id=3");
    await response.arrayBuffer();
    const location = new URL(response.headers.get("Location"));
    assert.equal(location.origin, "https://queue.example.net");
    assert.equal(location.searchParams.get("lang"), "en");
    assert.equal(location.searchParams.get("room"), document.room);
    assert.equal(location.searchParams.get("next"), "https://shop.example.com/shop/item?id=3");
  });

  test("is health-checked on its own origin by default", async () => {
    const response = await visit(mf, "/other");
    await response.arrayBuffer();
    assert.deepEqual(origin.healthChecks, ["https://queue.example.net/equeue/health"]);
  });
});
