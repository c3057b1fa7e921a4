/*! StorePulse website widget — dependency-free, served by storepulse at /widget.js.
 *
 * A shop adds it with one config object and one script tag:
 *
 *   <script>
 *     window.StorePulseConfig = { endpoint: "https://pulse.example.com", siteKey: "my-shop" };
 *   </script>
 *   <script async src="https://pulse.example.com/widget.js"></script>
 *
 * and then calls `storepulse.track("Product Viewed", {...})`,
 * `storepulse.identify("C42", {firstName: "Ana"})`, `storepulse.page()`,
 * `storepulse.alias("C42")`. Calls made before the script has loaded can be
 * queued as `(window.storepulse = window.storepulse || []).push(["track", "Cart Viewed"])`.
 *
 * What it does (wire protocol: docs/protocol.md):
 * - keeps a visitor id (anonymousId) in first-party storage: localStorage,
 *   falling back to a cookie, falling back to memory;
 * - opens the public WebSocket /v1/web and reconnects with exponential backoff
 *   and jitter (1 s … 30 s), also at once when the browser comes back online;
 * - every event gets a messageId and its event-time timestamp when it is
 *   tracked; events stay in a bounded queue (kept in sessionStorage across
 *   reloads of the tab, oldest dropped first) until the server acks them, and are re-sent after a
 *   reconnect or when no reply came (the server de-duplicates by messageId);
 * - a client-side token bucket keeps under the server's per-connection rate;
 * - renders `recommend` replies into every `[data-storepulse="recommendations"]`
 *   element (attributes: data-limit, data-product-id);
 * - shows `web` actions (event replies) and pushed nudges in a small
 *   dismissible panel;
 * - every text from the server is written with textContent (never innerHTML);
 * - never throws into the host page: every entry point catches and logs only
 *   when `debug: true`.
 *
 * Config (window.StorePulseConfig, all optional):
 *   endpoint      "https://host[:port]" or "wss://host[:port]"; default: the
 *                 origin this script was loaded from
 *   siteKey       shop identifier, sent as ?site=… on the WebSocket URL
 *   autoPage      send page() on load (default true)
 *   panel         show nudges in the built-in panel (default true)
 *   recommendLimit default number of recommendations (default 4)
 *   maxQueue      events kept while offline (default 200, oldest dropped)
 *   ratePerSec    client-side send rate (default 10; the server allows 20)
 *   storageKey    prefix for storage keys (default "storepulse")
 *   debug         log to the console (default false)
 */
