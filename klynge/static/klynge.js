// Progressive enhancement only: every page works without this file.
// Buttons with data-copy="#id" (or literal text) copy to the clipboard.
(function () {
  "use strict";
  function textOf(spec) {
    if (spec.charAt(0) !== "#") return spec;
    var el = document.getElementById(spec.slice(1));
    if (!el) return "";
    return "value" in el && el.value !== undefined ? el.value : el.textContent.trim();
  }
  function copy(button) {
    var text = textOf(button.getAttribute("data-copy") || "");
    if (!text || !navigator.clipboard) return;
    navigator.clipboard.writeText(text).then(function () {
      var label = button.textContent;
      button.textContent = button.getAttribute("data-copied") || label;
      button.setAttribute("aria-live", "polite");
      setTimeout(function () { button.textContent = label; }, 2000);
    });
  }
  function init() {
    if (!navigator.clipboard) return;
    var buttons = document.querySelectorAll("[data-copy]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].hidden = false;
      buttons[i].addEventListener("click", function (e) { copy(e.currentTarget); });
    }
    var summary = document.querySelector(".error-summary");
    if (summary) summary.focus();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
