// whipstream report: filter the map to a time window. Markers carry
// data-b="bucket:requests,..."; the timeline's bars carry data-i and data-start.
(function () {
  var from = document.getElementById("from"), to = document.getElementById("to");
  var label = document.getElementById("wlabel"), all = document.getElementById("all");
  if (!from || !to || !label) return;
  var bars = [].slice.call(document.querySelectorAll(".timeline[data-i]"));
  var starts = [].slice.call(document.querySelectorAll("rect.timeline[data-start]"))
    .map(function (r) { return r.getAttribute("data-start"); });
  var markers = [].slice.call(document.querySelectorAll(".marker"));
  var counts = markers.map(function (m) {
    return (m.getAttribute("data-b") || "").split(",").filter(Boolean).map(function (p) {
      var kv = p.split(":");
      return [+kv[0], +kv[1]];
    });
  });
  function day(i) {
    var s = starts[i] || "";
    return s.slice(11, 16) === "00:00" ? s.slice(0, 10) : s.slice(0, 16).replace("T", " ");
  }
  function update() {
    var a = Math.min(+from.value, +to.value), b = Math.max(+from.value, +to.value);
    var sums = counts.map(function (c) {
      var s = 0;
      c.forEach(function (p) { if (p[0] >= a && p[0] <= b) s += p[1]; });
      return s;
    });
    var max = Math.max.apply(null, sums.concat([1])), total = 0, shown = 0;
    markers.forEach(function (m, i) {
      var s = sums[i];
      total += s;
      m.style.display = s ? "" : "none";
      if (s) {
        shown += 1;
        var share = Math.sqrt(s / max);
        m.setAttribute("r", (2 + 12 * share).toFixed(1));
        m.setAttribute("fill", "hsl(" + Math.round(50 * (1 - share)) + ",90%,50%)");
      }
    });
    bars.forEach(function (r) {
      var i = +r.getAttribute("data-i");
      r.style.opacity = i >= a && i <= b ? "1" : "0.25";
    });
    label.textContent = day(a) + " to " + day(b) + ": " + total + " requests at " + shown + " locations";
    document.body.setAttribute("data-window", a + "-" + b);
  }
  function set(a, b) { from.value = a; to.value = b; update(); }
  from.addEventListener("input", update);
  to.addEventListener("input", update);
  if (all) all.addEventListener("click", function () { set(0, starts.length - 1); });
  bars.forEach(function (r) {
    r.addEventListener("click", function () { var i = r.getAttribute("data-i"); set(i, i); });
  });
  var m = /window=(\d+)-(\d+)/.exec(location.hash);
  if (m) set(m[1], m[2]);
})();