(function (win, doc) {
  "use strict";
  if (!win || !doc) return;
  var existing = win.storepulse;
  if (existing && existing.__storepulse) return; // loaded twice: keep the first

  var cfg = win.StorePulseConfig || win.storepulseConfig || {};
  var scriptEl = doc.currentScript;
  var PREFIX = String(cfg.storageKey || "storepulse");
  var MAX_QUEUE = clampInt(cfg.maxQueue, 1, 5000, 200);
  var RATE = Math.max(1, Number(cfg.ratePerSec) || 10);
  var MAX_MSG = 15000; // under the server's web.max_message_bytes (16 KiB)
  var RESEND_AFTER_MS = 5000;
  var DEBUG = !!cfg.debug;

  function clampInt(v, lo, hi, dflt) {
    var n = parseInt(v, 10);
    if (!isFinite(n)) return dflt;
    return Math.min(hi, Math.max(lo, n));
  }
  function log() {
    if (!DEBUG || !win.console) return;
    try { win.console.log.apply(win.console, ["[storepulse]"].concat([].slice.call(arguments))); } catch (e) { /* ignore */ }
  }
  /** Runs fn, swallowing (and optionally logging) anything it throws. */
  function safe(fn) {
    return function () {
      try { return fn.apply(this, arguments); } catch (e) { log("internal error", e); return undefined; }
    };
  }

  // ---- storage -------------------------------------------------------------
  var memStore = {};
  function lsGet(k) {
    try { var v = win.localStorage.getItem(PREFIX + "." + k); if (v !== null) return v; } catch (e) { /* blocked */ }
    return Object.prototype.hasOwnProperty.call(memStore, k) ? memStore[k] : null;
  }
  function lsSet(k, v) {
    memStore[k] = v;
    try { win.localStorage.setItem(PREFIX + "." + k, v); return true; } catch (e) { return false; }
  }
  function lsDel(k) {
    delete memStore[k];
    try { win.localStorage.removeItem(PREFIX + "." + k); } catch (e) { /* blocked */ }
  }
  function cookieGet(k) {
    try {
      var name = PREFIX + "_" + k + "=";
      var parts = doc.cookie ? doc.cookie.split(/;\s*/) : [];
      for (var i = 0; i < parts.length; i++)
        if (parts[i].indexOf(name) === 0) return decodeURIComponent(parts[i].slice(name.length));
    } catch (e) { /* blocked */ }
    return null;
  }
  function cookieSet(k, v, days) {
    try {
      var secure = win.location && win.location.protocol === "https:" ? "; Secure" : "";
      doc.cookie = PREFIX + "_" + k + "=" + encodeURIComponent(v) + "; Max-Age=" + (days * 86400) +
                   "; Path=/; SameSite=Lax" + secure;
    } catch (e) { /* blocked */ }
  }
  /** An id kept in localStorage, mirrored to a cookie when localStorage is unavailable. */
  function idGet(k) {
    var v = lsGet(k);
    if (v) return v;
    v = cookieGet(k);
    if (v) lsSet(k, v);
    return v;
  }
  function idSet(k, v) {
    if (!lsSet(k, v)) cookieSet(k, v, 730);
  }
  function idDel(k) {
    lsDel(k);
    cookieSet(k, "", 0);
  }

  function randomId(prefix) {
    var c = win.crypto || win.msCrypto;
    try {
      if (c && c.randomUUID) return prefix + c.randomUUID();
      if (c && c.getRandomValues) {
        var b = new Uint8Array(16);
        c.getRandomValues(b);
        var s = "";
        for (var i = 0; i < b.length; i++) s += (b[i] + 256).toString(16).slice(1);
        return prefix + s;
      }
    } catch (e) { /* fall through */ }
    return prefix + Date.now().toString(36) + Math.random().toString(36).slice(2, 12);
  }
  function validId(v) { return typeof v === "string" && v.length > 0 && v.length <= 128; }

  var visitorId = idGet("vid");
  if (!validId(visitorId)) { visitorId = randomId("v-"); idSet("vid", visitorId); }
  var userId = idGet("uid");
  if (!validId(userId)) userId = null;

  // ---- endpoint --------------------------------------------------------------
  function wsUrl() {
    var base = cfg.endpoint;
    if (!base) {
      try { base = scriptEl && scriptEl.src ? new URL(scriptEl.src, win.location.href).origin : win.location.origin; }
      catch (e) { base = win.location.origin; }
    }
    base = String(base).replace(/\/+$/, "").replace(/\/v1\/web$/, "");
    if (/^http:/i.test(base)) base = "ws:" + base.slice(5);
    else if (/^https:/i.test(base)) base = "wss:" + base.slice(6);
    else if (!/^wss?:/i.test(base)) base = (win.location.protocol === "https:" ? "wss://" : "ws://") + base;
    var url = base + "/v1/web";
    if (cfg.siteKey) url += "?site=" + encodeURIComponent(String(cfg.siteKey));
    // Names the visitor at the upgrade, so the server can cap connections per
    // visitor (web.max_connections_per_visitor) as well as per address.
    url += (cfg.siteKey ? "&" : "?") + "anonymousId=" + encodeURIComponent(visitorId);
    return url;
  }

  // ---- outgoing queue ----------------------------------------------------------
  // Entries: {id, msg (JSON string), sentAt (ms, 0 = not sent on this socket)}.
  var queue = [];
  var stats = { tracked: 0, sent: 0, acked: 0, errors: 0, dropped: 0, actions: 0, pushes: 0, reconnects: 0 };
  var lastError = null;

  // The unacked queue is per tab (sessionStorage: survives reloads and same-tab
  // navigation, not shared between tabs that would overwrite each other).
  function persistQueue() {
    try { win.sessionStorage.setItem(PREFIX + ".queue", JSON.stringify(queue.map(function (q) { return q.msg; }))); }
    catch (e) { /* full or blocked: the queue still lives in memory */ }
  }
  (function loadQueue() {
    try {
      var raw = win.sessionStorage.getItem(PREFIX + ".queue");
      if (!raw) return;
      var arr = JSON.parse(raw);
      if (!Array.isArray(arr)) return;
      for (var i = Math.max(0, arr.length - MAX_QUEUE); i < arr.length; i++) {
        if (typeof arr[i] !== "string") continue;
        var m = JSON.parse(arr[i]);
        if (m && validId(m.messageId)) queue.push({ id: m.messageId, msg: arr[i], sentAt: 0 });
      }
    } catch (e) { try { win.sessionStorage.removeItem(PREFIX + ".queue"); } catch (e2) { /* blocked */ } }
  })();

  function enqueue(obj) {
    obj.messageId = randomId("w-");
    if (!obj.timestamp) obj.timestamp = new Date().toISOString();
    var msg = JSON.stringify(obj);
    if (msg.length > MAX_MSG) { stats.dropped++; log("event too large, dropped", obj.type, obj.event); return null; }
    queue.push({ id: obj.messageId, msg: msg, sentAt: 0 });
    while (queue.length > MAX_QUEUE) { queue.shift(); stats.dropped++; }
    stats.tracked++;
    persistQueue();
    pump();
    return obj.messageId;
  }
  function settle(messageId) {
    for (var i = 0; i < queue.length; i++) {
      if (queue[i].id === messageId) { queue.splice(i, 1); persistQueue(); return true; }
    }
    return false;
  }

  // ---- connection --------------------------------------------------------------
  var ws = null;
  var state = "idle"; // idle | connecting | open | closed
  var attempt = 0;
  var reconnectTimer = null;
  var pumpTimer = null;
  var tokens = RATE;
  var lastRefill = Date.now();
  var recWanted = null; // pending recommend request (sent when open)

  function connect() {
    if (ws || !win.WebSocket) return;
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    state = "connecting";
    var sock;
    try { sock = new win.WebSocket(wsUrl()); } catch (e) { log("cannot open", e); ws = null; scheduleReconnect(); return; }
    ws = sock;
    sock.onopen = safe(function () {
      if (ws !== sock) return;
      state = "open";
      attempt = 0;
      for (var i = 0; i < queue.length; i++) queue[i].sentAt = 0; // re-send whatever was unacked
      emit("status", "open");
      pump();
      if (!recWanted && recommendationSlots().length) recWanted = {};
      sendRecommend();
    });
    sock.onmessage = safe(function (ev) { if (ws === sock) onMessage(ev.data); });
    sock.onerror = safe(function () { /* onclose follows */ });
    sock.onclose = safe(function () {
      if (ws !== sock) return;
      ws = null;
      state = "closed";
      emit("status", "closed");
      scheduleReconnect();
    });
  }
  function scheduleReconnect() {
    if (reconnectTimer) return;
    var delay = Math.min(30000, 1000 * Math.pow(2, Math.min(attempt, 5)));
    delay = Math.round(delay * (0.5 + Math.random() * 0.5));
    attempt++;
    stats.reconnects++;
    reconnectTimer = setTimeout(safe(function () { reconnectTimer = null; connect(); }), delay);
  }
  function reconnectNow() {
    if (ws) return;
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    attempt = 0;
    connect();
  }

  function takeToken() {
    var now = Date.now();
    tokens = Math.min(RATE, tokens + (now - lastRefill) / 1000 * RATE);
    lastRefill = now;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  }
  function rawSend(s) {
    try { ws.send(s); return true; } catch (e) { log("send failed", e); return false; }
  }
  /** Sends queued events that are unsent (or unanswered for a while), within the rate. */
  function pump() {
    if (!ws || state !== "open" || ws.readyState !== 1) return;
    var now = Date.now();
    var waiting = false;
    for (var i = 0; i < queue.length; i++) {
      var q = queue[i];
      if (q.sentAt && now - q.sentAt < RESEND_AFTER_MS) continue;
      if (!takeToken()) { waiting = true; break; }
      if (!rawSend(q.msg)) return;
      q.sentAt = now;
      stats.sent++;
    }
    var again = waiting ? 1000 / RATE + 5 : (queue.length ? RESEND_AFTER_MS : 0);
    if (!again) return;
    if (pumpTimer && !waiting) return;
    clearTimeout(pumpTimer);
    pumpTimer = setTimeout(safe(function () { pumpTimer = null; pump(); sendRecommend(); }), again);
  }

  function onMessage(data) {
    if (typeof data !== "string") return;
    var m;
    try { m = JSON.parse(data); } catch (e) { return; }
    if (!m || typeof m !== "object") return;
    switch (m.type) {
      case "ack":
        if (settle(m.messageId)) stats.acked++;
        emit("ack", m.messageId);
        break;
      case "actions":
        if (settle(m.messageId)) stats.acked++;
        handleActions(m.actions, "reply");
        break;
      case "push":
        stats.pushes++;
        handleActions(m.actions, "push");
        break;
      case "recommendations":
        renderRecommendations(Array.isArray(m.items) ? m.items : [], typeof m.reason === "string" ? m.reason : "");
        emit("recommendations", m);
        break;
      case "error":
        stats.errors++;
        lastError = { code: String(m.code || ""), detail: String(m.detail || "") };
        // Retry later: overload. Drop: the server will never accept this message.
        if (m.code === "rate_limited" || m.code === "unavailable") { tokens = 0; break; }
        if (m.messageId) settle(m.messageId);
        log("server refused a message:", m.code, m.detail);
        emit("error", lastError);
        break;
      default:
        break;
    }
  }

  // ---- listeners -----------------------------------------------------------------
  var listeners = {};
  function emit(name, arg) {
    var l = listeners[name];
    if (!l) return;
    for (var i = 0; i < l.length; i++) {
      try { l[i](arg); } catch (e) { log("listener threw", e); }
    }
  }

  // ---- nudges panel -----------------------------------------------------------------
  var STYLE =
    ".sp-panel{position:fixed;right:16px;bottom:16px;z-index:2147483000;max-width:320px;" +
    "font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1d2330}" +
    ".sp-nudge{position:relative;background:#fff;border:1px solid #d8dce6;border-left:4px solid #2f6fed;" +
    "border-radius:8px;box-shadow:0 4px 16px rgba(0,0,0,.12);padding:10px 34px 10px 12px;margin-top:8px}" +
    ".sp-nudge-offer{display:block;margin-top:4px;font-size:12px;color:#556}" +
    ".sp-close{position:absolute;top:4px;right:6px;border:0;background:transparent;font-size:18px;" +
    "line-height:1;cursor:pointer;color:#667;padding:4px}" +
    ".sp-close:focus{outline:2px solid #2f6fed}" +
    ".sp-recs{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:8px}" +
    ".sp-rec{border:1px solid #d8dce6;border-radius:6px;padding:8px 10px;cursor:pointer;background:#fff}" +
    ".sp-rec-name{display:block;font-weight:600}.sp-rec-cat{display:block;font-size:12px;color:#667}";
  var styleAdded = false;
  function addStyle() {
    if (styleAdded || cfg.styles === false) return;
    styleAdded = true;
    var s = doc.createElement("style");
    s.setAttribute("data-storepulse-style", "");
    s.textContent = STYLE; // static text, no data
    (doc.head || doc.documentElement).appendChild(s);
  }
  var panel = null;
  function getPanel() {
    if (panel && panel.isConnected !== false) return panel;
    if (!doc.body) return null;
    addStyle();
    panel = doc.createElement("div");
    panel.className = "sp-panel";
    panel.id = "storepulse-panel";
    panel.setAttribute("role", "status");
    panel.setAttribute("aria-live", "polite");
    doc.body.appendChild(panel);
    return panel;
  }
  var shownActions = {};
  function showNudge(a) {
    if (cfg.panel === false) return;
    var p = getPanel();
    if (!p) return;
    var text = typeof a.text === "string" ? a.text : "";
    if (!text) return;
    var key = String(a.rule || "") + "\u0000" + text;
    if (shownActions[key] && shownActions[key].isConnected) return; // same nudge already visible
    var box = doc.createElement("div");
    box.className = "sp-nudge";
    box.setAttribute("data-rule", String(a.rule || ""));
    var t = doc.createElement("span");
    t.className = "sp-nudge-text";
    t.textContent = text;
    box.appendChild(t);
    if (a.offer && typeof a.offer === "object" && a.offer.code) {
      var o = doc.createElement("span");
      o.className = "sp-nudge-offer";
      o.textContent = "Code: " + String(a.offer.code);
      box.appendChild(o);
    }
    var x = doc.createElement("button");
    x.type = "button";
    x.className = "sp-close";
    x.setAttribute("aria-label", "Dismiss");
    x.textContent = "\u00d7";
    x.addEventListener("click", safe(function () {
      if (box.parentNode) box.parentNode.removeChild(box);
      emit("dismiss", a);
    }));
    box.appendChild(x);
    p.appendChild(box);
    shownActions[key] = box;
    while (p.childNodes.length > 3) p.removeChild(p.firstChild);
  }
  function handleActions(actions, how) {
    if (!Array.isArray(actions)) return;
    for (var i = 0; i < actions.length; i++) {
      var a = actions[i];
      if (!a || typeof a !== "object") continue;
      if (a.channel && a.channel !== "web") continue;
      stats.actions++;
      emit("action", { action: a, via: how });
      whenBody(function (act) { return function () { showNudge(act); }; }(a));
    }
  }

  // ---- recommendations -------------------------------------------------------------
  function recommendationSlots() {
    try { return doc.querySelectorAll('[data-storepulse="recommendations"]'); } catch (e) { return []; }
  }
  function sendRecommend() {
    if (!recWanted || !ws || state !== "open") return;
    if (!takeToken()) {
      clearTimeout(pumpTimer);
      pumpTimer = setTimeout(safe(function () { pumpTimer = null; pump(); sendRecommend(); }), 1000 / RATE + 5);
      return;
    }
    var slots = recommendationSlots();
    var limit = recWanted.limit;
    var productId = recWanted.productId;
    if (slots.length) {
      if (!limit) limit = clampInt(slots[0].getAttribute("data-limit"), 1, 50, 0);
      if (!productId) productId = slots[0].getAttribute("data-product-id") || undefined;
    }
    var req = { type: "recommend", limit: limit || clampInt(cfg.recommendLimit, 1, 50, 4) };
    if (userId) req.userId = userId; else req.anonymousId = visitorId;
    if (productId) req.context = { productId: String(productId) };
    recWanted = null;
    rawSend(JSON.stringify(req));
  }
  function renderRecommendations(items, reason) {
    var slots = recommendationSlots();
    for (var s = 0; s < slots.length; s++) {
      var slot = slots[s];
      var max = clampInt(slot.getAttribute("data-limit"), 1, 50, items.length);
      var list = doc.createElement("ul");
      list.className = "sp-recs";
      for (var i = 0; i < items.length && i < max; i++) {
        var it = items[i];
        if (!it || typeof it !== "object") continue;
        var li = doc.createElement("li");
        li.className = "sp-rec";
        li.setAttribute("data-product-id", String(it.productId || ""));
        li.tabIndex = 0;
        var n = doc.createElement("span");
        n.className = "sp-rec-name";
        n.textContent = String(it.name || it.productId || "");
        li.appendChild(n);
        if (it.category) {
          var c = doc.createElement("span");
          c.className = "sp-rec-cat";
          c.textContent = String(it.category);
          li.appendChild(c);
        }
        li.addEventListener("click", function (item) {
          return safe(function () {
            emit("recommendationClick", item);
            try {
              doc.dispatchEvent(new CustomEvent("storepulse:recommendation", { detail: { productId: String(item.productId || "") } }));
            } catch (e) { /* old browser */ }
          });
        }(it));
        list.appendChild(li);
      }
      while (slot.firstChild) slot.removeChild(slot.firstChild);
      slot.appendChild(list);
      slot.setAttribute("data-storepulse-reason", reason);
      slot.setAttribute("data-storepulse-count", String(list.childNodes.length));
    }
    if (slots.length) addStyle();
  }

  function whenBody(fn) {
    if (doc.body) return fn();
    doc.addEventListener("DOMContentLoaded", safe(fn));
  }

  // ---- event builders ------------------------------------------------------------------
  function baseContext() {
    var ctx = { channel: "web" };
    try {
      var m = /[?&]utm_campaign=([^&#]+)/.exec(win.location.search);
      if (m) ctx.campaign = { name: decodeURIComponent(m[1].replace(/\+/g, " ")).slice(0, 128) };
      var tz = win.Intl && Intl.DateTimeFormat().resolvedOptions().timeZone;
      if (tz) ctx.timezone = tz;
    } catch (e) { /* ignore */ }
    return ctx;
  }
  function ids(obj) {
    obj.anonymousId = visitorId;
    if (userId) obj.userId = userId;
    return obj;
  }
  function plainObject(v) {
    return v && typeof v === "object" && !Array.isArray(v) ? v : {};
  }
  /** Copies props without functions/DOM nodes (JSON-safe); cyclic values are dropped. */
  function clean(v) {
    try { return JSON.parse(JSON.stringify(plainObject(v))); } catch (e) { return {}; }
  }

  var api = {
    __storepulse: true,
    version: "1.0.0",
    /** track(name, properties) — a Segment track event (e.g. "Product Added"). */
    track: safe(function (name, props) {
      if (typeof name !== "string" || !name) return null;
      return enqueue(ids({ type: "track", event: name, properties: clean(props), context: baseContext() }));
    }),
    /** identify(userId, traits) — the member / card id and traits; remembered in storage. */
    identify: safe(function (uid, traits) {
      if (uid !== undefined && uid !== null) {
        uid = String(uid);
        if (!validId(uid)) return null;
        userId = uid;
        idSet("uid", uid);
      }
      if (!userId) return null;
      var id = enqueue(ids({ type: "identify", traits: clean(traits), context: baseContext() }));
      if (recommendationSlots().length) api.recommend();
      return id;
    }),
    /** page(name?, properties?) — a page view; url, path, title and referrer are filled in. */
    page: safe(function (name, props) {
      if (name && typeof name === "object") { props = name; name = undefined; }
      var p = clean(props);
      try {
        if (!p.url) p.url = win.location.href;
        if (!p.path) p.path = win.location.pathname;
        if (!p.title && doc.title) p.title = doc.title;
        if (!p.referrer && doc.referrer) p.referrer = doc.referrer;
      } catch (e) { /* ignore */ }
      if (typeof name === "string" && name) p.name = name;
      return enqueue(ids({ type: "page", properties: p, context: baseContext() }));
    }),
    /** alias(userId, previousId?) — links this visitor (or previousId) to a member id. */
    alias: safe(function (uid, previousId) {
      uid = String(uid === undefined || uid === null ? "" : uid);
      if (!validId(uid)) return null;
      var prev = previousId ? String(previousId) : visitorId;
      if (!validId(prev) || prev === uid) return null;
      userId = uid;
      idSet("uid", uid);
      return enqueue({ type: "alias", previousId: prev, userId: uid, context: baseContext() });
    }),
    /** recommend({limit, productId}) — asks for recommendations; they render into the marked elements. */
    recommend: safe(function (opts) {
      opts = plainObject(opts);
      recWanted = { limit: clampInt(opts.limit, 1, 50, 0), productId: opts.productId ? String(opts.productId) : undefined };
      sendRecommend();
    }),
    /** on(name, fn) — "action", "recommendations", "ack", "error", "status", "dismiss", "recommendationClick". */
    on: safe(function (name, fn) {
      if (typeof fn !== "function") return;
      (listeners[name] = listeners[name] || []).push(fn);
    }),
    /** reset() — log out: forget the user id and start a new visitor id. */
    reset: safe(function () {
      userId = null;
      idDel("uid");
      visitorId = randomId("v-");
      idSet("vid", visitorId);
      if (ws) { try { ws.close(); } catch (e) { /* ignore */ } } // new socket: pushes for the new id only
    }),
    anonymousId: function () { return visitorId; },
    userId: function () { return userId; },
    status: function () { return ws && state === "open" ? "open" : (ws ? "connecting" : "offline"); },
    stats: function () {
      var s = {};
      for (var k in stats) if (Object.prototype.hasOwnProperty.call(stats, k)) s[k] = stats[k];
      s.queued = queue.length;
      s.lastError = lastError;
      return s;
    }
  };

  win.storepulse = api;

  // Replay calls queued before the script loaded: window.storepulse = [["track", …], …].
  if (Array.isArray(existing)) {
    for (var i = 0; i < existing.length; i++) {
      var call = existing[i];
      if (Array.isArray(call) && typeof api[call[0]] === "function" && call[0] !== "__storepulse")
        api[call[0]].apply(null, call.slice(1));
    }
  }

  safe(function () {
    if (win.addEventListener) {
      win.addEventListener("online", safe(reconnectNow));
      doc.addEventListener("visibilitychange", safe(function () { if (!doc.hidden) reconnectNow(); }));
    }
    if (cfg.autoPage !== false) api.page();
    connect();
  })();
})(typeof window !== "undefined" ? window : null, typeof document !== "undefined" ? document : null);
