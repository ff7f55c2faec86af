/**
 * equeue edge gate: a Cloudflare Worker that keeps visitors without a valid admission
 * token for the room away from the origin.
 *
 * The admission token is the one equeue's Python side issues (equeue/tokens.py): a JWT
 * signed with HS256 using the raw UTF-8 bytes of the shared secret, with the claims
 * `sub` (visitor id), `aud` (room), `iat` and `exp`, carried in the cookie
 * `equeue_admission_<room>`. The checks below follow PyJWT's decoding as tokens.py calls
 * it, step by step, so that the edge and the origin accept and refuse the same tokens
 * for the same reasons (tests/vectors/make_token_vectors.py holds the shared cases).
 *
 * Configuration (Worker variables and one secret):
 *   EQUEUE_SECRET            secret, at least 32 bytes; `wrangler secret put EQUEUE_SECRET`
 *   EQUEUE_ROOM              room name, ^[A-Za-z0-9_-]{1,64}$
 *   EQUEUE_WAITING_ROOM_URL  absolute URL of the waiting room page (…/equeue/wait)
 *   EQUEUE_BYPASS_PATHS      comma-separated path prefixes that are never gated
 *   EQUEUE_FAIL_MODE         "open" or "closed" (default) when the waiting room is down
 *   EQUEUE_HEALTH_URL        default: origin of the waiting room URL + /equeue/health
 *   EQUEUE_CLOCK_SKEW_S      tolerated clock difference in seconds (default 30)
 *   EQUEUE_RETRY_AFTER_S     Retry-After of the 503 answers (default 10)
 *   EQUEUE_HEALTH_CACHE_S    how long a health result is reused (default 5)
 *   EQUEUE_HEALTH_TIMEOUT_MS how long the health check may take (default 1500)
 *
 * Every response says what the gate did in the `X-Equeue-Gate` header: admitted,
 * bypass, redirected, rejected, fail-open, fail-closed or misconfigured.
 */

const DEFAULT_BYPASS_PATHS = "/equeue/,/socket.io/,/static/,/favicon.ico,/healthz";
const DEFAULT_CLOCK_SKEW_S = 30;
const DEFAULT_RETRY_AFTER_S = 10;
const DEFAULT_HEALTH_CACHE_S = 5;
const DEFAULT_HEALTH_TIMEOUT_MS = 1500;

// These mirror equeue/tokens.py; tests/test_token_vectors.py checks that they agree.
const ADMISSION_COOKIE_PREFIX = "equeue_admission_";
const MIN_SECRET_LENGTH = 32;
const MAX_TOKEN_LENGTH = 4096;
const MAX_SUBJECT_LENGTH = 64;
const ROOM_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

const GATE_HEADER = "X-Equeue-Gate";
const REASON_HEADER = "X-Equeue-Reason";

// A client may send several cookies of the same name (different paths); a handful is
// plenty, and the bound keeps a hostile Cookie header from costing many HMACs.
const MAX_COOKIES_TRIED = 4;
// Decoding more than this many times would only serve paths no real client sends.
const MAX_DECODE_ROUNDS = 3;

const BASE64URL_SEGMENT = /^[A-Za-z0-9_-]*$/;
const JSON_INTEGER_LITERAL = /^-?[0-9]+$/;
const encoder = new TextEncoder();

export default {
  async fetch(request, env) {
    let config;
    try {
      config = readConfig(env);
    } catch (error) {
      // A broken configuration refuses every request, whatever the fail mode, so that
      // the mistake shows on the first `wrangler dev` instead of silently opening the gate.
      console.error(`equeue gate misconfigured: ${error.message}`);
      return plainAnswer(503, "The waiting room gate is misconfigured.\n", "misconfigured");
    }

    const url = new URL(request.url);
    if (isBypassed(url.pathname, config.bypassPaths)) {
      return passToOrigin(request, "bypass");
    }

    const verdict = await checkAdmissionCookies(request, config);
    if (verdict.admitted) {
      return passToOrigin(request, "admitted");
    }

    if (!(await waitingRoomReachable(config))) {
      if (config.failMode === "open") {
        return passToOrigin(request, "fail-open");
      }
      return failClosed(request, config, verdict.reason);
    }

    return sendToWaitingRoom(request, url, config, verdict.reason);
  },
};

// ---------------------------------------------------------------------------------------
// Configuration

