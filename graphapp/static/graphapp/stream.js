/* graphapp stream: one EventSource with its own reconnection (back-off with
 * jitter), shared by every tab of a browser.
 *
 * Loaded as a SharedWorker it serves all the tabs of one origin from one
 * connection (browsers allow 6 HTTP/1.1 connections per host; 8 tabs with a
 * stream each would starve the seventh). Loaded as a page script it defines
 * window.GraphappStream for browsers without SharedWorker.
 *
 * Messages to a subscriber: {type: "state", state, confirmedAt}, {type: "stats",
 * id, data}, {type: "history", data}, {type: "change", data}; `data` as the
 * server sent it (a JSON string). `change` and `history` events carry no id:
 * they belong to the `stats` before them.
 *
 * Reconnecting, the connection tells the server the last `stats` id it saw
 * (`last_event_id`: a new EventSource cannot send the Last-Event-ID header),
 * and the server answers with the changes made meanwhile, or a `change` with
 * `"gap": true` when it no longer holds them.
 *
 * States: connecting, live, stale, reconnecting, offline, denied. "stale" is the
 * server's word (`event: status`, {"state": "stale", "confirmed_at": ISO or
 * null}): the stream is up, but its server cannot confirm the numbers against
 * the database; `confirmedAt` is then the last moment it could (null: never).
 * `{"state": "live"}` ends it. A stream that says nothing of its status is
 * live, but a server that cannot confirm says so right after the first `stats`
 * of a new stream, so that first `stats` waits a moment before it means live.
 *
 * A server that ends its streams on purpose (a restart) says when to come back
 * (`event: reconnect`, {"retry": ms}, at least a second, spread so that its
 * streams do not all come back at once): the connection then waits that long
 * before each of its next attempts, instead of its own back-off, so a restart
 * costs about one attempt a second and the page is back soon after the server.
 *
 * An EventSource cannot see why a connection failed. After a failure the
 * connection asks `accessUrl` (the JSON stats, behind the same permission): a
 * 401 or 403 means the session ended or the permission went, and retrying would
 * never help, so it stops in the state "denied"; anything else, it retries.
 */
