// The console's live figures: every few seconds the room's figures.json (same session),
// its texts swapped into the elements that carry data-figure. Without this script the
// pages show the figures as rendered, and every action is a plain form.
(function () {
  "use strict";
  var EVERY_MS = 3000;
  var lists = document.querySelectorAll("dl[data-figures]");
  function refresh(list) {
    var request = new XMLHttpRequest();
    request.open("GET", list.getAttribute("data-figures"));
    request.setRequestHeader("Accept", "application/json");
    request.onload = function () {
      if (request.status !== 200) { return; }
      var texts;
      try { texts = JSON.parse(request.responseText).text; } catch (e) { return; }
      var cells = list.querySelectorAll("[data-figure]");
      for (var i = 0; i < cells.length; i++) {
        var name = cells[i].getAttribute("data-figure");
        if (Object.prototype.hasOwnProperty.call(texts, name) && cells[i].textContent !== texts[name]) {
          cells[i].textContent = texts[name];
        }
      }
    };
    request.send();
  }
  for (var i = 0; i < lists.length; i++) {
    (function (list) { setInterval(function () { refresh(list); }, EVERY_MS); })(lists[i]);
  }
}());
