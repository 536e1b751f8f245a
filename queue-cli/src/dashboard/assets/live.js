// Live refresh: every few seconds, fetch this page again and swap in its [data-live] parts.
// The page works without it; it only keeps the counts and the chart current.
(function () {
  "use strict";
  var every = Number(document.body.dataset.refresh || 0);
  if (!every) return;
  var busy = false;
  function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (text) {
        if (text === null) return;
        var page = new DOMParser().parseFromString(text, "text/html");
        page.querySelectorAll("[data-live]").forEach(function (fresh) {
          var old = document.getElementById(fresh.id);
          // A part someone is typing in or has focused stays as it is.
          if (old && !old.contains(document.activeElement)) old.replaceWith(fresh);
        });
      })
      .catch(function () { /* keep the last view; the next tick tries again */ })
      .finally(function () { busy = false; });
  }
  setInterval(refresh, every);
})();
