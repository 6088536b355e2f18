/* Alerts pages: refresh the alert table on alert events (at most every 2 s, the last event
   always followed), never while someone is typing in it; and the rule editor's
   budget checkbox, offered only for the rack power metric. */
(function () {
  "use strict";
  var GAP = 2000, timer = null, last = 0;

  function busy(table) {
    var a = document.activeElement;
    return a && table.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName);
  }
  function refresh() {
    timer = null;
    var table = document.getElementById("alerts-table");
    if (!table || !window.htmx) return;
    if (busy(table)) { timer = setTimeout(refresh, GAP); return; }
    last = Date.now();
    window.htmx.trigger(table, "alerts-refresh");
  }
  function onAlert() {
    if (timer) return;
    timer = setTimeout(refresh, Math.max(0, last + GAP - Date.now()));
  }

  function budgetState() {
    var metric = document.getElementById("metric");
    var row = document.getElementById("budget-row");
    var box = document.getElementById("budget");
    var threshold = document.getElementById("threshold");
    if (!metric || !row || !box || !threshold) return;
    var rack = metric.value === "rack:power_w";
    row.hidden = !rack;
    if (!rack) box.checked = false;
    threshold.disabled = rack && box.checked;
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.body.addEventListener("wrale-alert", onAlert);
    document.body.addEventListener("change", function (evt) {
      var id = evt.target && evt.target.id;
      if (id === "metric" || id === "budget") budgetState();
    });
    document.body.addEventListener("htmx:afterSettle", budgetState);
    budgetState();
  });
})();
