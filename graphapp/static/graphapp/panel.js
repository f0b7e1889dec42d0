/* graphapp live panel: one EventSource per panel, drawn from each `stats` event.
 * Plain JS, no build step. Every event carries the whole snapshot. */
(function () {
  "use strict";

  var TIER_ORDER = ["HOT", "WARM", "COLD"];
  var CLOSED_RETRY_MS = 5000;

  function setState(panel, state) {
    var badge = panel.querySelector(".graphapp-state");
    badge.dataset.state = state;
    badge.textContent = state;
  }

  function drawBars(list, counts, total, order) {
    var keys = order.filter(function (k) { return k in counts; })
      .concat(Object.keys(counts).filter(function (k) { return order.indexOf(k) < 0; }));
    list.replaceChildren.apply(list, keys.map(function (key) {
      var item = document.createElement("li");
      item.dataset.key = key;
      var label = document.createElement("span");
      label.className = "graphapp-bar__label";
      label.textContent = key;
      var track = document.createElement("span");
      track.className = "graphapp-bar__track";
      var bar = document.createElement("span");
      bar.className = "graphapp-bar__fill graphapp-key-" + key.toLowerCase();
      bar.style.width = (total ? (100 * counts[key] / total) : 0) + "%";
      track.appendChild(bar);
      var value = document.createElement("span");
      value.className = "graphapp-bar__value";
      value.dataset.count = key;
      value.textContent = counts[key].toLocaleString();
      item.append(label, track, value);
      return item;
    }));
  }

  function render(panel, snapshot) {
    panel.querySelector('[data-stat="nodes"]').textContent = snapshot.nodes.toLocaleString();
    panel.querySelector('[data-stat="edges"]').textContent = snapshot.edges.toLocaleString();
    panel.querySelector('[data-stat="avg_entanglement"]').textContent =
      snapshot.avg_entanglement.toFixed(3);
    var at = panel.querySelector('[data-stat="at"]');
    at.dateTime = snapshot.at;
    at.textContent = new Date(snapshot.at).toLocaleTimeString();
    drawBars(panel.querySelector('[data-bars="tiers"]'), snapshot.tiers, snapshot.nodes, TIER_ORDER);
    drawBars(panel.querySelector('[data-bars="types"]'), snapshot.types, snapshot.nodes, []);
    panel.dataset.version = snapshot.version;
  }

  function connect(panel) {
    var source = new EventSource(panel.dataset.eventsUrl);
    source.addEventListener("open", function () { setState(panel, "live"); });
    source.addEventListener("stats", function (event) {
      render(panel, JSON.parse(event.data));
      setState(panel, "live");
    });
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (an error status): try again ourselves.
        setState(panel, "offline");
        setTimeout(function () { connect(panel); }, CLOSED_RETRY_MS);
      } else {
        setState(panel, "reconnecting");
      }
    });
  }

  document.querySelectorAll("[data-graphapp-panel]").forEach(connect);
})();
