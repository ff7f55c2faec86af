/*
 * equeue splash page client.
 *
 * Reads the configuration the server put in <script id="equeue-config">, loads the
 * Socket.IO browser client, registers the visitor with their pass, shows the live
 * position and goes in when admitted. A heartbeat Web Worker keeps the place while
 * the visitor waits. Plain ES2017, no build step; the wire events are described in
 * docs/protocol.md.
 */
(function () {
  "use strict";

  var STATUS_TEXT = {
    loading: "Connecting\u2026",
    connecting: "Connecting\u2026",
    connected: "Connected. You will be taken in automatically.",
    reconnecting: "Connection lost. Reconnecting\u2026",
    failed: "Cannot reach the waiting room.",
    stalled: "The connection is not answering.",
    admitted: "It is your turn! Taking you in\u2026",
    expired: "You lost your place.",
  };

  var config;
  try {
    config = JSON.parse(document.getElementById("equeue-config").textContent);
  } catch (err) {
    // Without its configuration the page cannot do anything useful; say so plainly.
    showFatal("This page is missing its configuration. Please reload it.");
    return;
  }

  var initial = config.initial || {};
  var socketConfig = config.socket || {};
  var heartbeatIntervalMs = positiveNumber(config.heartbeat_interval_ms, 5000);
  var heartbeatAckTimeoutMs = positiveNumber(
    config.heartbeat_ack_timeout_ms,
    Math.min(heartbeatIntervalMs, 10000)
  );
  var heartbeatMaxRetries = nonNegativeInteger(config.heartbeat_max_retries, 3);
  var connectMaxAttempts = nonNegativeInteger(config.connect_max_attempts, 10);

  var visitorPass = config.pass || null;
  var socket = null;
  var heartbeat = null; // {post(message), stop()} once started
  var leaving = false; // set once the page navigates away to go in
  var retryAction = null;
  var baseTitle = document.title;

  // What the page shows, also readable as window.equeue for debugging and tests.
  // It never holds the visitor pass.
  var view = {
    state: "loading",
    status: initial.status || "queued",
    position: numberOrNull(initial.position),
    queue_length: numberOrNull(initial.queue_length),
    eta_seconds: numberOrNull(initial.eta_seconds),
    error: null,
  };
  window.equeue = view;

  var elements = {
    position: byId("equeue-position"),
    queueLength: byId("equeue-queue-length"),
    eta: byId("equeue-eta"),
    status: byId("equeue-status"),
    error: byId("equeue-error"),
    errorMessage: byId("equeue-error-message"),
    retry: byId("equeue-retry"),
    expired: byId("equeue-expired"),
    requeued: byId("equeue-requeued"),
    rejoin: byId("equeue-rejoin"),
  };

  if (elements.retry) {
    elements.retry.addEventListener("click", function () {
      var action = retryAction;
      hideError();
      if (action) {
        action();
      }
    });
  }
  if (elements.rejoin) {
    elements.rejoin.addEventListener("click", rejoin);
  }
  if (initial.requeued) {
    setHidden(elements.requeued, false);
  }
  document.addEventListener("visibilitychange", function () {
    // Coming back to a hidden tab: beat at once rather than waiting for a timer
    // the browser may have held back.
    if (document.visibilityState === "visible" && heartbeat) {
      heartbeat.post({ type: "now" });
    }
  });

  render();
  loadSocketIoClient();

  // ---------------------------------------------------------------- helpers

  function byId(id) {
    return document.getElementById(id);
  }

  function positiveNumber(value, fallback) {
    return typeof value === "number" && isFinite(value) && value > 0 ? value : fallback;
  }

  function nonNegativeInteger(value, fallback) {
    return typeof value === "number" && isFinite(value) && value >= 0
      ? Math.floor(value)
      : fallback;
  }

  function numberOrNull(value) {
    return typeof value === "number" && isFinite(value) ? value : null;
  }

  function setText(element, text) {
    if (element) {
      element.textContent = text;
    }
  }

  function setHidden(element, hidden) {
    if (element) {
      element.hidden = hidden;
    }
  }

  function showFatal(message) {
    var status = document.getElementById("equeue-status");
    if (status) {
      status.textContent = message;
    }
  }

  function formatEta(seconds) {
    if (seconds === null) {
      return "unknown";
    }
    if (seconds < 60) {
      return "less than a minute";
    }
    return "about " + Math.max(1, Math.round(seconds / 60)) + " min";
  }

  // ---------------------------------------------------------------- rendering

  function render() {
    var waiting = view.status === "queued";
    var positionText = "\u2014";
    if (view.status === "admitted") {
      positionText = "0";
    } else if (view.position !== null) {
      positionText = String(view.position);
    }

    setText(elements.position, positionText);
    setText(
      elements.queueLength,
      view.queue_length === null ? "unknown" : String(view.queue_length)
    );
    setText(elements.eta, waiting ? formatEta(view.eta_seconds) : "\u2014");
    setText(elements.status, STATUS_TEXT[view.state] || "");
    setHidden(elements.expired, view.status !== "expired");

    document.title =
      waiting && view.position !== null
        ? "#" + view.position + " \u00b7 " + baseTitle
        : baseTitle;
  }

  function setState(state) {
    view.state = state;
    render();
  }

  function showError(message, action) {
    view.error = message;
    retryAction = action || null;
    setText(elements.errorMessage || elements.error, message);
    setHidden(elements.error, false);
    setHidden(elements.retry, !action);
  }

  function hideError() {
    view.error = null;
    retryAction = null;
    setHidden(elements.error, true);
  }

  // ---------------------------------------------------------------- socket.io

  function loadSocketIoClient() {
    if (typeof window.io === "function") {
      connect(); // The page (an edited template) already loaded a client.
      return;
    }

    var source = config.socketio_client || {};
    var script = document.createElement("script");
    script.src = source.url;
    if (source.integrity) {
      script.integrity = source.integrity;
      script.crossOrigin = "anonymous";
    }
    script.onload = function () {
      if (typeof window.io === "function") {
        connect();
      } else {
        clientLoadFailed(script);
      }
    };
    script.onerror = function () {
      clientLoadFailed(script);
    };
    setState("connecting");
    document.head.appendChild(script);
  }

  function clientLoadFailed(script) {
    if (script.parentNode) {
      script.parentNode.removeChild(script);
    }
    setState("failed");
    showError(
      "The page could not load its connection script. Check your network and retry.",
      loadSocketIoClient
    );
  }

  function connect() {
    var options = {
      path: socketConfig.path || "/socket.io",
      reconnection: true,
      reconnectionAttempts: connectMaxAttempts,
      reconnectionDelay: 1000,
      reconnectionDelayMax: 10000,
      randomizationFactor: 0.5,
      timeout: 10000,
    };
    if (Array.isArray(socketConfig.transports)) {
      options.transports = socketConfig.transports;
    }

    // io(null, ...) would drop the options, so the same-origin case passes none.
    socket = socketConfig.url ? window.io(socketConfig.url, options) : window.io(options);
    setState("connecting");

    socket.on("connect", onConnect);
    socket.on("disconnect", onDisconnect);
    socket.on("connect_error", onConnectError);
    socket.on("queue_update", onQueueUpdate);
    socket.on("error", onServerError);
    socket.io.on("reconnect_attempt", function () {
      if (!leaving) {
        setState("reconnecting");
      }
    });
    socket.io.on("reconnect_failed", connectionFailed);
  }

  function register() {
    if (socket && socket.connected) {
      socket.emit("register", { room: config.room, pass: visitorPass });
    }
  }

  function retryConnection() {
    setState("connecting");
    if (socket.connected) {
      register();
    } else {
      socket.connect();
    }
  }

  function connectionFailed() {
    if (leaving) {
      return;
    }
    stopHeartbeat();
    setState("failed");
    showError(
      "We cannot reach the waiting room right now. Your place is kept for a " +
        "while; check your connection and retry.",
      retryConnection
    );
  }

  function onConnect() {
    hideError();
    if (view.status === "expired") {
      // Registering would quietly join again at the back; leave that choice to
      // the visitor's Rejoin button.
      setState("expired");
      return;
    }
    setState("connected");
    register(); // Every connect has a new sid: register again, with the newest pass.
  }

  function onDisconnect(reason) {
    stopHeartbeat();
    if (leaving) {
      return;
    }
    if (reason === "io server disconnect") {
      // The server closed this socket on purpose: socket.io does not reconnect then.
      connectionFailed();
      return;
    }
    setState("reconnecting");
  }

  function onConnectError() {
    // socket.active is false when the server refused the connection outright; the
    // client will not retry by itself, so offer the button at once.
    if (!leaving && socket && !socket.active) {
      connectionFailed();
    }
  }

  function onServerError(payload) {
    var message =
      payload && typeof payload.message === "string" && payload.message
        ? payload.message
        : "The waiting room refused a request.";
    var reason = payload && typeof payload.reason === "string" ? payload.reason : "";
    console.warn("equeue: server error", reason);
    if (reason === "bad_pass") {
      // A fresh visit of the wait page issues a valid pass.
      showError(message, function () {
        window.location.assign(config.wait_url || window.location.href);
      });
    } else {
      showError(message, retryConnection);
    }
  }

  function onQueueUpdate(update) {
    if (leaving || !update || typeof update !== "object") {
      return;
    }
    if (update.room && update.room !== config.room) {
      return;
    }
    if (typeof update.pass === "string" && update.pass) {
      visitorPass = update.pass;
    }

    view.status = update.status;
    view.position = numberOrNull(update.position);
    view.queue_length = numberOrNull(update.queue_length);
    view.eta_seconds = numberOrNull(update.eta_seconds);

    if (update.status === "admitted") {
      goIn(update.admit_url);
    } else if (update.status === "expired") {
      stopHeartbeat();
      hideError();
      setState("expired");
    } else if (update.status === "queued") {
      if (update.requeued) {
        setHidden(elements.requeued, false);
      }
      // An update proves the connection works: clear any earlier trouble and beat
      // again if the worker had stopped or the socket had reconnected.
      hideError();
      if (!heartbeat) {
        startHeartbeat();
      }
      setState("connected");
    } else {
      render();
    }
  }

  function goIn(admitUrl) {
    leaving = true;
    stopHeartbeat();
    hideError();
    setState("admitted");
    window.location.assign(admissionUrl(admitUrl));
  }

  // The admit route sets the admission cookie and redirects to its `next`. The
  // server that pushes the update may not know which page this tab asked for (two
  // tabs of one visitor may want different pages), so the page adds its own.
  function admissionUrl(admitUrl) {
    var target = admitUrl || config.admit_url;
    if (!target) {
      return config.wait_url || window.location.href; // It redirects admitted visitors.
    }
    try {
      var url = new URL(target, window.location.href);
      if (!url.searchParams.has("next") && config.next) {
        url.searchParams.set("next", config.next);
      }
      return url.href;
    } catch (err) {
      return target;
    }
  }

  function rejoin() {
    view.status = "queued";
    setHidden(elements.expired, true);
    if (socket && socket.connected) {
      setState("connected");
      register();
    } else if (socket) {
      setState("connecting");
      socket.connect(); // register follows on connect
    }
  }

  // ---------------------------------------------------------------- heartbeat

  function sendBeat(seq, answer) {
    if (!socket || !socket.connected) {
      answer(seq, false);
      return;
    }
    socket.timeout(heartbeatAckTimeoutMs).emit("heartbeat", {}, function (err, resp) {
      answer(seq, !err && !!resp && resp.ok === true);
    });
  }

  function startHeartbeat() {
    stopHeartbeat();
    var settings = {
      type: "start",
      interval_ms: heartbeatIntervalMs,
      max_retries: heartbeatMaxRetries,
      ack_timeout_ms: heartbeatAckTimeoutMs,
    };
    var worker = null;
    try {
      worker = new Worker((config.static_url || "") + "/heartbeat-worker.js");
    } catch (err) {
      // A static URL on another origin cannot host a worker; keep time in the page.
      heartbeat = pageTimer(settings);
      return;
    }

    var handle = {
      post: function (message) {
        worker.postMessage(message);
      },
      stop: function () {
        worker.terminate();
      },
    };
    worker.onmessage = function (event) {
      if (heartbeat !== handle) {
        return;
      }
      var message = event.data || {};
      if (message.type === "beat") {
        sendBeat(message.seq, function (seq, ok) {
          if (heartbeat === handle) {
            worker.postMessage({ type: "ack", seq: seq, ok: ok });
          }
        });
      } else if (message.type === "stopped") {
        heartbeatStopped();
      }
    };
    worker.onerror = function (event) {
      event.preventDefault();
      if (heartbeat === handle) {
        worker.terminate();
        heartbeat = pageTimer(settings);
      }
    };
    heartbeat = handle;
    worker.postMessage(settings);
  }

  // The fallback when no worker can run: the same beat/retry rules on page timers,
  // which browsers slow down in background tabs.
  function pageTimer(settings) {
    var timer = null;
    var failures = 0;
    var seq = 0;
    var handle = {
      post: function (message) {
        if (message.type === "now") {
          beatSoon(0);
        }
      },
      stop: function () {
        clearTimeout(timer);
        timer = null;
      },
    };
    function beatSoon(delay) {
      clearTimeout(timer);
      timer = setTimeout(function () {
        seq += 1;
        sendBeat(seq, function (_seq, ok) {
          if (heartbeat !== handle) {
            return;
          }
          failures = ok ? 0 : failures + 1;
          if (failures > settings.max_retries) {
            heartbeatStopped();
          } else {
            beatSoon(ok ? settings.interval_ms : Math.min(settings.interval_ms / 3, 2000));
          }
        });
      }, delay);
    }
    beatSoon(settings.interval_ms);
    return handle;
  }

  function stopHeartbeat() {
    if (heartbeat) {
      var stopping = heartbeat;
      heartbeat = null;
      stopping.stop();
    }
  }

  function heartbeatStopped() {
    stopHeartbeat();
    if (leaving) {
      return;
    }
    setState("stalled");
    showError(
      "Your page has not reached the waiting room for a while. Your place is " +
        "kept for a short time; retry to stay in line.",
      retryConnection
    );
  }
})();
