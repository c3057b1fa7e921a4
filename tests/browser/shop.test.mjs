// Browser test of the website widget, demo shop and dashboard in Debian's
// headless Chromium, driven by playwright-core (no browser download).
//
//   node tests/browser/shop.test.mjs --port P --token ADMIN [--pos-key KEY]
//        [--out DIR] [--chromium /usr/bin/chromium] [--rule abandoned-cart-test]
//
// Needs a running storepulse (normally started by tests/integration/browser_test.cpp)
// serving web/ and a rule that pushes a `web` nudge a few seconds after
// `Product Added`. Exit code 0 = every check passed. Screenshots go to --out.
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1] && !all[i + 1].startsWith("--") ? all[i + 1] : "1"]);
    return acc;
  }, []));
const PORT = Number(args.port);
const TOKEN = args.token;
const POS_KEY = args["pos-key"] || "";
const OUT = path.resolve(args.out || "browser-out");
const CHROMIUM = args.chromium || "/usr/bin/chromium";
const RULE = args.rule || "abandoned-cart-test";
if (!PORT || !TOKEN) {
  console.error("usage: shop.test.mjs --port P --token ADMIN_TOKEN [--pos-key K] [--out DIR]");
  process.exit(2);
}
const BASE = `http://127.0.0.1:${PORT}`;
fs.mkdirSync(OUT, { recursive: true });

