/*
 * equeue heartbeat timer, run as a Web Worker by equeue.js.
 *
 * The worker only keeps time; the page owns the socket. Browsers throttle timers of
 * background pages much harder than those of dedicated workers, so beating from here
 * keeps a waiting visitor's place while their tab is hidden.
 *
 * Messages from the page:
 *   {type: "start", interval_ms, max_retries, ack_timeout_ms?}  (re)start beating
 *   {type: "ack", seq, ok}   the outcome of beat number seq
 *   {type: "now"}            beat at once if no beat is waiting for its outcome
 *   {type: "stop"}           stop all timers
 * Messages to the page:
 *   {type: "beat", seq}      please emit a heartbeat and answer with an ack
 *   {type: "stopped", failures}  max_retries retries in a row failed; the worker is idle
 */
"use strict";

var intervalMs = 5000;
var maxRetries = 3;
var watchdogMs = 15000;
var seq = 0;
var pendingSeq = null;
var failures = 0;
var running = false;
var beatTimer = null;
var watchdogTimer = null;

function clearTimers() {
  if (beatTimer !== null) {
    clearTimeout(beatTimer);
    beatTimer = null;
  }
  if (watchdogTimer !== null) {
    clearTimeout(watchdogTimer);
    watchdogTimer = null;
  }
}

function retryDelayMs() {
  // A failed beat is tried again sooner than the regular interval, so that a short
  // network hiccup does not eat into the heartbeat timeout.
  return Math.max(250, Math.min(Math.round(intervalMs / 3), 2000));
}

function schedule(delayMs) {
  clearTimers();
  if (running) {
    beatTimer = setTimeout(beat, delayMs);
  }
}

function beat() {
  beatTimer = null;
  if (!running) {
    return;
  }
  seq += 1;
  pendingSeq = seq;
  postMessage({ type: "beat", seq: seq });

  // The page answers every beat (its emit has its own timeout), but a page that is
  // frozen or busy may not: count a missing answer as a failed beat.
  watchdogTimer = setTimeout(function () {
    watchdogTimer = null;
    if (pendingSeq === seq) {
      outcome(seq, false);
    }
  }, watchdogMs);
}

function outcome(ackSeq, ok) {
  if (!running || ackSeq !== pendingSeq) {
    return; // An answer to an older beat, or after a stop.
  }
  pendingSeq = null;

  if (ok) {
    failures = 0;
    schedule(intervalMs);
    return;
  }

  failures += 1;
  if (failures > maxRetries) {
    running = false;
    clearTimers();
    postMessage({ type: "stopped", failures: failures });
    return;
  }
  schedule(retryDelayMs());
}

function positiveNumber(value, fallback) {
  return typeof value === "number" && isFinite(value) && value > 0 ? value : fallback;
}

self.onmessage = function (event) {
  var message = event.data || {};

  if (message.type === "start") {
    intervalMs = positiveNumber(message.interval_ms, 5000);
    maxRetries =
      typeof message.max_retries === "number" && message.max_retries >= 0
        ? Math.floor(message.max_retries)
        : 3;
    watchdogMs = positiveNumber(message.ack_timeout_ms, intervalMs) + 1000;
    failures = 0;
    pendingSeq = null;
    running = true;
    schedule(intervalMs);
  } else if (message.type === "ack") {
    outcome(message.seq, message.ok === true);
  } else if (message.type === "now") {
    if (running && pendingSeq === null) {
      schedule(0);
    }
  } else if (message.type === "stop") {
    running = false;
    pendingSeq = null;
    clearTimers();
  }
};
