/* pixfit.js: measures this page's link and writes its class (bw=) into pixfit image URLs.
 *
 * Images written for it carry data-pixfit-src / data-pixfit-srcset instead of src /
 * srcset; this script copies them over, adding bw= when the link is slower than 4g, so the
 * class lives in the URL (a CDN keys on it) whatever the browser sends. On a fast link it
 * adds nothing and the server's default class applies.
 *
 * Evidence, kept in sessionStorage for the tab and updated as resources load:
 * - Resource Timing of resources whose sizes the browser exposes (same-origin ones): body
 *   bytes against the time from first to last byte, less 50 ms of slack. That phase holds
 *   no server think time, and it does hold the latency DevTools' throttling adds. The
 *   fastest resource gives the throughput: noise (a busy main thread, a scheduler stall)
 *   only ever makes a resource look slower, so one quick resource proves the link quick.
 *   Bodies under 1 KB are skipped. Earlier pages' best counts half on each new page.
 * - Round trips: TCP handshakes (connectStart..connectEnd, without TLS) measure one;
 *   times to first byte (which add server time) can only lower it.
 * - navigator.connection where the browser has it (effectiveType, rtt, downlink).
 * Each is classed by the Network Information API's thresholds and the slowest wins.
 * Save-Data is not folded in: browsers that expose it send the Save-Data header on the
 * image requests too, and the server lowers the class for it (doing both would lower it
 * twice).
 */
(function (win, doc) {
  "use strict";
  var KEY = "pixfit",
    NAMES = ["slow-2g", "2g", "3g"],
    RTT_FLOORS = [2000, 1400, 270], // ms, at or above
    KBPS_CEILINGS = [50, 70, 700], // at or below
    SLACK = 50, // ms of a download phase put down to timers and scheduling
    // best kbps (0: none yet), best round trip in ms (0: none), whether a handshake was seen
    state = { k: 0, r: 0, h: 0 },
    seen = {},
    link = (win.pixfit = { cls: "", kbps: 0, rtt: 0, conn: "" }),
    perf = win.performance;

  function rank(value, limits, above) {
    for (var i = 0; i < 3; i++) if (above ? value >= limits[i] : value <= limits[i]) return i;
    return 3;
  }

  function add(e) {
    var key = e.name + e.startTime,
      body = e.encodedBodySize,
      shake = (e.secureConnectionStart > 0 ? e.secureConnectionStart : e.connectEnd) - e.connectStart,
      first = e.responseStart - e.requestStart;
    if (seen[key] || !e.transferSize || !e.responseStart) return; // cached, or timing hidden
    seen[key] = 1;
    if (body >= 1000)
      state.k = Math.max(state.k, Math.min(1e6, (8 * body) / Math.max(e.responseEnd - e.responseStart - SLACK, 0.001)));
    if (shake > 0) state.h = 1;
    [shake, first].forEach(function (t) {
      if (t > 0 && (!state.r || t < state.r)) state.r = t;
    });
  }

  function estimate() {
    var c = navigator.connection,
      i = 3;
    link.kbps = state.k;
    link.rtt = state.h ? state.r : 0;
    if (link.kbps) i = rank(link.kbps, KBPS_CEILINGS);
    if (link.rtt) i = Math.min(i, rank(link.rtt, RTT_FLOORS, 1));
    if (c) {
      link.conn = c.effectiveType || "";
      if (NAMES.indexOf(link.conn) >= 0) i = Math.min(i, NAMES.indexOf(link.conn));
      if (c.rtt > 0) i = Math.min(i, rank(c.rtt, RTT_FLOORS, 1));
      if (c.downlink > 0) i = Math.min(i, rank(c.downlink * 1000, KBPS_CEILINGS));
    }
    link.cls = NAMES[i] || "";
    try {
      sessionStorage.setItem(KEY, JSON.stringify(state));
    } catch (e) {}
    doc.dispatchEvent(new Event("pixfit"));
  }

  function withClass(url) {
    return !link.cls || /[?&]bw=/.test(url)
      ? url
      : url + (url.indexOf("?") < 0 ? "?" : "&") + "bw=" + link.cls;
  }

  function rewrite() {
    doc.querySelectorAll("[data-pixfit-src],[data-pixfit-srcset]").forEach(function (el) {
      var set = el.getAttribute("data-pixfit-srcset"),
        src = el.getAttribute("data-pixfit-src");
      el.removeAttribute("data-pixfit-srcset");
      el.removeAttribute("data-pixfit-src");
      // srcset first: an <img> picks its candidate when src is set.
      if (set)
        el.setAttribute("srcset", set.split(/,\s+/).map(function (c) {
          return c.replace(/^\S+/, withClass);
        }).join(", "));
      if (src) el.setAttribute("src", withClass(src));
    });
  }

  try {
    // Earlier pages' throughput counts half, so the estimate follows a changing link.
    var old = JSON.parse(sessionStorage.getItem(KEY));
    if (old) state = { k: old.k / 2, r: old.r, h: old.h };
  } catch (e) {}
  try {
    perf.getEntriesByType("navigation").concat(perf.getEntriesByType("resource")).forEach(add);
    estimate();
  } catch (e) {}
  // Whatever failed above, the images get their URLs (without bw= at worst).
  rewrite();
  if (win.MutationObserver) new MutationObserver(rewrite).observe(doc.documentElement, { childList: true, subtree: true });
  try {
    new PerformanceObserver(function (list) {
      list.getEntries().forEach(add);
      estimate();
    }).observe({ type: "resource" });
  } catch (e) {}
})(window, document);
