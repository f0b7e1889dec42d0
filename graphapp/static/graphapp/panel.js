/* graphapp live panel: totals with their change since the page opened, bars
 * per tier and type, a chart of the node count over a chosen range (drawn at
 * once from the stream's `history` event), a feed of node changes (with those
 * missed while disconnected, which the server replays), and a connection badge. Fed by GraphappStream (stream.js): one stream per browser.
 * Plain JS, no build step, nothing from another host. Every `stats` event
 * carries the whole snapshot; `change` events list node changes (or count them).
 * When the server cannot confirm the numbers the badge says "stale" with the
 * time they were last confirmed, and the numbers stay as they were. */
(function () {
  "use strict";

  var TIER_ORDER = ["HOT", "WARM", "COLD"];
  var TYPE_ORDER = ["FACT", "CONCEPT", "CODE", "DREAM", "ENTITY"];
  var FEED_MAX = 50; // entries kept
  var FEED_SCREEN = 20; // more in one event than fit on a screen: one summary line
  var RECENT_CHANGES = 20; // change events remembered to show a repeated one once
  var CHART_TICK_MS = 5000;
  var CHART_KEEP_MS = 86400000; // the longest range offered
  var CHART_MAX_SAMPLES = 20000; // a day of publications thinned to this at most
  // gettext and its kin come from Django's JavaScript catalog (graphapp:jsi18n),
  // loaded before this script.
  var STATE_NAME = {
    connecting: pgettext("connection state", "connecting"),
    live: pgettext("connection state", "live"),
    stale: pgettext("connection state", "stale"),
    reconnecting: pgettext("connection state", "reconnecting"),
    offline: pgettext("connection state", "offline"),
    denied: pgettext("connection state", "denied"),
  };
  var STATE_TEXT = {
    connecting: gettext("Connecting to the server"),
    live: gettext("Connected: the numbers are current"),
    stale: gettext("Stale: the server cannot confirm these numbers against the database, so " +
      "they may be out of date; it keeps trying and turns live again by itself"),
    reconnecting: gettext("Connection lost; reconnecting"),
    offline: gettext("Offline: the numbers may be out of date; still retrying"),
    denied: gettext("No access: signed out, or the permission was removed; reload the page to " +
      "sign in"),
  };
  // The names of tiers and types as the panel shows them (the keys are the server's).
  var KEY_NAME = {
    HOT: pgettext("tier", "HOT"),
    WARM: pgettext("tier", "WARM"),
    COLD: pgettext("tier", "COLD"),
    FACT: pgettext("node type", "FACT"),
    CONCEPT: pgettext("node type", "CONCEPT"),
    CODE: pgettext("node type", "CODE"),
    DREAM: pgettext("node type", "DREAM"),
    ENTITY: pgettext("node type", "ENTITY"),
  };
  var SUMMARY_TEXT = {
    created: function (n) { return ngettext("+%s node created", "+%s nodes created", n); },
    deleted: function (n) { return ngettext("\u2212%s node deleted", "\u2212%s nodes deleted", n); },
    tier: function (n) { return ngettext("%s node changed tier", "%s nodes changed tier", n); },
    updated: function (n) { return ngettext("%s node updated", "%s nodes updated", n); },
  };

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function number(value) { return Number(value).toLocaleString(); }

  /* A moment as a person reads it: the time, and the date too when not today. */
  function moment(date) {
    if (date.toDateString() === new Date().toDateString()) return date.toLocaleTimeString();
    return date.toLocaleString();
  }

  function keyClass(key) { return "graphapp-key-" + String(key).toLowerCase(); }

  /* Appends `format` (a translated string) to `node`, each %(name)s replaced by
   * parts[name], text or an element: a translation may put them in any order. */
  function fill(node, format, parts) {
    format.split(/(%\(\w+\)s)/).forEach(function (piece) {
      var name = /^%\((\w+)\)s$/.exec(piece);
      if (name) node.append(parts[name[1]]);
      else if (piece) node.append(piece);
    });
    return node;
  }

  function signed(delta, digits) {
    var text = digits ? Math.abs(delta).toFixed(digits) : number(Math.abs(delta));
    if (delta > 0) return "+" + text;
    if (delta < 0) return "\u2212" + text;
    return "\u00b10";
  }

  /* A tier or type: colour swatch plus its name, so colour is never the only cue. */
  function chip(key) {
    var span = el("span", "graphapp-chip");
    var swatch = el("span", "graphapp-swatch " + keyClass(key));
    swatch.setAttribute("aria-hidden", "true");
    span.append(swatch, KEY_NAME[key] || key);
    return span;
  }

  function Panel(root) {
    this.root = root;
    this.baseline = null;
    this.snapshot = null;
    this.samples = []; // [server time ms, nodes, version], by time
    this.skew = 0; // this browser's clock minus the server's, ms (about)
    this.range = 600; // seconds the chart shows
    this.recent = []; // the latest change events' data, as received
    this.batches = 0; // change events shown: feed entries' keys
    this.state = "connecting";
    this.everLive = false;
    this.lostAt = null;
    this.disconnected = false; // since lostAt: the stream went, not only the confirmation
    this.adminUrl = root.dataset.adminUrl || "";
    this.find("opened").dateTime = new Date().toISOString();
    this.find("opened").textContent = new Date().toLocaleTimeString();
    var select = root.querySelector("[data-chart-range]");
    if (select) {
      this.range = Number(select.value) || this.range;
      select.addEventListener("change", this.chooseRange.bind(this, select));
    }
    setInterval(this.drawChart.bind(this), CHART_TICK_MS);
  }

  Panel.prototype.find = function (stat) {
    return this.root.querySelector('[data-stat="' + stat + '"]');
  };

  Panel.prototype.receive = function (message) {
    if (message.transport) this.root.dataset.transport = message.transport;
    if (message.type === "state") this.setState(message.state, message.confirmedAt || null);
    else if (message.type === "stats") this.render(JSON.parse(message.data));
    else if (message.type === "history") this.history(JSON.parse(message.data));
    else if (message.type === "change") this.changed(message.data);
  };

  Panel.prototype.setState = function (state, confirmedAt) {
    var badge = this.root.querySelector(".graphapp-state");
    // Back after a disconnection, the server replays what this list missed
    // (or says it no longer can: see changed()).
    if (state === "live" && this.lostAt !== null && this.everLive && !this.disconnected) {
      this.note(gettext("Confirmed again. Changes made while stale are in the numbers, perhaps " +
        "not in this list."));
    }
    if (state === "live") { this.everLive = true; this.lostAt = null; this.disconnected = false; }
    else if (state !== "connecting") {
      if (this.lostAt === null) this.lostAt = new Date();
      if (state !== "stale") this.disconnected = true;
    }
    this.state = state;
    badge.dataset.state = state;
    badge.replaceChildren(STATE_NAME[state] || state);
    badge.title = STATE_TEXT[state] || state;
    if (state === "stale") this.confirmed(badge, confirmedAt);
    this.root.dataset.state = state;
  };

  /* The stale badge's second half: when the numbers were last confirmed. */
  Panel.prototype.confirmed = function (badge, confirmedAt) {
    var at = confirmedAt === null ? null : new Date(confirmedAt);
    var part = el("span", "graphapp-state__confirmed");
    if (at === null) {
      part.textContent = gettext("never confirmed");
    } else if (Number.isNaN(at.getTime())) {
      part.textContent = gettext("last confirmed at an unknown time");
    } else {
      var time = el("time", "", moment(at));
      time.dateTime = at.toISOString();
      fill(part, gettext("last confirmed %(time)s"), { time: time });
      badge.title += ". " + interpolate(gettext("Last confirmed %s."), [at.toLocaleString()]);
    }
    part.dataset.confirmed = confirmedAt === null ? "never" : confirmedAt;
    badge.append(" \u00b7 ", part);
  };

  Panel.prototype.render = function (snapshot) {
    if (!this.baseline) this.baseline = snapshot;
    this.snapshot = snapshot;
    var base = this.baseline;
    this.find("nodes").textContent = number(snapshot.nodes);
    // edges and avg_entanglement are null where the server does not compute them
    // (GRAPHAPP["EDGES"] / ["ENTANGLEMENT"] off).
    var edges = snapshot.edges, entanglement = snapshot.avg_entanglement;
    this.find("edges").textContent = edges === null ? gettext("not counted") : number(edges);
    this.find("avg_entanglement").textContent =
      entanglement === null ? gettext("not computed") : entanglement.toFixed(3);
    this.delta("nodes", snapshot.nodes - base.nodes, 0);
    this.delta("edges", edges === null ? null : edges - base.edges, 0);
    this.delta("avg_entanglement",
      entanglement === null ? null : entanglement - base.avg_entanglement, 3);
    var at = this.find("at");
    at.dateTime = snapshot.at;
    at.textContent = new Date(snapshot.at).toLocaleTimeString();
    this.bars("tiers", snapshot.tiers, snapshot.nodes, TIER_ORDER);
    this.bars("types", snapshot.types, snapshot.nodes, TYPE_ORDER);
    this.root.dataset.version = snapshot.version;
    liveCounts(snapshot);
    var at = Date.parse(snapshot.at);
    if (!Number.isNaN(at)) this.skew = Date.now() - at;
    this.sample(at, snapshot.nodes, snapshot.version);
    this.drawChart();
  };

  Panel.prototype.delta = function (stat, delta, digits) {
    var node = this.root.querySelector('[data-delta="' + stat + '"]');
    if (delta === null || Number.isNaN(delta)) {
      node.textContent = "";
      node.dataset.sign = "none";
      return;
    }
    var rounded = digits ? Number(delta.toFixed(digits)) : delta;
    node.textContent = signed(rounded, digits);
    node.dataset.sign = rounded > 0 ? "up" : rounded < 0 ? "down" : "none";
    node.title = gettext("Change since this page opened");
  };

  Panel.prototype.bars = function (name, counts, total, order) {
    var list = this.root.querySelector('[data-bars="' + name + '"]');
    var keys = order.filter(function (k) { return k in counts; })
      .concat(Object.keys(counts).filter(function (k) { return order.indexOf(k) < 0; }));
    list.replaceChildren.apply(list, keys.map(function (key) {
      var share = total ? (100 * counts[key]) / total : 0;
      var item = el("li");
      item.dataset.key = key;
      var label = el("span", "graphapp-bar__label");
      label.append(chip(key));
      var track = el("span", "graphapp-bar__track");
      track.setAttribute("role", "presentation");
      var bar = el("span", "graphapp-bar__fill " + keyClass(key));
      bar.style.width = share + "%";
      track.appendChild(bar);
      var value = el("span", "graphapp-bar__value", number(counts[key]));
      value.dataset.count = key;
      value.title = interpolate(gettext("%s of all nodes"), [Math.round(share) + "%"]);
      item.append(label, track, value);
      return item;
    }));
  };

  /* -- the chart ---------------------------------------------------------- */

  /* One snapshot's node count at its (server) time, in time order; each version once. */
  Panel.prototype.sample = function (at, nodes, version) {
    if (Number.isNaN(at)) return;
    var samples = this.samples;
    for (var seen = samples.length - 1; seen >= 0; seen -= 1) {
      if (samples[seen][2] === version) return;
    }
    var index = samples.length;
    while (index > 0 && samples[index - 1][0] > at) index -= 1;
    samples.splice(index, 0, [at, nodes, version]);
    var since = samples[samples.length - 1][0] - CHART_KEEP_MS;
    while (samples.length > 2 && samples[1][0] < since) samples.shift();
    if (samples.length > CHART_MAX_SAMPLES) {
      // Every other one of the older half: the recent minutes keep their detail.
      var half = samples.length >> 1;
      this.samples = samples.slice(0, half).filter(function (s, i) { return i % 2 === 0; })
        .concat(samples.slice(half));
    }
  };

  /* The stream's `history` event: recent snapshots, oldest first. */
  Panel.prototype.history = function (data) {
    (data.points || []).forEach(function (point) {
      this.sample(Date.parse(point.at), point.nodes, point.version);
    }, this);
    this.drawChart();
  };

  Panel.prototype.chooseRange = function (select) {
    this.range = Number(select.value) || 600;
    var label = this.root.querySelector("[data-chart-range-label]");
    if (label) label.textContent = select.options[select.selectedIndex].textContent;
    this.drawChart();
  };

  Panel.prototype.drawChart = function () {
    var line = this.root.querySelector("[data-chart-line]");
    var summary = this.root.querySelector("[data-chart-summary]");
    if (!line || !this.samples.length) return;
    // The server's now: the line runs flat to it from the last snapshot
    // (nothing changed since, truthfully), unless the numbers are not current.
    var last = this.samples[this.samples.length - 1];
    var end = this.state === "live" ? Math.max(last[0], Date.now() - this.skew) : last[0];
    var from = end - this.range * 1000;
    var shown = this.samples.filter(function (s) { return s[0] >= from; });
    var before = this.samples.filter(function (s) { return s[0] < from; }).pop();
    if (before) shown.unshift([from, before[1], before[2]]);
    if (end > last[0]) shown.push([end, last[1], last[2]]);
    // A history shorter than the range is drawn across the whole width.
    var start = Math.max(from, shown[0][0]);
    if (end - start < 1000) start = end - 1000;
    var values = shown.map(function (s) { return s[1]; });
    var low = Math.min.apply(null, values);
    var high = Math.max.apply(null, values);
    var span = high - low || 1;
    line.setAttribute("points", shown.map(function (s) {
      var x = Math.max(0, ((s[0] - start) / (end - start)) * 300);
      var y = 74 - ((s[1] - low) / span) * 68;
      return x.toFixed(1) + "," + y.toFixed(1);
    }).join(" "));
    line.dataset.samples = shown.length;
    summary.textContent = interpolate(
      gettext("From %(first)s to %(last)s nodes (lowest %(low)s, highest %(high)s)."), {
        first: number(values[0]), last: number(values[values.length - 1]),
        low: number(low), high: number(high),
      }, true);
  };

  /* -- the feed ----------------------------------------------------------- */

  Panel.prototype.changed = function (raw) {
    // The same event twice (a tab handed a stream over) is shown once. Change
    // events carry no id of their own: the same event is the same data.
    if (this.recent.indexOf(raw) >= 0) return;
    this.recent.push(raw);
    if (this.recent.length > RECENT_CHANGES) this.recent.shift();
    var data = JSON.parse(raw);
    if (data.gap) {
      // The server no longer holds what happened while this page was away.
      this.note(gettext("Reconnected. Changes made while disconnected are in the numbers, not in " +
        "this list."));
      return;
    }
    var key = "change-" + (this.batches += 1);
    var at = new Date();
    var entries = [];
    var summary = Object.assign({}, data.summary);
    if (data.changes.length > FEED_SCREEN) {
      data.changes.forEach(function (item) { summary[item.kind] = (summary[item.kind] || 0) + 1; });
    } else {
      data.changes.forEach(function (item, index) {
        entries.push(this.nodeEntry(item, key + ":" + index, at));
      }, this);
    }
    Object.keys(SUMMARY_TEXT).forEach(function (kind) {
      if (summary[kind]) entries.push(this.summaryEntry(kind, summary[kind], key + ":" + kind, at));
    }, this);
    this.prepend(entries.reverse());
  };

  Panel.prototype.entry = function (key, kind, at) {
    var item = el("li", "graphapp-feed__item graphapp-feed__item--" + kind);
    item.dataset.key = key;
    item.dataset.kind = kind;
    var time = el("time", "graphapp-feed__time", at.toLocaleTimeString());
    time.dateTime = at.toISOString();
    item.append(time, " ");
    return item;
  };

  Panel.prototype.nodeEntry = function (change, key, at) {
    var item = this.entry(key, change.kind, at);
    item.dataset.node = change.id;
    var name = interpolate(gettext("Node #%s"), [change.id]);
    var label = el("span", "graphapp-feed__node");
    if (this.adminUrl && change.kind !== "deleted") {
      var link = el("a", "", name);
      link.href = this.adminUrl.replace(/\/0\/change\/$/, "/" + change.id + "/change/");
      label.append(link);
    } else {
      label.textContent = name;
    }
    item.append(label, " ", chip(change.node_type), " ");
    if (change.kind === "created") {
      fill(item, gettext("created in %(tier)s"), { tier: chip(change.tier) });
    } else if (change.kind === "deleted") {
      fill(item, gettext("deleted from %(tier)s"), { tier: chip(change.tier) });
    } else if (change.kind === "tier") {
      fill(item, gettext("moved from %(from)s to %(to)s"), { from: chip(change.from), to: chip(change.tier) });
    } else {
      item.append(change.kind === "updated" ? gettext("updated") : change.kind);
    }
    return item;
  };

  Panel.prototype.summaryEntry = function (kind, count, key, at) {
    var item = this.entry(key, "summary", at);
    item.append(el("strong", "", interpolate(SUMMARY_TEXT[kind](count), [number(count)])));
    return item;
  };

  Panel.prototype.note = function (text) {
    var at = new Date();
    var item = this.entry("note:" + at.getTime(), "note", at);
    item.append(text);
    this.prepend([item]);
  };

  Panel.prototype.prepend = function (entries) {
    if (!entries.length) return;
    var feed = this.root.querySelector("[data-feed]");
    var empty = feed.querySelector("[data-feed-empty]");
    if (empty) empty.remove();
    feed.prepend.apply(feed, entries);
    while (feed.children.length > FEED_MAX) feed.lastElementChild.remove();
  };

  /* Counts shown elsewhere on the page (the admin's filters): data-live-count="tiers.HOT". */
  function liveCounts(snapshot) {
    document.querySelectorAll("[data-live-count]").forEach(function (node) {
      var path = node.dataset.liveCount.split(".");
      var group = snapshot[path[0]];
      if (group && path[1] in group) node.textContent = "(" + number(group[path[1]]) + ")";
    });
  }

  document.querySelectorAll("[data-graphapp-panel]").forEach(function (root) {
    var panel = new Panel(root);
    window.GraphappStream.subscribe(
      root.dataset.eventsUrl, root.dataset.workerUrl, panel.receive.bind(panel),
      root.dataset.accessUrl
    );
  });
})();
