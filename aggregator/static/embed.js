// Tells the page that frames the embed how tall it is, so its snippet can size the iframe.
(function () {
  "use strict";
  if (window.parent === window) return;
  var last = -1;
  function post() {
    var height = Math.ceil(document.documentElement.getBoundingClientRect().height);
    if (height === last) return;
    last = height;
    window.parent.postMessage({ type: "klynge-embed-height", height: height }, "*");
  }
  post();
  if (typeof ResizeObserver === "function") {
    new ResizeObserver(post).observe(document.documentElement);
  } else {
    window.addEventListener("resize", post);
  }
  window.addEventListener("load", post);
})();
