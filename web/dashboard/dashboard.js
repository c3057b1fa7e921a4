// StorePulse live dashboard: polls the admin JSON endpoints with the operator's
// token (typed in, kept in sessionStorage, never embedded in the page) and
// renders rates from counter deltas, latency, errors, queues, per-rule counters
// with sparklines, and a profile lookup. Every value from the server is written
// with textContent / setAttribute, never as HTML.
(function () {
  "use strict";
  var TOKEN_KEY = "storepulse.adminToken";
  var HISTORY = 60; // points kept per sparkline
  var $ = function (id) { return document.getElementById(id); };

  var token = null;
  try { token = sessionStorage.getItem(TOKEN_KEY); } catch (e) { token = null; }
  var timer = null;
  var prev = null;       // previous stats snapshot {t, stats}
  var prevRules = {};    // rule -> counters at the previous refresh
  var history = { total: [] };
  var ruleHistory = {};  // rule -> fired per refresh
  var inFlight = false;

  // ---- small DOM helpers ----
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function setText(id, v) { var n = $(id); if (n) n.textContent = v; }
  function fmtInt(n) { return typeof n === "number" && isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–"; }
  function fmtRate(n) {
    if (typeof n !== "number" || !isFinite(n)) return "–";
    return n >= 100 ? Math.round(n).toLocaleString("en-US") : n.toFixed(1);
  }
  function fmtUs(us) {
    if (typeof us !== "number" || !isFinite(us)) return "–";
    if (us < 1000) return Math.round(us) + " µs";
    if (us < 1e6) return (us / 1000).toFixed(us < 10000 ? 2 : 1) + " ms";
    return (us / 1e6).toFixed(2) + " s";
  }
  function push(arr, v) { arr.push(v); while (arr.length > HISTORY) arr.shift(); }

  /** Inline SVG sparkline of `values` (area + line), scaled to its own max. */
  function sparkline(values, w, h) {
    var NS = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    var max = 0;
    for (var i = 0; i < values.length; i++) max = Math.max(max, values[i]);
    svg.setAttribute("aria-label", values.length ? "last " + values.length + " refreshes, max " + fmtRate(max) : "no data yet");
    if (values.length < 2) return svg;
    var step = w / (Math.max(values.length, 20) - 1);
    var x0 = w - (values.length - 1) * step;
    var pts = values.map(function (v, k) {
      var y = max > 0 ? h - 2 - (v / max) * (h - 4) : h - 2;
      return (x0 + k * step).toFixed(1) + "," + y.toFixed(1);
    });
    var area = document.createElementNS(NS, "path");
    area.setAttribute("class", "area");
    area.setAttribute("d", "M" + x0.toFixed(1) + "," + h + " L" + pts.join(" L") + " L" + w + "," + h + " Z");
    var line = document.createElementNS(NS, "path");
    line.setAttribute("class", "line");
    line.setAttribute("d", "M" + pts.join(" L"));
    line.setAttribute("vector-effect", "non-scaling-stroke");
    svg.appendChild(area);
    svg.appendChild(line);
    return svg;
  }

  // ---- connection state ----
  function setConn(kind, text) {
    var c = $("conn");
    c.className = "pill " + kind;
    c.textContent = text;
  }
  function authHeaders() { return { Authorization: "Bearer " + token }; }
  function getJson(path) {
    return fetch(path, { headers: authHeaders(), cache: "no-store", credentials: "omit" }).then(function (r) {
      if (r.status === 401) { var e = new Error("the server refused the admin token (401)"); e.auth = true; throw e; }
      if (!r.ok) throw new Error(path + ": HTTP " + r.status);
      return r.json();
    });
  }

  // ---- stats ----
  var CHANNELS = ["pos", "web", "app"];
  function renderStats(s, now) {
    var ev = s.events || {};
    var total = 0;
    Object.keys(ev).forEach(function (k) { total += ev[k] || 0; });
    var dt = prev ? (now - prev.t) / 1000 : 0;
    var rate = function (cur, old) { return dt > 0 && typeof old === "number" ? Math.max(0, cur - old) / dt : NaN; };
    var pe = prev ? prev.stats.events || {} : {};
    var prevTotal = 0;
    Object.keys(pe).forEach(function (k) { prevTotal += pe[k] || 0; });
    var rTotal = prev ? rate(total, prevTotal) : NaN;
    setText("rate-total", fmtRate(rTotal));
    if (prev) push(history.total, rTotal);
    var sp = $("spark-total"); clear(sp); sp.appendChild(sparkline(history.total, 300, 40));
    CHANNELS.forEach(function (ch) {
      setText("rate-" + ch, fmtRate(prev ? rate(ev[ch] || 0, pe[ch] || 0) : NaN));
      setText("count-" + ch, fmtInt(ev[ch] || 0) + " total");
    });
    setText("events-total", fmtInt(total));
    var bt = s.eventsByType || {};
    setText("by-type", Object.keys(bt).map(function (k) { return k + " " + fmtInt(bt[k]); }).join(" · "));
    var lat = s.latencyUs || {};
    setText("latency-p50", fmtUs(lat.p50));
    setText("latency-p99", fmtUs(lat.p99));
    setText("latency-count", fmtInt(lat.count) + " events measured (hand-off to reply)");
    setText("actions", fmtInt(s.actions));
    setText("actions-rate", prev ? fmtRate(rate(s.actions || 0, prev.stats.actions || 0)) + " / s" : "");
    setText("profiles", fmtInt(s.profiles));
    setText("connections", fmtInt(s.connections));
    setText("duplicates", fmtInt(s.duplicates));

    var tb = $("errors").tBodies[0]; clear(tb);
    var errs = s.errors || {};
    var pErr = prev ? prev.stats.errors || {} : {};
    Object.keys(errs).forEach(function (code) {
      var tr = el("tr", errs[code] > 0 ? "nonzero" : "");
      tr.setAttribute("data-code", code);
      tr.appendChild(el("td", "", code));
      tr.appendChild(el("td", "num", fmtInt(errs[code])));
      tr.appendChild(el("td", "num", prev ? fmtInt(Math.max(0, errs[code] - (pErr[code] || 0))) : "–"));
      tb.appendChild(tr);
    });

    var q = $("queues"); clear(q);
    var depths = Array.isArray(s.queueDepth) ? s.queueDepth : [];
    var qmax = Math.max.apply(null, [100].concat(depths));
    depths.forEach(function (d, i) {
      var row = el("div", "qbar");
      row.setAttribute("data-shard", String(i));
      row.appendChild(el("span", "", "shard " + i));
      var bar = el("div", "bar"), fill = el("div", "fill");
      fill.style.width = Math.min(100, (d / qmax) * 100).toFixed(1) + "%";
      bar.appendChild(fill);
      row.appendChild(bar);
      row.appendChild(el("span", "n", fmtInt(d)));
      q.appendChild(row);
    });
    if (!depths.length) q.appendChild(el("p", "hint", "no shards reported"));
  }

  // ---- rules ----
  var KNOWN = { evaluated: 1, matched: 1, fired: 1, held_out: 1, timers_armed: 1, timers_cancelled: 1, timers_dropped: 1, suppressed: 1 };
  function renderRules(rules) {
    if (!Array.isArray(rules)) rules = [];
    setText("rules-count", rules.length + " loaded");
    var tb = $("rules").tBodies[0]; clear(tb);
    var seen = {};
    rules.forEach(function (r) {
      if (!r || typeof r !== "object") return;
      var name = String(r.rule || r.name || "?");
      seen[name] = true;
      var c = r.counters && typeof r.counters === "object" ? r.counters : {};
      var old = prevRules[name];
      var h = ruleHistory[name] = ruleHistory[name] || [];
      if (old) push(h, Math.max(0, (c.fired || 0) - (old.fired || 0)));
      prevRules[name] = JSON.parse(JSON.stringify(c));

      var tr = el("tr", r.enabled === false ? "disabled" : "");
      tr.setAttribute("data-rule", name);
      var nameCell = el("td", "name");
      nameCell.appendChild(el("strong", "", name));
      if (r.enabled === false) nameCell.appendChild(el("span", "tag warn", "disabled"));
      if (r.description) nameCell.title = String(r.description);
      tr.appendChild(nameCell);
      var on = Array.isArray(r.on) ? r.on.join(", ") : String(r.on || "");
      if (r.waitSeconds) on += " + wait " + fmtWait(r.waitSeconds);
      tr.appendChild(el("td", "", on));
      tr.appendChild(el("td", "", Array.isArray(r.channels) ? r.channels.join(", ") : ""));
      tr.appendChild(el("td", "num evaluated", fmtInt(c.evaluated)));
      tr.appendChild(el("td", "num matched", fmtInt(c.matched)));
      tr.appendChild(el("td", "num fired", fmtInt(c.fired)));
      var sp = el("td", "spark"); sp.appendChild(sparkline(h, 120, 24)); tr.appendChild(sp);
      var ho = fmtInt(c.held_out);
      if (typeof r.holdoutPercent === "number" && r.holdoutPercent > 0) ho += " (" + r.holdoutPercent + "%)";
      tr.appendChild(el("td", "num held-out", ho));
      tr.appendChild(el("td", "num timers", c.timers_armed !== undefined
        ? fmtInt(c.timers_armed) + " armed / " + fmtInt(c.timers_cancelled) + " cancelled" : "–"));
      var sup = el("td", "suppressed");
      var sObj = c.suppressed && typeof c.suppressed === "object" ? c.suppressed : {};
      Object.keys(sObj).forEach(function (k) { if (sObj[k] > 0) sup.appendChild(el("span", "tag warn", k + " " + fmtInt(sObj[k]))); });
      if (!sup.firstChild) sup.textContent = "–";
      tr.appendChild(sup);
      // Counters this page does not know yet (conversions, revenue, lift …) are shown as they come.
      var other = el("td", "other");
      Object.keys(c).forEach(function (k) {
        if (KNOWN[k]) return;
        var v = c[k];
        if (typeof v === "number") other.appendChild(el("span", "tag", k + " " + (Number.isInteger(v) ? fmtInt(v) : v.toFixed(2))));
      });
      ["converted", "revenue", "lift"].forEach(function (k) {
        if (typeof r[k] === "number") other.appendChild(el("span", "tag", k + " " + r[k]));
      });
      tr.appendChild(other);
      tb.appendChild(tr);
    });
    Object.keys(prevRules).forEach(function (k) { if (!seen[k]) { delete prevRules[k]; delete ruleHistory[k]; } });
    if (!rules.length) {
      var tr = el("tr"); var td = el("td", "hint", "no rules loaded"); td.colSpan = 11; tr.appendChild(td); tb.appendChild(tr);
    }
  }
  function fmtWait(s) {
    if (s % 86400 === 0) return s / 86400 + "d";
    if (s % 3600 === 0) return s / 3600 + "h";
    if (s % 60 === 0) return s / 60 + "m";
    return s + "s";
  }

  // ---- SMS outbox ----
  function renderSms(s) {
    if (!s || typeof s !== "object") s = {};
    setText("sms-gateway", s.gateway ? "gateway configured" + (s.format ? " (" + s.format + ")" : "") : "no gateway configured: messages stay queued");
    var box = $("sms-counts"); clear(box);
    var counts = s.counts && typeof s.counts === "object" ? s.counts : {};
    var totals = s.totals && typeof s.totals === "object" ? s.totals : {};
    Object.keys(counts).forEach(function (k) { box.appendChild(el("span", "tag" + (k === "failed" && counts[k] > 0 ? " warn" : ""), k + " " + fmtInt(counts[k]))); });
    ["optedOut", "deadNumber", "droppedFull", "retries"].forEach(function (k) {
      if (typeof totals[k] === "number" && totals[k] > 0) box.appendChild(el("span", "tag warn", k + " " + fmtInt(totals[k])));
    });
    var rules = s.rules && typeof s.rules === "object" ? s.rules : {};
    Object.keys(rules).forEach(function (r) {
      var st = rules[r] || {};
      if (st.sms_failed > 0) box.appendChild(el("span", "tag warn", r + ": " + fmtInt(st.sms_failed) + " failed"));
    });
    var tb = $("sms").tBodies[0]; clear(tb);
    var msgs = Array.isArray(s.messages) ? s.messages : [];
    msgs.forEach(function (m) {
      if (!m || typeof m !== "object") return;
      var tr = el("tr", m.state === "failed" ? "nonzero" : "");
      tr.setAttribute("data-sms", String(m.id || ""));
      tr.appendChild(el("td", "", String(m.updated || m.created || "")));
      tr.appendChild(el("td", "", String(m.rule || "")));
      tr.appendChild(el("td", "", String(m.customer || "")));
      tr.appendChild(el("td", "", String(m.to || "")));
      tr.appendChild(el("td", "state", String(m.state || "")));
      tr.appendChild(el("td", "num", fmtInt(m.attempts)));
      var text = String(m.text || "");
      var td = el("td", "", text.length > 80 ? text.slice(0, 79) + "…" : text);
      td.title = text;
      tr.appendChild(td);
      tr.appendChild(el("td", "", String(m.lastError || "")));
      tb.appendChild(tr);
    });
    if (!msgs.length) {
      var tr = el("tr"); var td = el("td", "hint", "no messages yet"); td.colSpan = 8; tr.appendChild(td); tb.appendChild(tr);
    }
  }

  // ---- refresh loop ----
  function refresh() {
    if (!token || inFlight) return;
    inFlight = true;
    // The SMS panel is optional: an older server without the outbox endpoint still shows the rest.
    var sms = getJson("/v1/admin/sms?limit=20").catch(function (e) { if (e && e.auth) throw e; return null; });
    Promise.all([getJson("/v1/admin/stats"), getJson("/v1/rules"), sms]).then(function (res) {
      var now = Date.now();
      renderStats(res[0], now);
      renderRules(res[1]);
      renderSms(res[2]);
      prev = { t: now, stats: res[0] };
      setConn("ok", "live · " + new Date(now).toLocaleTimeString());
      document.body.setAttribute("data-refreshes", String((+document.body.getAttribute("data-refreshes") || 0) + 1));
    }).catch(function (e) {
      if (e && e.auth) { stop(); setConn("bad", "token refused"); $("forget").hidden = false; return; }
      setConn("bad", "unreachable: " + (e && e.message ? e.message : "error"));
    }).then(function () { inFlight = false; });
  }
  function start() {
    stop();
    $("hint").hidden = true;
    $("forget").hidden = false;
    setConn("idle", "connecting…");
    refresh();
    timer = setInterval(refresh, +$("interval").value || 2000);
  }
  function stop() { if (timer) clearInterval(timer); timer = null; }

  $("auth").addEventListener("submit", function (e) {
    e.preventDefault();
    var t = $("token").value.trim();
    if (!t) return;
    token = t;
    $("token").value = "";
    try { sessionStorage.setItem(TOKEN_KEY, t); } catch (err) { /* private mode: keep in memory */ }
    prev = null; prevRules = {}; history.total = []; ruleHistory = {};
    start();
  });
  $("forget").addEventListener("click", function () {
    stop();
    token = null;
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (err) { /* ignore */ }
    $("forget").hidden = true;
    $("hint").hidden = false;
    setConn("idle", "not connected");
  });
  $("interval").addEventListener("change", function () { if (timer) start(); });

  // ---- profile lookup ----
  function dl(pairs) {
    var d = el("dl");
    pairs.forEach(function (p) {
      if (p[1] === undefined || p[1] === null || p[1] === "") return;
      d.appendChild(el("dt", "", p[0]));
      d.appendChild(el("dd", "", p[1]));
    });
    return d;
  }
  $("lookup").addEventListener("submit", function (e) {
    e.preventDefault();
    var id = $("profile-id").value.trim();
    var out = $("profile-summary");
    clear(out);
    $("profile-raw").textContent = "";
    if (!id) return;
    if (!token) { out.appendChild(el("p", "err", "Connect with the admin token first.")); return; }
    fetch("/v1/profiles/" + encodeURIComponent(id), { headers: authHeaders(), cache: "no-store", credentials: "omit" })
      .then(function (r) {
        return r.text().then(function (body) { return { status: r.status, body: body }; });
      })
      .then(function (res) {
        if (res.status === 404) { out.appendChild(el("p", "err", "No profile for " + id + ".")); return; }
        if (res.status !== 200) { out.appendChild(el("p", "err", "HTTP " + res.status + ": " + res.body.slice(0, 200))); return; }
        var p = JSON.parse(res.body);
        out.setAttribute("data-profile", String(p.userId || id));
        var t = p.traits || {};
        var name = [t.firstName, t.lastName].filter(Boolean).join(" ");
        var cart = p.cart || {};
        var items = Array.isArray(cart.items) ? cart.items : [];
        var cats = p.categories || {};
        var contacts = Array.isArray(p.contacts) ? p.contacts : [];
        var rfm = p.rfm || {};
        out.appendChild(dl([
          ["id", String(p.userId || id)],
          ["name", name],
          ["linked ids", Array.isArray(p.linkedIds) ? p.linkedIds.join(", ") : ""],
          ["home store", t.homeStore],
          ["SMS consent", p.consent ? (p.consent.sms ? "yes" : "no") : ""],
          ["orders (pos / web)", fmtInt(rfm.frequency) + " (" + fmtInt((p.channels || {}).pos) + " / " + fmtInt((p.channels || {}).web) + ")"],
          ["spend", typeof rfm.monetary === "number" ? "€" + rfm.monetary.toFixed(2) : ""],
          ["web views", fmtInt(p.webViews)],
          ["cart", items.length ? items.map(function (i) { return (i.quantity || 1) + " × " + (i.name || i.productId); }).join(", ") +
                   " (€" + (typeof cart.value === "number" ? cart.value.toFixed(2) : "?") + ")" : "empty"],
          ["categories", Object.keys(cats).map(function (k) { return k + " €" + Number(cats[k]).toFixed(2); }).join(", ")],
          ["segment", p.segment || ""],
          ["CLV / P(alive)", typeof p.clv === "number" ? "€" + p.clv.toFixed(2) + " / " + (typeof p.pAlive === "number" ? p.pAlive.toFixed(2) : "?") : ""],
          ["first / last seen", (p.firstSeen || "?") + " / " + (p.lastSeen || "?")],
          ["actions received", contacts.length ? contacts.map(function (c) { return c.rule + " via " + c.channel + " at " + c.at; }).join("; ") : "none"]
        ]));
        var recent = Array.isArray(p.recentEvents) ? p.recentEvents : [];
        var rt = el("table", "recent");
        rt.id = "profile-recent";
        var head = el("tr");
        ["time", "event", "channel", "total", "id", "messageId"].forEach(function (h) { head.appendChild(el("th", "", h)); });
        rt.appendChild(head);
        recent.forEach(function (e) {
          if (!e || typeof e !== "object") return;
          var tr = el("tr");
          tr.appendChild(el("td", "", String(e.timestamp || "")));
          tr.appendChild(el("td", "", String(e.event || e.type || "")));
          tr.appendChild(el("td", "", String(e.channel || "")));
          tr.appendChild(el("td", "num", typeof e.total === "number" ? "€" + e.total.toFixed(2) : ""));
          tr.appendChild(el("td", "", String(e.id || "")));
          tr.appendChild(el("td", "", String(e.messageId || "")));
          rt.appendChild(tr);
        });
        out.appendChild(el("h3", "", "Recent events (" + recent.length + ", newest first)"));
        out.appendChild(recent.length ? rt : el("p", "hint", "none kept on this node (the last " + 8192 + " events per shard are kept)"));
        $("profile-raw").textContent = JSON.stringify(p, null, 2);
      })
      .catch(function (err) { out.appendChild(el("p", "err", "Lookup failed: " + (err && err.message ? err.message : err))); });
  });

  if (token) start();
})();
