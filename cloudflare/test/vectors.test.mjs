// Every shared admission vector through the Worker in workerd: the tokens the Python
// library mints are accepted, every forged or stale one is refused with the same reason
// TokenSigner.read_admission gives.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { FakeOrigin, admissionCookie, loadVectors, startGate, visit } from "../support/gate.mjs";

const document = loadVectors();

describe("admission vectors", () => {
  const origin = new FakeOrigin();
  let mf;

  before(async () => {
    // expired_within_skew turns stale 20 s after generation; a slow start must not
    // eat that margin unnoticed.
    const ageS = Date.now() / 1000 - document.generated_at;
    assert.ok(ageS < 15, `vectors are ${ageS.toFixed(1)} s old`);
    mf = await startGate(origin, document);
  });

  after(async () => {
    await mf?.dispose();
  });

  for (const vector of document.vectors) {
    const expected = vector.accepted ? "accepted" : `refused (${vector.reason})`;
    test(`${vector.name}: ${vector.description} -> ${expected}`, async () => {
      origin.reset();
      const response = await visit(mf, "/shop/checkout", {
        cookie: admissionCookie(document, vector.admission_token),
      });
      await response.arrayBuffer();

      if (vector.accepted) {
        assert.equal(response.status, 200);
        assert.equal(response.headers.get("X-Equeue-Gate"), "admitted");
        assert.equal(origin.originRequests().length, 1);
      } else {
        assert.equal(response.status, 303);
        assert.equal(response.headers.get("X-Equeue-Gate"), "redirected");
        assert.equal(response.headers.get("X-Equeue-Reason"), vector.reason);
        assert.equal(origin.originRequests().length, 0, "the origin saw a refused request");
      }
    });
  }

  test("no cookie at all is refused as missing", async () => {
    origin.reset();
    const response = await visit(mf, "/shop/checkout");
    assert.equal(response.status, 303);
    assert.equal(response.headers.get("X-Equeue-Reason"), "missing");
    assert.equal(origin.originRequests().length, 0);
  });
});