const configCache = new WeakMap();

function readConfig(env) {
  const cached = configCache.get(env);
  if (cached) {
    return cached;
  }

  const secret = env.EQUEUE_SECRET;
  if (typeof secret !== "string" || encoder.encode(secret).length < MIN_SECRET_LENGTH) {
    throw new Error(
      `EQUEUE_SECRET must be set (wrangler secret put EQUEUE_SECRET) to the same ` +
        `value as the origin's secret, at least ${MIN_SECRET_LENGTH} bytes long`,
    );
  }

  const room = String(env.EQUEUE_ROOM ?? "");
  if (!ROOM_PATTERN.test(room)) {
    throw new Error("EQUEUE_ROOM must match ^[A-Za-z0-9_-]{1,64}$");
  }

  const waitingRoomUrl = parseHttpUrl(env.EQUEUE_WAITING_ROOM_URL, "EQUEUE_WAITING_ROOM_URL");
  const healthUrl =
    env.EQUEUE_HEALTH_URL === undefined || env.EQUEUE_HEALTH_URL === ""
      ? new URL("/equeue/health", waitingRoomUrl.origin)
      : parseHttpUrl(env.EQUEUE_HEALTH_URL, "EQUEUE_HEALTH_URL");

  const failMode = String(env.EQUEUE_FAIL_MODE ?? "closed").trim().toLowerCase();
  if (failMode !== "open" && failMode !== "closed") {
    throw new Error('EQUEUE_FAIL_MODE must be "open" or "closed"');
  }

  const rawBypass = env.EQUEUE_BYPASS_PATHS ?? DEFAULT_BYPASS_PATHS;
  const bypassPaths = String(rawBypass)
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "")
    .map(parseBypassPath);

  const config = Object.freeze({
    secret,
    room,
    cookieName: ADMISSION_COOKIE_PREFIX + room,
    waitingRoomUrl,
    healthUrl: healthUrl.href,
    failMode,
    bypassPaths,
    clockSkewS: readNumber(env.EQUEUE_CLOCK_SKEW_S, DEFAULT_CLOCK_SKEW_S, "EQUEUE_CLOCK_SKEW_S"),
    // Retry-After takes whole seconds.
    retryAfterS: Math.ceil(
      readNumber(env.EQUEUE_RETRY_AFTER_S, DEFAULT_RETRY_AFTER_S, "EQUEUE_RETRY_AFTER_S"),
    ),
    healthCacheMs:
      1000 * readNumber(env.EQUEUE_HEALTH_CACHE_S, DEFAULT_HEALTH_CACHE_S, "EQUEUE_HEALTH_CACHE_S"),
    healthTimeoutMs: readNumber(
      env.EQUEUE_HEALTH_TIMEOUT_MS,
      DEFAULT_HEALTH_TIMEOUT_MS,
      "EQUEUE_HEALTH_TIMEOUT_MS",
    ),
  });
  configCache.set(env, config);
  return config;
}

