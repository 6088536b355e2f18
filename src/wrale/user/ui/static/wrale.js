/* Wrale Fleet dashboard: theme, confirmations, errors of htmx requests, and the live
   stream (/ui/events, server-sent events) that turns bus events into DOM events, toasts
   and the alert counter. Pages refresh their parts with hx-trigger="wrale-<kind> from:body". */
(function () {
  "use strict";
  var root = document.documentElement;
  var THEMES = ["auto", "dark", "light"];
  function applyTheme(t) { root.setAttribute("data-theme", t); }
  applyTheme(localStorage.getItem("wrale-theme") || "auto");

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text) e.textContent = text;
    return e;
  }

  /* Toasts: role=status region; critical ones stay until dismissed. With ``key`` (one
     incident: a board's event and the alert it raises) a second toast within
     INCIDENT_MS of the first is folded into it instead of shown again. */
  var INCIDENT_MS = 30000;
  var incidents = {};
  function toast(message, kind, href, key) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var now = Date.now();
    Object.keys(incidents).forEach(function (k) {
      if (now - incidents[k].at > INCIDENT_MS) delete incidents[k];
    });
    var seen = key ? incidents[key] : null;
    if (seen && seen.node.isConnected) {
      seen.node.dataset.count = String(parseInt(seen.node.dataset.count || "1", 10) + 1);
      seen.node.title = "Also: " + message;
      return;
    }
    var t = el("div", { "class": "toast " + (kind || "info") });
    if (key) { t.dataset.incident = key; t.dataset.count = "1"; incidents[key] = { at: now, node: t }; }
    var close = el("button", { "type": "button", "aria-label": "Dismiss" }, "×");
    close.addEventListener("click", function () { t.remove(); });
    t.appendChild(close);
    if (href) { var a = el("a", { href: href }, message); t.appendChild(a); }
    else t.appendChild(document.createTextNode(message));
    box.appendChild(t);
    if (kind !== "critical" && kind !== "tamper") setTimeout(function () { t.remove(); }, 8000);
    while (box.children.length > 5) box.firstChild.remove();
  }
  window.wraleToast = toast;

  function errorText(xhr) {
    try { var j = JSON.parse(xhr.responseText); if (j.error) return j.error.message; } catch (e) { /* html */ }
    return xhr.status ? "The server answered " + xhr.status : "The server cannot be reached";
  }

  function confirmDialog(text, then) {
    var d = document.getElementById("confirm");
    if (!d || !d.showModal) { if (window.confirm(text)) then(); return; }
    document.getElementById("confirm-text").textContent = text;
    d.returnValue = "";
    d.onclose = function () { if (d.returnValue === "ok") then(); };
    d.showModal();
    document.getElementById("confirm-ok").focus();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var toggle = document.getElementById("theme-toggle");
    if (toggle) toggle.addEventListener("click", function () {
      var next = THEMES[(THEMES.indexOf(root.getAttribute("data-theme")) + 1) % THEMES.length];
      localStorage.setItem("wrale-theme", next);
      applyTheme(next);
      toast("Theme: " + next, "info");
    });
    if (window.htmx) {
      /* 4xx answers carry the form again with its errors: swap them in; 5xx is a bug. */
      htmx.config.responseHandling = [
        { code: "204", swap: false },
        { code: "[23]..", swap: true },
        { code: "(400|403|404|409|422)", swap: true, error: false },  /* unless HX-Reswap: none */
        { code: "...", swap: false, error: true }
      ];
      htmx.config.defaultSwapStyle = "outerHTML";
      document.body.addEventListener("htmx:confirm", function (evt) {
        var q = evt.detail.question;
        if (!q) return;
        evt.preventDefault();
        confirmDialog(q, function () { evt.detail.issueRequest(true); });
      });
      document.body.addEventListener("htmx:responseError", function (evt) {
        toast(errorText(evt.detail.xhr), "error");
      });
      /* an action's answer may say what happened: HX-Trigger {"wrale-notice": "…"} */
      document.body.addEventListener("wrale-notice", function (evt) {
        toast(String(evt.detail && evt.detail.value || "Done"), "ok");
      });
      document.body.addEventListener("wrale-error", function (evt) {
        toast(String(evt.detail && evt.detail.value || "The action failed"), "error");
      });
      document.body.addEventListener("htmx:sendError", function () {
        toast("The server cannot be reached; it will be tried again.", "error");
      });
    }
    /* plain forms with data-confirm ask first too */
    document.body.addEventListener("submit", function (evt) {
      var f = evt.target;
      if (!f.dataset || !f.dataset.confirm || f.dataset.confirmed) return;
      evt.preventDefault();
      confirmDialog(f.dataset.confirm, function () { f.dataset.confirmed = "1"; f.requestSubmit(); });
    }, true);
    if (document.body.dataset.live === "on") connect();
  });

  /* ------------------------------------------------------------------ live stream */
  var source = null, retryTimer = null, counterTimer = null;
  function setLive(state) {
    var s = document.getElementById("live-state");
    if (s) { s.setAttribute("data-state", state); s.title = "Live updates: " + state; }
  }
  function refreshCounter() {
    clearTimeout(counterTimer);
    counterTimer = setTimeout(function () {
      fetch("/ui/nav-count", { credentials: "same-origin" }).then(function (r) {
        return r.ok ? r.text() : null;
      }).then(function (n) {
        var c = document.getElementById("alert-count");
        if (!c || n === null) return;
        n = String(parseInt(n, 10) || 0);
        c.textContent = n; c.dataset.count = n; c.hidden = n === "0";
        c.setAttribute("aria-label", n + " active critical or major alerts");
      }, function () { /* server away (a restart): the next alert event refreshes it */ });
    }, 300);
  }
  var TAMPER_EVENTS = ["TAMPER", "RAPID_TRANSITIONS", "LOCKDOWN"];
  var TAMPER_METRICS = ["case_open", "motion", "lockdown"];  /* what tamper rules watch */
  /* The incident a toast is about: its board and what happened there. A board event, the
     alert the central raises from it (source "event:<TYPE>[:<part>]") and a rule's alert
     on the same thing share one key: a tamper is one incident whichever comes first. */
  function incidentKey(kind, d) {
    if (!d.device_id) return null;
    var what = "";
    if (kind === "device.event") what = String(d.type || "");
    else if (kind === "alert.raised") {
      var m = String(d.metric || "");
      what = m.indexOf("event:") === 0 ? m.split(":")[1] : m;
    }
    if (TAMPER_EVENTS.indexOf(what) >= 0 || TAMPER_METRICS.indexOf(what) >= 0) what = "tamper";
    return what ? d.device_id + "|" + what : null;
  }
  function notify(kind, d) {
    var sev = String(d.severity || "").toLowerCase();
    var key = incidentKey(kind, d);
    if (kind === "alert.raised" && (sev === "critical" || sev === "major")) {
      toast((sev === "critical" ? "Critical: " : "Major: ") + (d.message || d.rule_name),
        sev, d.device_id ? "/devices/" + d.device_id : "/alerts", key);
    } else if (kind === "device.event" && TAMPER_EVENTS.indexOf(d.type) >= 0) {
      toast("Tamper on " + (d.name || d.device_id) + ": " + (d.message || d.type), "tamper",
        "/devices/" + d.device_id, key);
    } else if (kind === "device.enrolled") {
      toast("New device enrolled: " + (d.name || d.device_id), "info", "/devices/" + d.device_id);
    }
  }
  function dispatch(kind, data) {
    var b = document.body, name = kind.replace(/\./g, "-"), head = kind.split(".")[0];
    function fire(n) { b.dispatchEvent(new CustomEvent(n, { detail: data })); }
    fire("wrale-" + name);
    fire("wrale-" + head);
    b.dispatchEvent(new CustomEvent("wrale-live", { detail: { kind: kind, data: data } }));
    /* a page about one device listens to "wrale-this-…": its own board's events only
       (htmx runs no trigger filters here: eval is off) */
    var marker = document.getElementById("live-device");
    if (marker && data && data.device_id === marker.dataset.device) {
      fire("wrale-this-" + name);
      fire("wrale-this-" + head);
      if (kind === "device.event" && data.type) fire("wrale-this-device-event-" + data.type);
    }
  }
  function connect() {
    clearTimeout(retryTimer);
    var url = "/ui/events";
    var marker = document.getElementById("live-device");  /* a page about one device */
    var dev = marker ? marker.dataset.device : "";
    if (dev) url += "?device=" + encodeURIComponent(dev);
    setLive("connecting");
    source = new EventSource(url);
    source.onopen = function () { setLive("open"); };
    source.onmessage = function (m) {
      var ev;
      try { ev = JSON.parse(m.data); } catch (e) { return; }
      if (ev.kind === "hello") { refreshCounter(); return; }
      if (ev.kind === "session.ended") {   /* signed out, disabled or password changed */
        source.close(); setLive("closed");
        location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
        return;
      }
      dispatch(ev.kind, ev.data || {});
      notify(ev.kind, ev.data || {});
      if (ev.kind.indexOf("alert.") === 0) refreshCounter();
    };
    source.onerror = function () {
      setLive("closed");
      if (source.readyState === EventSource.CLOSED) {   /* refused: try again ourselves */
        retryTimer = setTimeout(function () {
          fetch("/ui/nav-count", { credentials: "same-origin", redirect: "manual" }).then(function (r) {
            if (r.type === "opaqueredirect" || r.status === 401) location.reload(); else connect();
          }, function () { connect(); });
        }, 3000);
      }
    };
  }
  window.wraleLive = { dispatch: dispatch, toast: toast };
})();
