// isobox console: the little that needs a script. Pages work without it
// (forms post, links navigate); it adds confirmations, "select all" and
// a refresh of the overview.
(function () {
  "use strict";
  document.addEventListener("submit", function (ev) {
    var f = ev.target;
    var msg = f.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) {
      ev.preventDefault();
    }
  });
  document.addEventListener("change", function (ev) {
    var name = ev.target.getAttribute && ev.target.getAttribute("data-all");
    if (!name) return;
    var boxes = ev.target.form.querySelectorAll('input[type=checkbox][name="' + name + '"]');
    for (var i = 0; i < boxes.length; i++) boxes[i].checked = ev.target.checked;
  });
  if (document.body.getAttribute("data-refresh")) {
    setTimeout(function () { if (!document.hidden) location.reload(); }, 15000);
  }
})();
