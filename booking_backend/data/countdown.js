// Progressive enhancement: a live countdown of the hold, and a print button. Without
// JavaScript the page already says until when the appointments are kept.
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
  if (print) {
    print.addEventListener("click", function (event) { event.preventDefault(); window.print(); });
  }
})();