const t0 = Date.now();
let step = "start";
let passed = 0;
function log(...a) { console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s]`, ...a); }
function check(cond, what, detail) {
  if (!cond) throw new Error(`check failed: ${what}${detail !== undefined ? ` — ${typeof detail === "string" ? detail : JSON.stringify(detail)}` : ""}`);
  passed++;
  log("ok  ", what);
}
async function until(what, fn, timeoutMs = 10000, everyMs = 100) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
async function admin(pathname) {
  const r = await fetch(BASE + pathname, { headers: { Authorization: `Bearer ${TOKEN}` } });
  const body = await r.text();
  return { status: r.status, json: r.headers.get("content-type")?.includes("json") && body ? JSON.parse(body) : null, body };
}
const profile = async (id) => (await admin(`/v1/profiles/${encodeURIComponent(id)}`));
const watchdog = setTimeout(() => { console.error(`FAIL: whole test over 150 s (step: ${step})`); process.exit(1); }, 150000);

let browser;
try {
  // ---- 0. seed store purchases so recommendations have something popular ----
  step = "seed purchases";
  if (POS_KEY) {
    const products = [
      { productId: "socks-5", name: "Wool socks", category: "Accessories", brand: "Lofoten", price: 9, quantity: 2 },
      { productId: "scarf-6", name: "Merino scarf", category: "Accessories", brand: "Lofoten", price: 29, quantity: 1 },
      { productId: "sneak-2", name: "Canvas sneakers", category: "Shoes", brand: "Fjord", price: 45, quantity: 1 },
      { productId: "knit-4", name: "Wool sweater", category: "Knitwear", brand: "Lofoten", price: 69, quantity: 1 },
    ];
    const batch = [];
    for (let c = 0; c < 16; c++) {
      const bought = products.filter((_, i) => (c + i) % 3 !== 0);
      batch.push({ type: "track", event: "Order Completed", messageId: `seed-${t0}-${c}`, userId: `SEED${c}`,
                   context: { channel: "pos", storeId: "S1" },
                   properties: { orderId: `seed-o-${t0}-${c}`, currency: "EUR", products: bought } });
    }
    const r = await fetch(`${BASE}/v1/events`, { method: "POST", body: JSON.stringify(batch),
      headers: { Authorization: `Bearer ${POS_KEY}`, "Content-Type": "application/json" } });
    const res = await r.json();
    check(r.status === 200 && res.accepted === batch.length, "seeded store orders accepted (POST /v1/events)", res);
  }
  const statsBefore = (await admin("/v1/admin/stats")).json;
  check(statsBefore && typeof statsBefore.events === "object", "GET /v1/admin/stats answers with the admin token");
  check((await fetch(`${BASE}/v1/admin/stats`)).status === 401, "GET /v1/admin/stats without token is 401");

  // ---- 1. browser ----
  step = "launch chromium";
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
  const pageErrors = [];
  const newPage = async (ctx, label) => {
    const p = await ctx.newPage();
    p.on("pageerror", (e) => pageErrors.push(`${label}: ${e.message}`));
    p.on("console", (m) => { if (m.type() === "error" && !/WebSocket|ERR_CONNECTION|Failed to load resource/.test(m.text())) pageErrors.push(`${label} console: ${m.text()}`); });
    return p;
  };
  const ctxA = await browser.newContext({ viewport: { width: 1280, height: 1220 } });
  const shop = await newPage(ctxA, "shop");

  // A second visitor whose cart top product carries HTML: the nudge must show it as text.
  step = "hostile visitor";
  const ctxB = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const evil = await newPage(ctxB, "evil");
  await evil.goto(`${BASE}/demo/shop`);
  await until("evil page widget open", () => evil.evaluate(() => window.storepulse.status() === "open"));
  await evil.evaluate(() => window.storepulse.track("Product Added", {
    productId: "evil-1", name: '<img src=x onerror="window.__xss=1"><b>Evil</b>', category: "Shoes", price: 30, quantity: 1 }));

  // ---- 2. demo shop: visitor id, page, views, adds ----
  step = "load shop";
  await shop.goto(`${BASE}/demo/shop`);
  await until("widget connected", () => shop.evaluate(() => window.storepulse && window.storepulse.status() === "open"));
  const vid = await shop.evaluate(() => window.storepulse.anonymousId());
  check(/^v-[0-9a-f-]{16,}$/.test(vid), "visitor id created", vid);
  check(await shop.evaluate((v) => localStorage.getItem("storepulse.vid") === v, vid), "visitor id kept in localStorage");
  const body = await (await fetch(`${BASE}/widget.js`)).text();
  check(!/innerHTML|outerHTML|insertAdjacentHTML|document\.write/.test(body.replace(/\/\*[\s\S]*?\*\//g, "")), "widget.js never writes HTML (no innerHTML)");

  step = "view and add products";
  await shop.click('[data-product="boots-1"] button.view');
  await shop.click('[data-product="knit-4"] button.view');
  await shop.selectOption('[data-product="boots-1"] select.size', "39");
  await shop.click('[data-product="boots-1"] button.add');
  await shop.click('[data-product="socks-5"] button.add');
  await shop.click("#cart-toggle");
  check((await shop.textContent("#cart-count")) === "2", "cart shows 2 items");
  await until("all events acked", () => shop.evaluate(() => window.storepulse.stats().queued === 0));
  const st = await shop.evaluate(() => window.storepulse.stats());
  check(st.acked >= 6 && st.errors === 0, "page, promotion, 2 views, 2 adds, cart view acked without errors", st);

  step = "profile has the events";
  const p1 = await until("profile of the visitor", async () => { const r = await profile(vid); return r.status === 200 && r.json; });
  check(p1.webViews >= 2, "profile counts the product views", { webViews: p1.webViews });
  const cartIds = (p1.cart?.items || []).map((i) => i.productId).sort();
  check(JSON.stringify(cartIds) === JSON.stringify(["boots-1", "socks-5"]), "profile cart holds the added products", p1.cart);
  check(Math.abs(p1.cart.value - 68) < 0.001, "profile cart value is 59 + 9", p1.cart.value);

  // ---- 3. abandoned-cart nudge pushed to the open page ----
  step = "abandoned-cart nudge";
  const nudgeSel = `#storepulse-panel .sp-nudge[data-rule="${RULE}"]`;
  await shop.waitForSelector(nudgeSel, { timeout: 20000 });
  const nudgeText = await shop.textContent(`${nudgeSel} .sp-nudge-text`);
  check(/Rain boots/.test(nudgeText), "abandoned-cart nudge appears with the cart's top product", nudgeText);
  const rules = (await admin("/v1/rules")).json;
  const rule = rules.find((r) => r.rule === RULE);
  check(rule && rule.counters.fired >= 1 && rule.counters.timers_armed >= 2, "rule counters show armed timers and a firing", rule?.counters);
  const p2 = (await profile(vid)).json;
  check((p2.contacts || []).some((c) => c.rule === RULE && c.channel === "web"), "profile contact log records the web nudge", p2.contacts);

  step = "hostile nudge escaped";
  await evil.waitForSelector(nudgeSel, { timeout: 20000 });
  const evilText = await evil.textContent(`${nudgeSel} .sp-nudge-text`);
  check(evilText.includes("<img src=x") && evilText.includes("<b>Evil</b>"), "HTML in a product name is shown as text in the nudge", evilText);
  check(await evil.evaluate(() => !document.querySelector("#storepulse-panel img, #storepulse-panel b") && window.__xss === undefined),
        "no element or script injected from rule/profile text");

  // ---- 4. log in with member card: alias + identify, recommendations ----
  step = "member login";
  await shop.click("#login-open");
  await shop.fill("#card-number", "C1001");
  await shop.fill("#first-name", "Ana");
  await shop.check("#sms-optin");
  await shop.click("#login-submit");
  check((await shop.textContent("#member")).includes("Ana"), "shop shows the member as logged in");
  await until("login events acked", () => shop.evaluate(() => window.storepulse.stats().queued === 0));
  check(await shop.evaluate(() => window.storepulse.userId() === "C1001" && localStorage.getItem("storepulse.uid") === "C1001"),
        "member id kept by the widget");
  const pm = await until("member profile", async () => { const r = await profile("C1001"); return r.status === 200 && r.json; });
  check(pm.traits?.firstName === "Ana" && pm.consent?.sms === true, "identify traits and SMS consent reach the member profile", { traits: pm.traits, consent: pm.consent });
  check((pm.linkedIds || []).includes(vid) || (pm.cart?.items || []).length === 2, "alias links the visitor to the member", { linkedIds: pm.linkedIds });

  step = "recommendations render";
  const recSel = '[data-storepulse="recommendations"] li.sp-rec';
  await shop.waitForSelector(recSel, { timeout: 10000 });
  const recs = await shop.$$eval(recSel, (els) => els.map((e) => ({ id: e.getAttribute("data-product-id"), name: e.querySelector(".sp-rec-name")?.textContent })));
  check(recs.length >= 1 && recs.length <= 4, "recommendations rendered into [data-storepulse=recommendations]", recs);
  check(recs.every((r) => r.name && r.id), "each recommendation has a product id and name", recs);
  await shop.screenshot({ path: path.join(OUT, "shop.png") });
  log("screenshot", path.join(OUT, "shop.png"));

  step = "dismiss nudge";
  await shop.click(`${nudgeSel} .sp-close`);
  check(await shop.$(nudgeSel) === null, "the nudge can be dismissed");

  // ---- 5. offline: events queue while the server is unreachable and flush afterwards ----
  step = "offline queue";
  let down = true;
  const ctxC = await browser.newContext();
  await ctxC.routeWebSocket(/\/v1\/web/, (ws) => {
    if (down) { ws.close({ code: 1011, reason: "test: server down" }); return; }
    ws.connectToServer();
  });
  const off = await newPage(ctxC, "offline");
  await off.goto(`${BASE}/demo/shop`);
  await off.click('[data-product="parka-7"] button.view');
  await off.click('[data-product="parka-7"] button.add');
  const offVid = await off.evaluate(() => window.storepulse.anonymousId());
  const q1 = await off.evaluate(() => window.storepulse.stats().queued);
  check(q1 >= 3 && (await off.evaluate(() => window.storepulse.status())) !== "open", "events queue while the server is down, page keeps working", { queued: q1 });
  await off.reload();
  check(await off.evaluate((v) => window.storepulse.anonymousId() === v, offVid), "visitor id survives a reload");
  const q2 = await off.evaluate(() => window.storepulse.stats().queued);
  check(q2 >= q1, "queued events survive a reload (persisted)", { before: q1, after: q2 });
  down = false;
  await until("queue flushed after reconnect", () => off.evaluate(() => window.storepulse.status() === "open" && window.storepulse.stats().queued === 0), 20000);
  const po = await until("offline visitor profile", async () => { const r = await profile(offVid); return r.status === 200 && r.json; });
  check((po.cart?.items || []).some((i) => i.productId === "parka-7"), "events tracked offline arrived after reconnect", po.cart);
  await ctxC.close();

  step = "bounded queue, bad calls";
  const ctxD = await browser.newContext();
  await ctxD.routeWebSocket(/\/v1\/web/, (ws) => ws.close({ code: 1011, reason: "test: always down" }));
  const dead = await newPage(ctxD, "dead");
  await dead.goto(`${BASE}/demo/shop`);
  const bounded = await dead.evaluate(() => {
    for (let i = 0; i < 260; i++) window.storepulse.track("Product Viewed", { productId: "p" + i });
    return window.storepulse.stats();
  });
  check(bounded.queued === 200 && bounded.dropped >= 60, "offline queue is bounded (oldest dropped)", bounded);
  const threw = await dead.evaluate(() => {
    const cyc = {}; cyc.self = cyc;
    try {
      window.storepulse.track(null);
      window.storepulse.track("Product Viewed", cyc);
      window.storepulse.identify({ not: "an id" });
      window.storepulse.alias("");
      window.storepulse.recommend("nonsense");
      window.storepulse.on("action", () => { throw new Error("host listener bug"); });
      return false;
    } catch (e) { return String(e); }
  });
  check(threw === false, "bad calls never throw into the host page", threw);
  await ctxD.close();

  // ---- 6. dashboard ----
  step = "dashboard";
  const dash = await newPage(ctxA, "dashboard");
  await dash.goto(`${BASE}/dashboard`);
  const dashHtml = await (await fetch(`${BASE}/dashboard`)).text();
  check(!dashHtml.includes(TOKEN) && !(await (await fetch(`${BASE}/static/dashboard/dashboard.js`)).text()).includes(TOKEN), "no token embedded in the dashboard");
  await dash.fill("#token", "wrong-token-xxxxxxxx");
  await dash.click("#connect");
  await until("wrong token refused", async () => (await dash.textContent("#conn")).includes("token refused"));
  check(true, "dashboard reports a refused token");
  await dash.fill("#token", TOKEN);
  await dash.click("#connect");
  await until("dashboard refreshed", () => dash.evaluate(() => Number(document.body.getAttribute("data-refreshes") || 0) >= 1));
  check(await dash.evaluate((t) => sessionStorage.getItem("storepulse.adminToken") === t, TOKEN), "token kept in sessionStorage");
  const num = async (sel) => Number(((await dash.textContent(sel)) || "").replace(/[^0-9.]/g, "")) || 0;
  const before = await num("#events-total");
  check(before > 0, "dashboard shows event totals", before);
  const firedCell = `#rules tr[data-rule="${RULE}"] td.fired`;
  check((await num(firedCell)) >= 2, "dashboard shows the rule's fired counter", await dash.textContent(firedCell));
  // Traffic while the operator watches: the counters and the web rate must move.
  await shop.bringToFront();
  for (const id of ["sneak-2", "jacket-3", "scarf-6", "boots-1", "knit-4", "socks-5"]) {
    await shop.click(`[data-product="${id}"] button.view`);
    await shop.waitForTimeout(150);
  }
  await until("traffic acked", () => shop.evaluate(() => window.storepulse.stats().queued === 0));
  await dash.bringToFront();
  await until("events total moves", async () => (await num("#events-total")) >= before + 6, 10000);
  check(true, "dashboard events total moves with traffic");
  await until("web rate above 0", async () => (await num("#rate-web")) > 0, 10000);
  check(true, "dashboard shows a web events/s rate from deltas");
  check(await dash.$$eval("#queues .qbar", (b) => b.length) >= 1, "queue depth per shard shown");
  check(await dash.$$eval("#errors tbody tr", (r) => r.length) >= 5, "errors by code listed");
  const smsState = await dash.textContent("#sms-gateway");
  check(/gateway/.test(smsState) && (await dash.$$eval("#sms tbody tr", (r) => r.length)) >= 1,
        "SMS outbox panel shows the gateway state and its messages (or that there are none)", smsState);
  const lat = await dash.textContent("#latency");
  check(/µs|ms/.test(lat), "ack latency p50/p99 shown", lat);
  await dash.fill("#profile-id", "C1001");
  await dash.click("#lookup-go");
  await dash.waitForSelector("#profile-summary dl", { timeout: 5000 });
  const summary = await dash.textContent("#profile-summary");
  check(summary.includes("Ana") && summary.includes(vid) && summary.includes("Rain boots"),
        "profile lookup shows the member, the linked visitor and the cart", summary.slice(0, 300));
  check((await dash.$$eval("#profile-recent tr", (r) => r.length)) >= 2,
        "profile lookup lists the member's recent events", summary.slice(summary.indexOf("Recent events"), 300));
  await dash.fill("#profile-id", "nobody-here");
  await dash.click("#lookup-go");
  await until("404 shown", async () => (await dash.textContent("#profile-summary")).includes("No profile"));
  check(true, "profile lookup reports an unknown id");
  await dash.fill("#profile-id", "C1001");
  await dash.click("#lookup-go");
  await dash.waitForSelector("#profile-summary dl", { timeout: 5000 });
  // A few refreshes so the sparklines have points to draw, with a trickle of traffic.
  const ids = ["boots-1", "knit-4", "scarf-6", "sneak-2"];
  let n = 0;
  const trickle = setInterval(() => { shop.evaluate((id) => window.storepulse.track("Product Viewed", { productId: id }), ids[n++ % ids.length]).catch(() => {}); }, 250);
  await until("sparklines", () => dash.evaluate((r) =>
    Number(document.body.getAttribute("data-refreshes")) >= 4 &&
    !!document.querySelector(`#rules tr[data-rule="${r}"] td.spark svg path.line`) &&
    !!document.querySelector("#spark-total svg path.line"), RULE), 15000);
  check(true, "rule and traffic sparklines drawn (inline SVG)");
  await until("rate shown with live traffic", async () => (await num("#rate-total")) > 0, 6000);
  clearInterval(trickle);
  await dash.screenshot({ path: path.join(OUT, "dashboard.png"), fullPage: true });
  log("screenshot", path.join(OUT, "dashboard.png"));

  step = "page errors";
  check(pageErrors.length === 0, "no JavaScript errors in any page", pageErrors);
  await browser.close();
  clearTimeout(watchdog);
  log(`PASS: ${passed} checks in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  process.exit(0);
} catch (e) {
  console.error(`FAIL at step "${step}": ${e && e.stack ? e.stack : e}`);
  try {
    if (browser) {
      for (const ctx of browser.contexts())
        for (const [i, p] of ctx.pages().entries())
          await p.screenshot({ path: path.join(OUT, `failure-${step.replace(/\W+/g, "-")}-${i}.png`), fullPage: true }).catch(() => {});
      await browser.close();
    }
  } catch { /* ignore */ }
  process.exit(1);
}
