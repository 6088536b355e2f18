/* Administration and Enrollment pages: copy buttons for one-time secrets (Clipboard API,
   falling back to selecting the text), and the live list of
   newly enrolled devices (refreshed at most every 2 s, the last event always followed). */
(function () {
  "use strict";
  var GAP = 2000, timer = null, last = 0;

  function toast(message, kind) {
    if (window.wraleLive) window.wraleLive.toast(message, kind);
  }

  function selectText(el) {
    el.focus();
    if (el.select) { el.select(); return; }
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }
  function copied(button) {
    button.dataset.copied = "true";
    var text = button.textContent;
    button.textContent = "Copied";
    setTimeout(function () { button.textContent = text; delete button.dataset.copied; }, 2000);
  }
  function fallback(el, button) {
    selectText(el);
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    if (ok) copied(button);
    else toast("The text is selected: press Ctrl+C (⌘C) to copy it.", "info");
  }
  function copy(button) {
    var el = document.getElementById(button.dataset.copy);
    if (!el) return;
    var text = el.value !== undefined ? el.value : el.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { copied(button); },
        function () { fallback(el, button); });
    } else {
      fallback(el, button);  /* plain http to another host: no Clipboard API */
    }
  }

  /* the newly enrolled devices, and the token list whose use counts they change */
  var tokensToo = false;
  function confirming() {
    var d = document.getElementById("confirm");
    return d && d.open;  /* never swap the row a confirmation is about */
  }
  function refreshDevices() {
    timer = null;
    if (!window.htmx) return;
    if (confirming()) { timer = setTimeout(refreshDevices, GAP); return; }
    last = Date.now();
    var box = document.getElementById("new-devices");
    if (box) window.htmx.trigger(box, "enrollment-devices-refresh");
    var tokens = document.getElementById("enroll-tokens");
    if (tokens && tokensToo) window.htmx.trigger(tokens, "enrollment-tokens-refresh");
    tokensToo = false;
  }
  function schedule() {
    if (timer) return;
    timer = setTimeout(refreshDevices, Math.max(0, last + GAP - Date.now()));
  }
  function onDevice(evt) {
    var box = document.getElementById("new-devices");
    if (!box) return;
    var id = evt.detail && evt.detail.device_id;
    /* a new device always; another change only when its device is in the list */
    if (evt.type === "wrale-device-enrolled") { tokensToo = true; schedule(); }
    else if (id && box.querySelector('tr[data-device-id="' + String(id).replace(/[^0-9a-f]/g, "") + '"]')) schedule();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.body.addEventListener("click", function (evt) {
      var b = evt.target.closest && evt.target.closest("button.copy[data-copy]");
      if (b) copy(b);
    });
    document.body.addEventListener("wrale-device-enrolled", onDevice);
    document.body.addEventListener("wrale-device-status", onDevice);
  });
})();
