// Clash warnings while the event form is filled in (issue 13): as the date and time change,
// ask the node's own /admin/cluster/clashes (answered from its cached copy of the cluster)
// and show what else happens then. Without JavaScript the preview page shows the same list.
(function () {
  "use strict";
  var FIELDS = ["date", "start_time", "end_time", "all_day", "end_date", "repeat_until",
    "place", "place_name", "place_street", "place_postcode", "category", "status"];

  function value(form, name) {
    var input = form.elements[name];
    if (!input) return "";
    if (input.type === "checkbox") return input.checked ? input.value : "";
    return input.value;
  }

  function show(box, answer) {
    var list = box.querySelector(".clash-list");
    var age = box.querySelector(".clash-age");
    list.textContent = "";
    if (answer.clashes.length) {
      var ul = document.createElement("ul");
      answer.clashes.forEach(function (c) {
        var li = document.createElement("li");
        li.className = "clash" + (c.hard ? " clash-hard" : "") + (c.same_category ? " clash-category" : "");
        var strong = document.createElement("strong");
        strong.textContent = c.heading;
        li.appendChild(strong);
        li.appendChild(document.createTextNode(" " + c.text));
        ul.appendChild(li);
      });
      list.appendChild(ul);
    }
    if (age && answer.copy && answer.copy.text) {
      age.textContent = answer.copy.text;
      age.classList.toggle("clash-stale", !!answer.copy.stale);
    }
  }

  function init() {
    var box = document.getElementById("clash-box");
    var form = box && box.closest("form");
    if (!form || !window.fetch) return;
    var timer = null;
    var asked = 0;
    function ask() {
      if (!value(form, "date")) return;
      var query = new URLSearchParams();
      FIELDS.forEach(function (name) { query.set(name, value(form, name)); });
      if (box.dataset.clashId) query.set("id", box.dataset.clashId);
      var mine = ++asked;
      fetch(box.dataset.clashUrl + "?" + query.toString(), {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (answer) { if (answer && mine === asked) show(box, answer); })
        .catch(function () {});
    }
    function soon() { clearTimeout(timer); timer = setTimeout(ask, 250); }
    FIELDS.forEach(function (name) {
      var input = form.elements[name];
      if (input && input.addEventListener) {
        input.addEventListener("input", soon);
        input.addEventListener("change", soon);
      }
    });
    ask();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
