// Shared set-up for the Worker tests: the shipped script running in workerd through
// Miniflare, a recording origin behind it, and the admission vectors made by the
// Python generator (tests/vectors/make_token_vectors.py).

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { Miniflare } from "miniflare";

const here = dirname(fileURLToPath(import.meta.url));
export const CLOUDFLARE_DIR = resolve(here, "..");
export const REPO_ROOT = resolve(CLOUDFLARE_DIR, "..");
export const WORKER_SCRIPT = join(REPO_ROOT, "equeue", "edge", "worker.js");
export const WRANGLER_TOML = join(CLOUDFLARE_DIR, "wrangler.toml");

export const SITE = "https://shop.example.com";
export const WAITING_ROOM_URL = `${SITE}/equeue/wait`;
export const HEALTH_PATH = "/equeue/health";

/** The compatibility date of wrangler.toml, so the tests run what gets deployed. */
export function wranglerCompatibilityDate() {
  const match = /^compatibility_date\s*=\s*"([0-9-]+)"/m.exec(readFileSync(WRANGLER_TOML, "utf8"));
  if (!match) {
    throw new Error(`no compatibility_date in ${WRANGLER_TOML}`);
  }
  return match[1];
}

/**
 * Runs the vector generator with EQUEUE_PYTHON (the project's venv, with PyJWT) or
 * python3, and returns the parsed document.
 */
export function loadVectors() {
  const python = process.env.EQUEUE_PYTHON || "python3";
  const directory = mkdtempSync(join(tmpdir(), "equeue-vectors-"));
  const output = join(directory, "admission_vectors.json");
  try {
    execFileSync(python, [join(REPO_ROOT, "tests", "vectors", "make_token_vectors.py"), output], {
      cwd: REPO_ROOT,
      stdio: ["ignore", "inherit", "inherit"],
      timeout: 60_000,
    });
    const document = JSON.parse(readFileSync(output, "utf8"));
    if (document.format !== 1) {
      throw new Error(`unexpected vector format ${document.format}`);
    }
    return document;
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

export function vectorNamed(document, name) {
  const vector = document.vectors.find((candidate) => candidate.name === name);
  if (!vector) {
    throw new Error(`no vector named ${name}`);
  }
  return vector;
}

/**
 * The origin and the waiting room's health endpoint, answered in Node through
 * Miniflare's outboundService: every fetch the Worker makes lands here and is recorded.
 * `health` is "up", "down" (503), "hang" (never answers) or "refuse" (network error).
 */
export class FakeOrigin {
  constructor() {
    this.health = "up";
    this.requests = [];
    this.healthChecks = [];
  }

  reset() {
    this.requests = [];
    this.healthChecks = [];
  }

  originRequests() {
    return this.requests.filter((request) => new URL(request.url).pathname !== HEALTH_PATH);
  }

  handle = async (request) => {
    const url = new URL(request.url);
    if (url.pathname === HEALTH_PATH) {
      this.healthChecks.push(request.url);
      if (this.health === "hang") {
        // Resolves long after the Worker's timeout, so no promise is left behind.
        await new Promise((done) => setTimeout(done, 5_000));
      }
      if (this.health === "refuse") {
        throw new Error("connection refused");
      }
      const up = this.health === "up";
      return Response.json({ ok: up, store: up ? "ok" : "down" }, { status: up ? 200 : 503 });
    }

    const body = request.method === "GET" || request.method === "HEAD" ? "" : await request.text();
    this.requests.push({
      method: request.method,
      url: request.url,
      headers: Object.fromEntries(request.headers),
      body,
    });
    return new Response(`origin page ${url.pathname}${url.search}`, {
      status: 200,
      headers: { "Content-Type": "text/plain", "X-Origin": "yes" },
    });
  };
}

/**
 * Starts the shipped Worker in workerd. `vars` override the defaults below (a value of
 * undefined removes the variable). With `origin` null the Worker's fetches go out to the
 * network (tests point them at a loopback server).
 */
export async function startGate(origin, document, vars = {}) {
  const bindings = {
    EQUEUE_SECRET: document.secret,
    EQUEUE_ROOM: document.room,
    EQUEUE_WAITING_ROOM_URL: WAITING_ROOM_URL,
    EQUEUE_CLOCK_SKEW_S: String(document.clock_skew_s),
    ...vars,
  };
  for (const [name, value] of Object.entries(bindings)) {
    if (value === undefined) {
      delete bindings[name];
    }
  }
  const options = {
    modules: true,
    scriptPath: WORKER_SCRIPT,
    // The script lives outside this folder; module names are taken relative to this.
    modulesRoot: dirname(WORKER_SCRIPT),
    compatibilityDate: wranglerCompatibilityDate(),
    bindings,
  };
  if (origin !== null) {
    options.outboundService = origin.handle;
  }
  const mf = new Miniflare(options);
  await mf.ready;
  return mf;
}

/** Sends a request through the gate without following redirects. */
export function visit(mf, path, { cookie, accept, method = "GET", headers = {}, body } = {}) {
  const requestHeaders = { ...headers };
  if (cookie !== undefined) {
    requestHeaders.Cookie = cookie;
  }
  if (accept !== undefined) {
    requestHeaders.Accept = accept;
  }
  // Concatenated, not resolved: `//shop` must stay a path, not become a host.
  return mf.dispatchFetch(`${SITE}${path}`, {
    method,
    headers: requestHeaders,
    body,
    redirect: "manual",
  });
}

export function admissionCookie(document, token) {
  return `${document.cookie_name}=${token}`;
}
