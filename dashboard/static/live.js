// Live updates: every few seconds, fetch this page's content block again and swap it in (no framework).
(function () {
  var main = document.getElementById("live");
  if (!main || !window.fetch) return;
  var every = (parseInt(main.getAttribute("data-refresh"), 10) || 5) * 1000;
  setInterval(function () {
    var focused = document.activeElement;
    if (document.hidden || (focused && main.contains(focused) && /^(INPUT|SELECT)$/.test(focused.tagName))) return;
    fetch(window.location.href, { headers: { "X-Dashboard-Fragment": "1" }, credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) main.innerHTML = html; })
      .catch(function () {});
  }, every);
})();