function parseHttpUrl(value, name) {
  let url;
  try {
    url = new URL(String(value ?? ""));
  } catch {
    throw new Error(`${name} must be an absolute http(s) URL, got ${JSON.stringify(value)}`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new Error(`${name} must be an http(s) URL, got ${url.protocol}`);
  }
  return url;
}

function readNumber(value, fallback, name) {
  if (value === undefined || value === "") {
    return fallback;
  }
  // wrangler passes [vars] through with their TOML type, so numbers may come as either.
  const number = Number(value);
  if (!Number.isFinite(number) || number < 0) {
    throw new Error(`${name} must be a non-negative number, got ${JSON.stringify(value)}`);
  }
  return number;
}

function parseBypassPath(entry) {
  if (!entry.startsWith("/")) {
    throw new Error(`EQUEUE_BYPASS_PATHS entries must start with "/", got ${JSON.stringify(entry)}`);
  }
  // The entry goes through the same canonical form as request paths, so that a prefix
  // written with odd characters still compares like for like.
  const canonical = canonicalPath(new URL(entry, "http://bypass.invalid").pathname);
  if (canonical === null || canonical === "/") {
    throw new Error(`EQUEUE_BYPASS_PATHS entry ${JSON.stringify(entry)} would bypass every path`);
  }
  return canonical.toLowerCase();
}

// ---------------------------------------------------------------------------------------
// Bypass paths
//
// A request is let through without a token only when its path lies under a bypass prefix
// however the origin may read it: as sent, percent-decoded once or more, with backslashes
// as separators, and with `;parameters` stripped from segments. If any of these readings
// leaves the prefix (`/static/..%2fshop`, `/equeue/..;/shop`), the path is gated. Matching
// is case-insensitive, repeated slashes collapse and dot segments are resolved.

function isBypassed(pathname, bypassPaths) {
  if (bypassPaths.length === 0) {
    return false;
  }
  const readings = pathReadings(pathname);
  if (readings === null) {
    return false;
  }
  return readings.every((reading) => {
    const canonical = canonicalPath(reading);
    return canonical !== null && bypassPaths.some((prefix) => underPrefix(canonical, prefix));
  });
}

function pathReadings(pathname) {
  const decoded = [pathname];
  let current = pathname;
  for (let round = 0; round < MAX_DECODE_ROUNDS; round += 1) {
    const next = decodeAsciiEscapes(current);
    if (next === current) {
      break;
    }
    decoded.push(next);
    current = next;
  }
  // Still changing after the last round: someone is stacking encodings on purpose.
  if (decodeAsciiEscapes(current) !== current) {
    return null;
  }

  const readings = [];
  for (const path of decoded) {
    const slashed = path.replaceAll("\\", "/");
    readings.push(path, slashed, stripSegmentParameters(slashed));
  }
  return readings;
}

// Only escapes of ASCII characters are decoded: they are the ones that can change the
// structure of a path (slash, backslash, dot, semicolon, control characters). Escaped
// non-ASCII bytes stay as they are, lower-cased later like everything else.
function decodeAsciiEscapes(path) {
  return path.replace(/%([0-7][0-9A-Fa-f])/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
}

function stripSegmentParameters(path) {
  return path
    .split("/")
    .map((segment) => {
      const semicolon = segment.indexOf(";");
      return semicolon === -1 ? segment : segment.slice(0, semicolon);
    })
    .join("/");
}

// Returns the path with repeated slashes collapsed and dot segments resolved, or null
// when it holds control characters no legitimate asset path has.
function canonicalPath(path) {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(path)) {
    return null;
  }
  const segments = path.split("/");
  const resolved = [];
  for (const segment of segments) {
    if (segment === "" || segment === ".") {
      continue;
    }
    if (segment === "..") {
      resolved.pop();
      continue;
    }
    resolved.push(segment);
  }
  const last = segments[segments.length - 1];
  const directory = last === "" || last === "." || last === "..";
  if (resolved.length === 0) {
    return "/";
  }
  return `/${resolved.join("/")}${directory ? "/" : ""}`;
}

function underPrefix(canonical, prefix) {
  const path = canonical.toLowerCase();
  if (prefix.endsWith("/")) {
    return path.startsWith(prefix);
  }
  return path === prefix || path.startsWith(`${prefix}/`);
}

// ---------------------------------------------------------------------------------------
// Admission token

async function checkAdmissionCookies(request, config) {
  const values = cookieValues(request.headers.get("Cookie"), config.cookieName);
  if (values.length === 0) {
    return { admitted: false, reason: "missing" };
  }
  let firstRefusal = null;
  for (const value of values.slice(0, MAX_COOKIES_TRIED)) {
    const verdict = await verifyAdmissionToken(value, config, Date.now() / 1000);
    if (verdict.admitted) {
      return verdict;
    }
    firstRefusal ??= verdict;
  }
  return firstRefusal;
}

function cookieValues(header, name) {
  if (!header) {
    return [];
  }
  const values = [];
  for (const pair of header.split(";")) {
    const equals = pair.indexOf("=");
    if (equals === -1 || pair.slice(0, equals).trim() !== name) {
      continue;
    }
    let value = pair.slice(equals + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
      value = value.slice(1, -1);
    }
    values.push(value);
  }
  return values;
}

const refuse = (reason) => ({ admitted: false, reason });

/**
 * Verifies one admission token the way TokenSigner.read_admission does.
 *
 * Returns `{admitted: true, visitorId, expiresAt}` or `{admitted: false, reason}` with
 * the reason codes of equeue.errors.TokenError: missing, invalid, expired, wrong_room.
 */
async function verifyAdmissionToken(token, config, nowS) {
  if (token === "") {
    return refuse("missing");
  }
  if (token.length > MAX_TOKEN_LENGTH) {
    return refuse("invalid");
  }

  const parts = token.split(".");
  if (parts.length !== 3) {
    return refuse("invalid");
  }
  const [headerSegment, payloadSegment, signatureSegment] = parts;
  const headerBytes = decodeSegment(headerSegment);
  const payloadBytes = decodeSegment(payloadSegment);
  const signature = decodeSegment(signatureSegment);
  if (headerBytes === null || payloadBytes === null || signature === null) {
    return refuse("invalid");
  }

  const header = parseJsonObject(headerBytes);
  if (header === null || !acceptableHeader(header.value)) {
    return refuse("invalid");
  }

  // Only the HMAC of exactly these bytes decides; WebCrypto compares in constant time.
  const key = await hmacKey(config.secret);
  const signingInput = encoder.encode(`${headerSegment}.${payloadSegment}`);
  if (!(await crypto.subtle.verify("HMAC", key, signature, signingInput))) {
    return refuse("invalid");
  }

  const payload = parseJsonObject(payloadBytes);
  if (payload === null) {
    return refuse("invalid");
  }
  return checkClaims(payload, config, nowS);
}

function acceptableHeader(header) {
  // PyJWT refuses a non-string key id and critical extensions it does not implement;
  // `b64: false` (detached payload) can never carry an admission token.
  if ("kid" in header && typeof header.kid !== "string") {
    return false;
  }
  if ("crit" in header) {
    const crit = header.crit;
    if (!Array.isArray(crit) || crit.length === 0) {
      return false;
    }
    if (!crit.every((extension) => extension === "b64" && "b64" in header)) {
      return false;
    }
  }
  if (header.b64 === false) {
    return false;
  }
  // The algorithm is fixed here, never taken from the token: no `none`, no HS512, no
  // RS256 with the secret as a "public key". A missing `typ` is fine.
  return header.alg === "HS256";
}

function checkClaims(payload, config, nowS) {
  const claims = payload.value;
  for (const name of ["sub", "aud", "iat", "exp"]) {
    if (claims[name] === undefined || claims[name] === null) {
      return refuse("invalid");
    }
  }

  // PyJWT checks the audience before the subject and the times, so a token for another
  // room is refused as wrong_room even when it is also expired.
  const audience = claims.aud;
  if (pythonFalsy(audience)) {
    return refuse("invalid");
  }
  const audiences = typeof audience === "string" ? [audience] : audience;
  if (!Array.isArray(audiences) || audiences.some((item) => typeof item !== "string")) {
    return refuse("wrong_room");
  }
  if (!audiences.includes(config.room)) {
    return refuse("wrong_room");
  }

  const subject = claims.sub;
  if (typeof subject !== "string") {
    return refuse("invalid");
  }
  if ("jti" in claims && typeof claims.jti !== "string") {
    return refuse("invalid");
  }
  // Python counts code points, not UTF-16 units.
  const subjectLength = [...subject].length;
  if (subjectLength < 1 || subjectLength > MAX_SUBJECT_LENGTH) {
    return refuse("invalid");
  }

  if (!payload.isInteger("iat") || !payload.isInteger("exp")) {
    return refuse("invalid");
  }
  if (claims.iat > nowS + config.clockSkewS) {
    return refuse("invalid");
  }
  if (claims.exp <= nowS - config.clockSkewS) {
    return refuse("expired");
  }
  return { admitted: true, visitorId: subject, expiresAt: claims.exp };
}

// Python's truthiness for JSON values: PyJWT treats a falsy `aud` as missing.
function pythonFalsy(value) {
  if (value === "" || value === 0 || value === false) {
    return true;
  }
  if (Array.isArray(value)) {
    return value.length === 0;
  }
  return typeof value === "object" && value !== null && Object.keys(value).length === 0;
}

/**
 * Parses UTF-8 JSON that must be an object. Returns null otherwise, or
 * `{value, isInteger(name)}`, where isInteger tells whether a top-level member was
 * written as an integer literal: Python reads `1.0` or `1e3` as a float, which
 * tokens.py refuses as a time, while JavaScript sees the same number either way.
 */
function parseJsonObject(bytes) {
  let text;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return null;
  }
  const nonIntegerLiterals = [];
  let value;
  try {
    value = JSON.parse(text, function revive(name, member, context) {
      const source = context?.source;
      if (typeof member === "number" && typeof source === "string") {
        if (!JSON_INTEGER_LITERAL.test(source)) {
          nonIntegerLiterals.push([this, name]);
        }
      }
      return member;
    });
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return null;
  }
  return {
    value,
    isInteger(name) {
      const member = value[name];
      return (
        typeof member === "number" &&
        Number.isInteger(member) &&
        !nonIntegerLiterals.some(([holder, key]) => holder === value && key === name)
      );
    },
  };
}

