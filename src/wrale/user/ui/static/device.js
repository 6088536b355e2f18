/* Device page: moves the live gauges from this device's device.live heartbeats and
   telemetry.summary events, marks old readings stale, draws the uPlot charts (1 h / 6 h /
   24 h / 7 d from /devices/<id>/series, live points added to the 1 h range), shows action
   fills the command form with an example for the chosen operation. */
(function () {
  "use strict";
  var marker = document.getElementById("live-device");
  if (!marker) return;
  var DEV = marker.dataset.device;
  var STALE_AFTER = parseFloat(marker.dataset.staleAfter) || 60;
  var LEVEL_TEXT = { ok: "normal", warning: "warning", critical: "critical", unknown: "no data" };
  var HOUR = 3600;

  function fmt(v, digits) {
    return Number(v).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }
  function num(s) { return s === "" || s == null ? null : parseFloat(s); }
  function toast(text, kind) { if (window.wraleLive) window.wraleLive.toast(text, kind || "info"); }

  /* ------------------------------------------------------------------ gauges */
  function level(el, v) {
    var warn = num(el.dataset.warn), crit = num(el.dataset.crit);
    if (el.dataset.lowIsBad === "true") {
      if (crit !== null && v <= crit) return "critical";
      if (warn !== null && v <= warn) return "warning";
      return "ok";
    }
    if (crit !== null && v >= crit) return "critical";
    if (warn !== null && v >= warn) return "warning";
    return "ok";
  }
  function setStale(el, stale) {
    el.classList.toggle("stale", stale);
    var note = el.querySelector(".stale-note");
    if (note) note.hidden = !stale;
  }
  function setGauge(el, v) {
    var lo = parseFloat(el.dataset.lo), hi = parseFloat(el.dataset.hi);
    var digits = parseInt(el.dataset.digits, 10) || 0, unit = el.dataset.unit;
    var pct = Math.max(0, Math.min(100, (v - lo) / (hi - lo) * 100));
    var lv = level(el, v);
    el.querySelector(".fill").setAttribute("stroke-dasharray", pct.toFixed(1) + " 100");
    el.querySelector(".value").textContent = fmt(v, digits);
    el.querySelector(".level").textContent = LEVEL_TEXT[lv];
    el.dataset.level = lv;
    var desc = el.querySelector("desc");
    if (desc) desc.textContent = fmt(v, digits) + " " + unit + ", " + LEVEL_TEXT[lv];
  }
  function setSource(onBattery) {
    var el = document.getElementById("power-source");
    if (!el) return;
    var src = onBattery >= 0.5 ? "battery" : (el.dataset.lastSwitch === "solar" ? "solar" : "main");
    el.textContent = src;
    el.className = "badge source-" + src;
  }
  function update(metric, value, ts) {
    if (typeof value !== "number" || !isFinite(value)) return;
    var els = document.querySelectorAll('#gauges [data-metric="' + metric + '"]');
    Array.prototype.forEach.call(els, function (el) {
      var kind = el.dataset.kind;
      if (kind === "gauge") setGauge(el, value);
      else if (kind === "flag") {
        var on = value >= 0.5;
        el.dataset.state = on ? "on" : "off";
        el.querySelector(".text").textContent = on ? el.dataset.on : el.dataset.off;
      } else if (kind === "num") {
        el.querySelector(".text").textContent = fmt(value, parseInt(el.dataset.digits, 10) || 0) + " " + el.dataset.unit;
      } else if (kind === "source") setSource(value);
      el.dataset.ts = String(ts);
      setStale(el, false);
    });
  }
  function age(s) {
    if (s < 60) return Math.floor(s) + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return Math.floor(s / 86400) + " d ago";
  }
  function checkStale() {
    var now = Date.now() / 1000;
    var seen = document.getElementById("last-seen"), at = seen ? num(seen.dataset.ts) : null;
    if (at !== null) seen.textContent = age(Math.max(0, now - at));
    Array.prototype.forEach.call(document.querySelectorAll("#gauges [data-ts]"), function (el) {
      var ts = num(el.dataset.ts);
      setStale(el, ts === null || now - ts > STALE_AFTER);
    });
  }

  /* ------------------------------------------------------------------ charts */
  var COLORS = { cpu_temp_c: "--bad", gpu_temp_c: "--warn", ambient_temp_c: "--info",
    fan_pct: "--accent", power_w: "--warn", battery_pct: "--ok" };
  var DASH = { gpu_temp_c: [6, 3], ambient_temp_c: [2, 3] };
  var plots = {}, series = null;

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
  }
  function figures() { return Array.prototype.slice.call(document.querySelectorAll("#charts figure.chart")); }
  function meta(fig) {
    return { key: fig.dataset.chart, unit: fig.dataset.unit, digits: parseInt(fig.dataset.digits, 10) || 0,
      metrics: fig.dataset.metrics.split(" "), labels: fig.dataset.labels.split("|") };
  }
  function columns(m) {
    var c = series.charts[m.key] || { ts: [], series: {} };
    return [c.ts].concat(m.metrics.map(function (k) { return c.series[k] || c.ts.map(function () { return null; }); }));
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function clock(ts, withDay) {
    var d = new Date(ts * 1000), hm = pad(d.getHours()) + ":" + pad(d.getMinutes());
    return withDay ? pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + hm : hm;
  }
  function options(fig, m) {
    var text = css("--muted"), grid = css("--line"), week = series && series.range === "7d";
    var axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    var percent = m.unit === "%";
    return {
      width: Math.max(240, fig.clientWidth), height: 200,
      series: [{ value: function (u, v) { return v == null ? "—" : clock(v, true); } }].concat(
        m.metrics.map(function (k, i) {
          return { label: m.labels[i], stroke: css(COLORS[k]), width: 2, dash: DASH[k], spanGaps: false,
            value: function (u, v) { return v == null ? "—" : fmt(v, m.digits) + " " + m.unit; } };
        })),
      axes: [Object.assign({}, axis, { space: week ? 90 : 60,
        values: function (u, vals) { return vals.map(function (v) { return clock(v, week); }); } }),
        Object.assign({}, axis, { size: 48 })],
      scales: { x: { time: true }, y: percent ? { range: [0, 100] } : {} },
      legend: { live: true }
    };
  }
  function draw() {
    if (!window.uPlot || !series) return;
    figures().forEach(function (fig) {
      var m = meta(fig), box = fig.querySelector(".plot");
      if (plots[m.key]) plots[m.key].destroy();
      box.textContent = "";
      plots[m.key] = new window.uPlot(options(fig, m), columns(m), box);
    });
  }
  function summaryText(m) {
    return m.metrics.map(function (k, i) {
      var s = series.summary[k] || {};
      if (s.min == null && s.latest == null) return m.labels[i] + ": no data";
      var bits = [];
      if (s.min != null) bits.push("min " + fmt(s.min, m.digits), "max " + fmt(s.max, m.digits));
      if (s.latest != null) bits.push("latest " + fmt(s.latest, m.digits));
      return m.labels[i] + ": " + bits.join(", ") + " " + m.unit;
    }).join("; ");
  }
  function summarise() {
    figures().forEach(function (fig) { fig.querySelector(".summary").textContent = summaryText(meta(fig)); });
  }
  function setRange(range) {
    fetch("/devices/" + DEV + "/series?range=" + encodeURIComponent(range), { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error("the server answered " + r.status); return r.json(); })
      .then(function (data) {
        series = data;
        Array.prototype.forEach.call(document.querySelectorAll("#charts [data-range]"), function (b) {
          b.setAttribute("aria-pressed", b.dataset.range === range ? "true" : "false");
        });
        var label = document.querySelector('#charts [data-range="' + range + '"]');
        var info = document.getElementById("charts-range");
        if (info && label) info.firstChild.textContent = "Last " + label.textContent + ", ";
        var step = document.querySelector("#charts-range .step");
        if (step) step.textContent = data.step_label;
        draw(); summarise();
      })
      .catch(function (e) { toast("Cannot load the charts: " + e.message, "error"); });
  }
  /* a live reading: add it to the 1 h charts and to the summaries */
  function addPoint(ts, values) {
    if (!series || series.range !== "1h") return;
    var changed = false;
    figures().forEach(function (fig) {
      var m = meta(fig), c = series.charts[m.key];
      if (!c || !m.metrics.some(function (k) { return typeof values[k] === "number"; })) return;
      if (c.ts.length && ts <= c.ts[c.ts.length - 1]) return;
      c.ts.push(ts);
      m.metrics.forEach(function (k) {
        (c.series[k] = c.series[k] || []).push(typeof values[k] === "number" ? values[k] : null);
      });
      while (c.ts.length && c.ts[0] < ts - HOUR) {
        c.ts.shift();
        m.metrics.forEach(function (k) { c.series[k].shift(); });
      }
      if (plots[m.key]) plots[m.key].setData(columns(m));
      changed = true;
    });
    Object.keys(values).forEach(function (k) {
      var s = series.summary[k], v = values[k];
      if (!s || typeof v !== "number") return;
      s.latest = v;
      s.min = s.min == null ? v : Math.min(s.min, v);
      s.max = s.max == null ? v : Math.max(s.max, v);
    });
    if (changed) summarise();
  }

  /* ------------------------------------------------------------------ wiring */
  function onLive(e) {
    var d = e.detail || {};
    if (d.device_id !== DEV) return;
    var ts = typeof d.ts === "number" ? d.ts : Date.now() / 1000;
    var live = d.live || {};
    Object.keys(live).forEach(function (k) { update(k, live[k], ts); });
    addPoint(ts, live);
    var mode = document.getElementById("mode");
    if (mode && d.mode) { mode.textContent = d.mode; mode.className = "badge mode-" + d.mode; }
    var seen = document.getElementById("last-seen");
    if (seen) { seen.textContent = "0 s ago"; seen.dataset.ts = String(Date.now() / 1000); }
  }
  function onSummary(e) {
    var d = e.detail || {};
    if (d.device_id !== DEV) return;
    var latest = d.latest || {}, values = {}, newest = 0;
    Object.keys(latest).forEach(function (k) {
      var p = latest[k] || {};
      update(k, p.value, p.ts);
      values[k] = p.value;
      newest = Math.max(newest, p.ts || 0);
    });
    if (newest) addPoint(newest, values);
  }
  function onEvent(e) {
    var d = e.detail || {};
    if (d.device_id !== DEV || d.type !== "SOURCE_FAILOVER" || !d.data) return;
    var el = document.getElementById("power-source"), to = d.data.to_source;
    if (el && to) { el.dataset.lastSwitch = to; el.textContent = to; el.className = "badge source-" + to; }
  }
  function examples(select) {
    try { return JSON.parse(select.dataset.examples || "{}"); } catch (err) { return {}; }
  }
  function onOpChange(e) {
    var select = e.target;
    if (!select || select.id !== "op") return;
    var args = document.getElementById("args"), ex = examples(select);
    var known = Object.keys(ex).map(function (k) { return ex[k]; });
    if (args && (!args.value || known.indexOf(args.value) >= 0)) args.value = ex[select.value] || "";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("charts");
    try { series = JSON.parse(box ? box.dataset.series : "null"); } catch (err) { series = null; }
    draw();
    document.body.addEventListener("click", function (e) {
      var b = e.target.closest && e.target.closest("#charts [data-range]");
      if (b) setRange(b.dataset.range);
    });
    document.body.addEventListener("wrale-device-live", onLive);
    document.body.addEventListener("wrale-telemetry-summary", onSummary);
    document.body.addEventListener("wrale-device-event", onEvent);
    document.body.addEventListener("change", onOpChange);
    setInterval(checkStale, 5000);
    var resizeTimer = null;
    window.addEventListener("resize", function () {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(function () {
        figures().forEach(function (fig) {
          var p = plots[fig.dataset.chart];
          if (p) p.setSize({ width: Math.max(240, fig.clientWidth), height: 200 });
        });
      }, 200);
    });
    /* the theme toggle or the system theme changed: draw with the new colours */
    new MutationObserver(draw).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
    if (window.matchMedia) {
      var mq = window.matchMedia("(prefers-color-scheme: dark)");
      if (mq.addEventListener) mq.addEventListener("change", draw);
    }
  });
})();
