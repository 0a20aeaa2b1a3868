// Progressive enhancement of the booking pages: a live countdown of the hold, and the
// confirmation's print button. Without JavaScript the pages already say until when the
// appointments are kept, and how to print with the browser's own menu.
//
// One file for both on purpose: the confirmation is shown after the gate has ended the
// queue session, so the browser can no longer fetch anything new; this script comes from
// its cache, loaded by the code page just before.
(function () {
  "use strict";
  var el = document.getElementById("countdown");
  if (el) {
    var expires = parseInt(el.getAttribute("data-expires"), 10);
    var serverNow = parseInt(el.getAttribute("data-now"), 10);
    var offset = serverNow * 1000 - Date.now(); // trust the server's clock, not the phone's
    var text = el.getAttribute("data-text");
    var original = el.textContent;
    var tick = function () {
      var left = Math.max(0, Math.ceil((expires * 1000 - (Date.now() + offset)) / 60000));
      el.textContent = original.trim() + " " + text.replace("{minutes}", String(left));
      if (left > 0) { window.setTimeout(tick, 15000); }
    };
    tick();
  }
  var print = document.getElementById("print");
  if (print && typeof window.print === "function") {
    var hint = document.getElementById("print-hint");
    if (hint) { hint.hidden = true; }
    print.hidden = false;
    print.addEventListener("click", function () { window.print(); });
  }
})();