// Mirrors PyJWT's segment decoding: the base64url alphabet, optional `=` padding on a
// whole quantum, and canonical encoding (no stray bits in the last character).
function decodeSegment(segment) {
  let stripped = segment;
  let padding = 0;
  while (stripped.endsWith("=")) {
    stripped = stripped.slice(0, -1);
    padding += 1;
    if (padding > 2) {
      return null;
    }
  }
  if (padding > 0 && segment.length % 4 !== 0) {
    return null;
  }
  if (stripped.length % 4 === 1 || !BASE64URL_SEGMENT.test(stripped)) {
    return null;
  }
  let binary;
  try {
    binary = atob(stripped.replaceAll("-", "+").replaceAll("_", "/"));
  } catch {
    return null;
  }
  const bytes = Uint8Array.from(binary, (character) => character.charCodeAt(0));
  if (encodeSegment(bytes) !== stripped) {
    return null;
  }
  return bytes;
}

function encodeSegment(bytes) {
  let binary = "";
  for (const byte of bytes) {
    binary += String.fromCharCode(byte);
  }
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

// CryptoKey objects are not tied to a request, so one import serves the isolate.
const hmacKeys = new Map();

async function hmacKey(secret) {
  let key = hmacKeys.get(secret);
  if (key === undefined) {
    key = await crypto.subtle.importKey(
      "raw",
      encoder.encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["verify"],
    );
    hmacKeys.set(secret, key);
  }
  return key;
}

// ---------------------------------------------------------------------------------------
// Waiting room health
//
// Results live in module scope for a few seconds, so a burst of visitors costs one check.
// Only the boolean is shared: a pending fetch belongs to the request that started it and
// must not be awaited by another one.

const healthResults = new Map();

async function waitingRoomReachable(config) {
  const cached = healthResults.get(config.healthUrl);
  if (cached !== undefined && Date.now() - cached.checkedAtMs < config.healthCacheMs) {
    return cached.reachable;
  }

  let reachable = false;
  let problem = "";
  try {
    const response = await fetch(config.healthUrl, {
      headers: { Accept: "application/json" },
      redirect: "manual",
      signal: AbortSignal.timeout(config.healthTimeoutMs),
    });
    reachable = response.ok;
    problem = `answered ${response.status}`;
    await response.body?.cancel();
  } catch (error) {
    problem = error.name === "TimeoutError" ? "timed out" : `failed (${error.message})`;
  }

  // Log changes of state only, not every check.
  if (cached === undefined || cached.reachable !== reachable) {
    if (reachable) {
      console.log(`equeue gate: waiting room health check at ${config.healthUrl} is ok`);
    } else {
      console.warn(`equeue gate: waiting room health check at ${config.healthUrl} ${problem}`);
    }
  }
  healthResults.set(config.healthUrl, { reachable, checkedAtMs: Date.now() });
  return reachable;
}

// ---------------------------------------------------------------------------------------
// Answers

async function passToOrigin(request, gate) {
  let response;
  try {
    response = await fetch(request);
  } catch (error) {
    console.error(`equeue gate: origin fetch failed: ${error.message}`);
    return plainAnswer(502, "The site could not be reached.\n", gate);
  }
  // A WebSocket upgrade must be handed back as it is; its headers cannot be copied.
  if (response.webSocket || response.status === 101) {
    return response;
  }
  const marked = new Response(response.body, response);
  marked.headers.set(GATE_HEADER, gate);
  return marked;
}

function waitingRoomTarget(url, config) {
  const target = new URL(config.waitingRoomUrl.href);
  target.searchParams.set("room", config.room);
  // The waiting room only returns visitors to paths on its own site or to allowed hosts,
  // so the return address is a path when both are on the same host. Leading slashes
  // are collapsed: `//evil.example` would read as another host.
  const next =
    target.host === url.host ? `/${url.pathname.replace(/^\/+/, "")}${url.search}` : url.href;
  target.searchParams.set("next", next);
  return target.href;
}

function sendToWaitingRoom(request, url, config, reason) {
  const target = waitingRoomTarget(url, config);
  if (prefersJson(request.headers.get("Accept"))) {
    return jsonAnswer(
      503,
      { error: "waiting_room", room: config.room, waiting_room_url: target },
      { [GATE_HEADER]: "rejected", [REASON_HEADER]: reason, "Retry-After": String(config.retryAfterS) },
    );
  }
  return new Response(
    htmlPage("Please wait", `<p>You are being sent to the <a href="${escapeHtml(target)}">waiting room</a>.</p>`),
    {
      status: 303,
      headers: {
        Location: target,
        "Content-Type": "text/html; charset=utf-8",
        "Cache-Control": "no-store",
        [GATE_HEADER]: "redirected",
        [REASON_HEADER]: reason,
      },
    },
  );
}

function failClosed(request, config, reason) {
  const headers = {
    [GATE_HEADER]: "fail-closed",
    [REASON_HEADER]: reason,
    "Retry-After": String(config.retryAfterS),
  };
  if (prefersJson(request.headers.get("Accept"))) {
    return jsonAnswer(503, { error: "waiting_room_unavailable", room: config.room }, headers);
  }
  const body = htmlPage(
    "Back in a moment",
    "<p>So many people are visiting right now that we cannot let you in, and our waiting " +
      "room is not answering either.</p>" +
      `<p>This page tries again by itself in ${config.retryAfterS} seconds. Thank you for ` +
      "your patience.</p>",
    config.retryAfterS,
  );
  return new Response(body, {
    status: 503,
    headers: { ...headers, "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" },
  });
}

function jsonAnswer(status, body, headers) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { ...headers, "Content-Type": "application/json", "Cache-Control": "no-store" },
  });
}

