/* The Devices page: "select this page", and telling the bulk bar (which the server renders
   with the count its confirmation names) when the selection changed. */
(function () {
  "use strict";
  var last = "";

  function signature() {
    var all = document.getElementById("all-matching");
    if (all && all.checked) {
      var count = document.getElementById("result-count");
      return "all:" + (count ? count.dataset.total : "");
    }
    var ids = [];
    document.querySelectorAll('#results input[name="ids"]:checked').forEach(function (b) { ids.push(b.value); });
    return ids.sort().join(",");
  }

  function syncPageBox() {
    var page = document.getElementById("pick-page");
    if (!page) return;
    var boxes = document.querySelectorAll('#results input[name="ids"]');
    var ticked = document.querySelectorAll('#results input[name="ids"]:checked').length;
    page.checked = boxes.length > 0 && ticked === boxes.length;
    page.indeterminate = ticked > 0 && ticked < boxes.length;
  }

  function changed() {
    syncPageBox();
    var now = signature();
    if (now === last) return;
    last = now;
    if (document.getElementById("bulk")) document.body.dispatchEvent(new CustomEvent("wrale-pick"));
  }

  document.addEventListener("change", function (evt) {
    var t = evt.target;
    if (!(t instanceof HTMLInputElement)) return;
    if (t.id === "pick-page") {
      document.querySelectorAll('#results input[name="ids"]').forEach(function (b) { b.checked = t.checked; });
      var all = document.getElementById("all-matching");
      if (all && !t.checked) all.checked = false;
      changed();
    } else if (t.id === "all-matching") {
      if (t.checked) document.querySelectorAll('#results input[name="ids"]').forEach(function (b) { b.checked = true; });
      changed();
    } else if (t.hasAttribute("data-pick")) {
      var allBox = document.getElementById("all-matching");
      if (allBox && !t.checked) allBox.checked = false;
      changed();
    }
  });

  /* new results (filters, a page, a live refresh): the selection may have changed */
  document.addEventListener("htmx:afterSettle", function () {
    var results = document.getElementById("results");
    if (!results || results.dataset.seen) return;
    results.dataset.seen = "1";
    changed();
  });
  /* after moving to another page, keyboard and screen-reader users land on the count */
  document.addEventListener("htmx:afterSettle", function (evt) {
    var src = evt.detail && evt.detail.requestConfig && evt.detail.requestConfig.elt;
    if (src && src.closest && src.closest(".pager")) {
      var count = document.getElementById("result-count");
      if (count) count.focus();
    }
  });

  /* While the confirmation is open the bar stays as the operator read it: a refresh that
     arrives then would replace the very button being confirmed (and the count it named).
     It is made once the dialog closes; the server checks the count anyway. */
  var confirming = false, stale = false;
  document.addEventListener("htmx:confirm", function (evt) {
    if (evt.target && evt.target.id === "bulk-apply" && evt.detail.question) confirming = true;
  });
  document.addEventListener("htmx:beforeRequest", function (evt) {
    var elt = evt.detail && evt.detail.elt;
    if (confirming && elt && elt.id === "bulk") { evt.preventDefault(); stale = true; }
  });
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var target = evt.detail && evt.detail.target;
    if (confirming && target && target.id === "bulk-body") { evt.detail.shouldSwap = false; stale = true; }
  });
  function dialogClosed() {
    confirming = false;
    if (!stale) return;
    stale = false;
    setTimeout(function () {
      var bar = document.getElementById("bulk");
      if (bar && window.htmx) htmx.trigger(bar, "change");
    }, 0);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var dialog = document.getElementById("confirm");
    if (dialog) dialog.addEventListener("close", dialogClosed);
    var results = document.getElementById("results");
    if (results) results.dataset.seen = "1";
    last = signature();
    syncPageBox();
  });
})();
