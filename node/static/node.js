// Progressive enhancement of the event form: the new-place fields show only when
// "New place…" is chosen. Without JavaScript they are simply always shown.
(function () {
  "use strict";
  function init() {
    var select = document.getElementById("f-place");
    var group = document.getElementById("new-place");
    if (!select || !group) return;
    var typed = group.querySelector("input[value]:not([value=''])");
    function update() { group.hidden = select.value !== "__new__"; }
    if (typed && select.value === "") select.value = "__new__";
    update();
    select.addEventListener("change", update);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