(function (scope) {
  "use strict";

  // The back-off's first wait is half a second to one: about one attempt a second at most.
  var FIRST_DELAY_MS = 1000;
  var MAX_DELAY_MS = 30000;
  // Attempts that keep to the server's `reconnect` word before the back-off
  // takes over (a restart that takes longer is an outage).
  var COME_BACK_ATTEMPTS = 30;
  var OFFLINE_AFTER_FAILURES = 5;
  // How long the first `stats` of a stream waits for a `status` that may follow
  // it: long enough for the next event of the same write, short to a person.
  var STATUS_GRACE_MS = 250;

  function Connection(url, emit, accessUrl) {
    this.url = url;
    this.emit = emit;
    this.accessUrl = accessUrl || "";
    this.failures = 0;
    this.comeBackAfter = null;  // ms, from the server's last `reconnect` event
    this.source = null;
    this.timer = null;
    this.grace = null;
    this.state = "connecting";
    this.confirmedAt = null;
    this.closed = false;
    this.lastId = "";
    this.open();
  }

  Connection.prototype.setState = function (state, confirmedAt) {
    confirmedAt = state === "stale" ? confirmedAt || null : null;
    clearTimeout(this.grace);
    this.grace = null;
    if (state === this.state && confirmedAt === this.confirmedAt) return;
    this.state = state;
    this.confirmedAt = confirmedAt;
    this.emit({ type: "state", state: state, confirmedAt: confirmedAt });
  };

  /* The stream's server is heard: live, unless it said otherwise. */
  Connection.prototype.heard = function (told) {
    var self = this;
    if (told !== null || this.state === "live") return;
    if (this.grace === null) {
      this.grace = setTimeout(function () { self.setState("live"); }, STATUS_GRACE_MS);
    }
  };

  Connection.prototype.open = function () {
    var self = this;
    clearTimeout(this.timer);
    clearTimeout(this.grace);
    this.timer = null;
    this.grace = null;
    if (this.source) this.source.close();
    var url = this.url;
    if (this.lastId) {
      url += (url.indexOf("?") < 0 ? "?" : "&") + "last_event_id=" + encodeURIComponent(this.lastId);
    }
    var source = (this.source = new EventSource(url));
    // What this stream's server said with `status`: null (nothing: live is
    // implied), else the state it named. A new stream starts from nothing.
    var told = null;
    var endedOnPurpose = false;  // by the server's `reconnect` event
    source.addEventListener("stats", function (event) {
      // Live only once the server has told the current truth on this stream
      // (and not said that it cannot confirm it): the numbers show either way.
      self.failures = 0;
      self.comeBackAfter = null;
      self.lastId = event.lastEventId;
      self.emit({ type: "stats", id: event.lastEventId, data: event.data });
      self.heard(told);
    });
    source.addEventListener("history", function (event) {
      self.emit({ type: "history", data: event.data });
    });
    source.addEventListener("status", function (event) {
      var status = parseStatus(event.data);
      if (!status) return;
      self.failures = 0;
      told = status.state;
      self.setState(status.state, status.confirmedAt);
    });
    source.addEventListener("reconnect", function (event) {
      var retry = parseRetry(event.data);
      if (retry === null) return;
      self.comeBackAfter = retry;
      endedOnPurpose = true;
    });
    source.addEventListener("change", function (event) {
      // No id: a change belongs to the stats before it (lastEventId is that one's).
      self.emit({ type: "change", data: event.data });
    });
    source.addEventListener("error", function () {
      if (source !== self.source || self.closed) return;
      clearTimeout(self.grace);
      self.grace = null;
      // The browser's own retry has no back-off and stops for good on an error
      // status: close and retry ourselves.
      source.close();
      self.source = null;
      // Told to come back: this stream ended on purpose, nothing to ask about.
      if (endedOnPurpose) self.retry();
      else self.check();
    });
  };

  Connection.prototype.check = function () {
    var self = this;
    if (!this.accessUrl || typeof fetch !== "function") return this.retry();
    fetch(this.accessUrl, { credentials: "same-origin", cache: "no-store" }).then(
      function (response) {
        if (self.closed) return;
        if (response.status === 401 || response.status === 403) self.deny();
        else self.retry();
      },
      function () { if (!self.closed) self.retry(); }  // the network: retry as usual
    );
  };

  Connection.prototype.deny = function () {
    clearTimeout(this.timer);
    this.timer = null;
    this.setState("denied");  // until the page is loaded again (and signed in)
  };

  Connection.prototype.retry = function () {
    this.failures += 1;
    var offline = scope.navigator.onLine === false || this.failures > OFFLINE_AFTER_FAILURES;
    this.setState(offline ? "offline" : "reconnecting");
    var delay;
    if (this.comeBackAfter !== null && this.failures <= COME_BACK_ATTEMPTS) {
      delay = this.comeBackAfter;  // spread by the server already
    } else {
      delay = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * Math.pow(2, this.failures - 1));
      // Jitter: after a crash, a thousand wall screens must not come back at once.
      delay = delay / 2 + (Math.random() * delay) / 2;
    }
    this.timer = setTimeout(this.open.bind(this), delay);
  };

  Connection.prototype.wake = function () {
    // The network is back: try now instead of at the end of a long back-off.
    if (this.timer !== null) this.open();
  };

  Connection.prototype.close = function () {
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.grace);
    if (this.source) this.source.close();
    this.source = null;
  };

  /* An event's data as JSON, or null when it is none. */
  function parseJson(data) {
    try {
      return JSON.parse(data);
    } catch (error) {
      return null;
    }
  }

  /* `event: status` data as {state, confirmedAt}, or null for what this client
   * does not know (a newer server's state, malformed JSON): then nothing changes. */
  function parseStatus(data) {
    var status = parseJson(data);
    if (!status || (status.state !== "stale" && status.state !== "live")) return null;
    var at = typeof status.confirmed_at === "string" ? status.confirmed_at : null;
    return { state: status.state, confirmedAt: at };
  }

  /* A `reconnect` event's retry in ms, or null when it names none. */
  function parseRetry(data) {
    var hint = parseJson(data);
    var retry = hint && hint.retry;
    return typeof retry === "number" && isFinite(retry) && retry >= 0 ? retry : null;
  }

  /* A `stats` event's data as a history point (the fields a chart draws). */
  function point(data) {
    var snapshot = JSON.parse(data);
    return {
      version: snapshot.version, at: snapshot.at, nodes: snapshot.nodes, edges: snapshot.edges,
      tiers: snapshot.tiers, types: snapshot.types
    };
  }

  var isSharedWorker =
    typeof SharedWorkerGlobalScope !== "undefined" && scope instanceof SharedWorkerGlobalScope;

  if (isSharedWorker) {
    var streams = {}; // url -> {connection, ports, status, stats, history, since}
    // Snapshots kept since the stream's history event, for a tab that joins
    // later: its chart starts where the others' are.
    var KEEP_SNAPSHOTS = 600;

    var broadcast = function (stream, message) {
      if (message.type === "state") stream.status = message;
      if (message.type === "history") { stream.history = message; stream.since = []; }
      if (message.type === "stats") {
        stream.since.push(point(message.data));
        if (stream.since.length > KEEP_SNAPSHOTS) stream.since.shift();
        stream.stats = message;
      }
      stream.ports.forEach(function (port) { port.postMessage(message); });
    };

    var subscribe = function (port, url, accessUrl) {
      var stream = streams[url];
      var ports = [];
      if (stream && stream.status.state === "denied") {
        // A tab opened after signing in again: start over, for every tab.
        stream.connection.close();
        ports = stream.ports;
        stream = null;
      }
      if (!stream) {
        stream = streams[url] = {
          ports: ports, status: { type: "state", state: "connecting", confirmedAt: null },
          stats: null, history: null, since: []
        };
        stream.connection = new Connection(
          url, function (message) { broadcast(stream, message); }, accessUrl
        );
      }
      if (stream.ports.indexOf(port) < 0) stream.ports.push(port);
      // A new tab starts from the current truth: the state (stale with its time
      // included), the history and the snapshots since, and the latest snapshot.
      port.postMessage(Object.assign({}, stream.status, { transport: "shared-worker" }));
      if (stream.history) port.postMessage(stream.history);
      if (stream.since.length) {
        port.postMessage({ type: "history", data: JSON.stringify({ points: stream.since }) });
      }
      if (stream.stats) port.postMessage(stream.stats);
    };

    var unsubscribe = function (port, url) {
      var stream = streams[url];
      if (!stream) return;
      stream.ports = stream.ports.filter(function (other) { return other !== port; });
      if (!stream.ports.length) {
        stream.connection.close();
        delete streams[url];
      }
    };

    scope.addEventListener("connect", function (event) {
      var port = event.ports[0];
      port.addEventListener("message", function (message) {
        var request = message.data || {};
        if (request.type === "subscribe") subscribe(port, request.url, request.accessUrl);
        else if (request.type === "unsubscribe") unsubscribe(port, request.url);
      });
      port.start();
    });
    scope.addEventListener("online", function () {
      Object.keys(streams).forEach(function (url) { streams[url].connection.wake(); });
    });
    return;
  }

  /* In a page: subscribe through the shared worker when there is one, else
   * with an EventSource of the page's own. Returns nothing; `onMessage` gets
   * every message, the first one saying which transport serves it. */
  function connectInPage(url, onMessage, accessUrl) {
    onMessage({ type: "state", state: "connecting", transport: "page" });
    var connection = new Connection(url, onMessage, accessUrl);
    scope.addEventListener("online", function () { connection.wake(); });
    return connection;
  }

  function subscribe(url, workerUrl, onMessage, accessUrl) {
    var absolute = new URL(url, scope.location.href).href;
    var access = accessUrl ? new URL(accessUrl, scope.location.href).href : "";
    if (typeof SharedWorker !== "function" || !workerUrl) {
      connectInPage(absolute, onMessage, access);
      return;
    }
    var worker;
    try {
      worker = new SharedWorker(workerUrl, { name: "graphapp-stream" });
    } catch (error) {
      connectInPage(absolute, onMessage, access);
      return;
    }
    var heard = false;
    worker.addEventListener("error", function () {
      // The worker could not start (blocked, or its script failed): go alone.
      if (!heard) connectInPage(absolute, onMessage, access);
    });
    worker.port.addEventListener("message", function (event) {
      heard = true;
      onMessage(event.data);
    });
    worker.port.start();
    worker.port.postMessage({ type: "subscribe", url: absolute, accessUrl: access });
    scope.addEventListener("pagehide", function () {
      worker.port.postMessage({ type: "unsubscribe", url: absolute });
    });
    scope.addEventListener("pageshow", function (event) {
      // Back from the back/forward cache: the worker forgot this tab.
      if (event.persisted) {
        worker.port.postMessage({ type: "subscribe", url: absolute, accessUrl: access });
      }
    });
  }

  scope.GraphappStream = { subscribe: subscribe };
})(self);
