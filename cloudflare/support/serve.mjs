// Runs the shipped edge gate (equeue/edge/worker.js) in workerd through Miniflare, in
// front of an equeue origin on loopback: the Worker on 127.0.0.1:<port>, and every
// fetch it makes (the origin's pages, the waiting room, the health check) sent to the
// origin's address. Used by tests/test_edge_e2e.py and for trying the gate locally.
//
//   node support/serve.mjs --port 8787 --origin 127.0.0.1:5000
//
// The origin is reached through Miniflare's outboundService as a workerd external HTTP
// server: the request keeps the URL the visitor used (the Worker's own host), so the
// origin's redirects and the Worker's `next` stay paths on the Worker's site, and
// WebSocket upgrades (Socket.IO on /socket.io/) go through to the origin too.
//
// Configuration comes from the environment, as the Worker's variables:
//   EQUEUE_SECRET            required: the origin's equeue secret
//   EQUEUE_ROOM              default "default"
//   EQUEUE_WAITING_ROOM_URL  default http://127.0.0.1:<port>/equeue/wait
//   EQUEUE_BYPASS_PATHS, EQUEUE_FAIL_MODE, EQUEUE_HEALTH_URL, EQUEUE_CLOCK_SKEW_S,
//   EQUEUE_RETRY_AFTER_S, EQUEUE_HEALTH_CACHE_S, EQUEUE_HEALTH_TIMEOUT_MS: passed on
//   when set (docs/edge-worker.md lists their defaults).
// --port and --origin may also be given as EQUEUE_GATE_PORT and EQUEUE_ORIGIN.
//
// Prints one line starting with "equeue gate ready" once it listens, and stops on
// SIGTERM or SIGINT.

import { dirname } from "node:path";
import { parseArgs } from "node:util";

import { Miniflare } from "miniflare";

import { WORKER_SCRIPT, wranglerCompatibilityDate } from "./gate.mjs";

const LOOPBACK = "127.0.0.1";
const PASSED_VARIABLES = [
  "EQUEUE_SECRET",
  "EQUEUE_ROOM",
  "EQUEUE_WAITING_ROOM_URL",
  "EQUEUE_BYPASS_PATHS",
  "EQUEUE_FAIL_MODE",
  "EQUEUE_HEALTH_URL",
  "EQUEUE_CLOCK_SKEW_S",
  "EQUEUE_RETRY_AFTER_S",
  "EQUEUE_HEALTH_CACHE_S",
  "EQUEUE_HEALTH_TIMEOUT_MS",
];

function fail(message) {
  console.error(`serve.mjs: ${message}`);
  process.exit(2);
}

function parsePort(text, what) {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    fail(`${what} must be a TCP port number, got ${JSON.stringify(text)}`);
  }
  return port;
}

/** Accepts "5000", "127.0.0.1:5000" or "http://127.0.0.1:5000"; loopback only. */
function parseOrigin(text) {
  if (!text) {
    fail("the origin is required: --origin 127.0.0.1:<port> (or EQUEUE_ORIGIN)");
  }
  if (/^[0-9]+$/.test(text)) {
    return `${LOOPBACK}:${parsePort(text, "--origin")}`;
  }
  let url;
  try {
    url = new URL(text.includes("://") ? text : `http://${text}`);
  } catch {
    fail(`--origin must be host:port or an http:// URL, got ${JSON.stringify(text)}`);
  }
  if (url.protocol !== "http:" || url.pathname !== "/" || url.search !== "") {
    fail(`--origin must be a plain http:// address without a path, got ${text}`);
  }
  // This script is a local harness, not a proxy to the wider network.
  if (url.hostname !== LOOPBACK && url.hostname !== "localhost") {
    fail(`--origin must be on loopback (${LOOPBACK}), got ${url.hostname}`);
  }
  return `${LOOPBACK}:${url.port || "80"}`;
}

function readOptions() {
  const { values } = parseArgs({
    options: {
      port: { type: "string" },
      origin: { type: "string" },
    },
    strict: true,
  });
  const port = parsePort(values.port ?? process.env.EQUEUE_GATE_PORT ?? "8787", "--port");
  const origin = parseOrigin(values.origin ?? process.env.EQUEUE_ORIGIN);

  const bindings = {
    EQUEUE_ROOM: "default",
    EQUEUE_WAITING_ROOM_URL: `http://${LOOPBACK}:${port}/equeue/wait`,
  };
  for (const name of PASSED_VARIABLES) {
    const value = process.env[name];
    if (value !== undefined && value !== "") {
      bindings[name] = value;
    }
  }
  if (bindings.EQUEUE_SECRET === undefined) {
    fail("EQUEUE_SECRET must be set to the origin's equeue secret");
  }
  return { port, origin, bindings };
}

async function main() {
  const { port, origin, bindings } = readOptions();

  const mf = new Miniflare({
    host: LOOPBACK,
    port,
    modules: true,
    scriptPath: WORKER_SCRIPT,
    modulesRoot: dirname(WORKER_SCRIPT),
    compatibilityDate: wranglerCompatibilityDate(),
    bindings,
    // An external server, not a function in Node: workerd connects to the origin
    // itself, keeps the request's Host, and carries WebSocket upgrades end to end.
    outboundService: { external: { address: origin, http: {} } },
  });
  const url = await mf.ready;

  // Miniflare's own exit hook already stops workerd and exits with 128 + signal on
  // SIGTERM and SIGINT; this listener runs first, says so in the log, and still
  // stops the runtime should a later Miniflare leave the process running.
  let stopping = false;
  const stop = async (signal) => {
    if (stopping) {
      return;
    }
    stopping = true;
    console.log(`equeue gate: ${signal}, stopping`);
    try {
      await mf.dispose();
    } catch (error) {
      console.error(`equeue gate: stopping failed: ${error.message}`);
      process.exit(1);
    }
    process.exit(0);
  };
  process.prependListener("SIGTERM", () => stop("SIGTERM"));
  process.prependListener("SIGINT", () => stop("SIGINT"));

  console.log(
    `equeue gate ready on ${url.origin} -> origin http://${origin} ` +
      `(room ${bindings.EQUEUE_ROOM}, waiting room ${bindings.EQUEUE_WAITING_ROOM_URL})`,
  );
}

main().catch((error) => {
  console.error(`serve.mjs: could not start the gate: ${error.stack ?? error}`);
  process.exit(1);
});