function plainAnswer(status, text, gate) {
  return new Response(text, {
    status,
    headers: {
      "Content-Type": "text/plain; charset=utf-8",
      "Cache-Control": "no-store",
      [GATE_HEADER]: gate,
    },
  });
}

function htmlPage(title, body, refreshS) {
  const refresh = refreshS === undefined ? "" : `<meta http-equiv="refresh" content="${refreshS}">`;
  return (
    `<!doctype html><html lang="en"><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width, initial-scale=1">${refresh}` +
    `<title>${escapeHtml(title)}</title></head>` +
    `<body style="font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; ` +
    `padding: 0 1rem; line-height: 1.5"><h1>${escapeHtml(title)}</h1>${body}</body></html>`
  );
}

function escapeHtml(text) {
  return String(text).replace(
    /[&<>"']/g,
    (character) =>
      ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[character],
  );
}

/**
 * Whether the Accept header ranks application/json above text/html. Each type takes the
 * quality of the most specific range that matches it; on a tie the type named
 * explicitly wins, and a tie between equals goes to HTML (browsers list both).
 */
function prefersJson(accept) {
  if (!accept) {
    return false;
  }
  const json = { quality: 0, specificity: 0 };
  const html = { quality: 0, specificity: 0 };
  for (const range of accept.split(",")) {
    const [type, ...parameters] = range.split(";").map((part) => part.trim().toLowerCase());
    let quality = 1;
    for (const parameter of parameters) {
      const match = /^q\s*=\s*([0-9.]+)$/.exec(parameter);
      if (match) {
        quality = Number(match[1]);
      }
    }
    if (!Number.isFinite(quality)) {
      continue;
    }
    rank(json, type, "application", "json", quality);
    rank(html, type, "text", "html", quality);
  }
  if (json.quality <= 0) {
    return false;
  }
  return (
    json.quality > html.quality ||
    (json.quality === html.quality && json.specificity > html.specificity)
  );
}

function rank(target, range, type, subtype, quality) {
  let specificity = 0;
  if (range === `${type}/${subtype}`) {
    specificity = 3;
  } else if (range === `${type}/*`) {
    specificity = 2;
  } else if (range === "*/*") {
    specificity = 1;
  }
  if (specificity > target.specificity) {
    target.specificity = specificity;
    target.quality = quality;
  }
}
