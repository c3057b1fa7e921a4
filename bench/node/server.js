// Peer 3, "we'd write it in Node": a `ws` server that does the storepulse profile
// update and three default rules' conditions with json-rules-engine, replying
// ack / actions with the event's messageId like storepulse does.
//
//   node bench/node/server.js [--port N]   -> "listening on http://127.0.0.1:PORT"
//
// In its favour: profiles only in memory (no journal, no durability before
// the reply), no de-duplication, no guardrails beyond a yearly cooldown.
'use strict';
const { WebSocketServer } = require('ws');
const { Engine } = require('json-rules-engine');

const portArg = process.argv.indexOf('--port');
const port = portArg > 0 ? Number(process.argv[portArg + 1]) : 0;

const engine = new Engine([], { allowUndefinedFacts: true });
engine.addRule({
  name: 'birthday-greeting',
  conditions: { all: [
    { fact: 'channel', operator: 'equal', value: 'pos' },
    { fact: 'event', operator: 'in', value: ['Card Swiped', 'Order Completed'] },
    { fact: 'birthdayToday', operator: 'equal', value: true },
    { fact: 'birthdayCooldownOver', operator: 'equal', value: true },
  ] },
  event: { type: 'birthday-greeting' },
  priority: 90,
});
engine.addRule({
  name: 'cross-sell',
  conditions: { all: [
    { fact: 'channel', operator: 'equal', value: 'pos' },
    { fact: 'event', operator: 'equal', value: 'Card Swiped' },
    { fact: 'womenswearSpend', operator: 'greaterThanInclusive', value: 4000 },
    { fact: 'daysSinceCosmetics', operator: 'greaterThan', value: 60 },
  ] },
  event: { type: 'cross-sell' },
  priority: 40,
});
engine.addRule({
  name: 'points-milestone',
  conditions: { all: [
    { fact: 'channel', operator: 'equal', value: 'pos' },
    { fact: 'event', operator: 'equal', value: 'Order Completed' },
    { fact: 'points', operator: 'greaterThanInclusive', value: 500 },
    { fact: 'passedMilestone', operator: 'equal', value: true },
  ] },
  event: { type: 'points-milestone' },
  priority: 70,
});

const profiles = new Map();
const cents = (x) => Math.round((Number(x) || 0) * 100);
const days = (iso) => Math.floor(Date.parse(iso.slice(0, 10) + 'T00:00:00Z') / 86400000);

function update(ev) {
  const key = ev.userId || ev.anonymousId || 'unknown';
  let p = profiles.get(key);
  if (!p) {
    p = { events: 0, channels: {}, orders: 0, monetary: 0, lastOrder: '', points: 0, cat: {}, catLast: {},
          traits: {}, birthdayFired: '' };
    profiles.set(key, p);
  }
  const ctx = ev.context || {};
  const props = ev.properties || {};
  const channel = ctx.channel || 'pos';
  const ts = ev.timestamp || new Date().toISOString();
  p.events++;
  p.channels[channel] = (p.channels[channel] || 0) + 1;
  if (ev.type === 'identify' && ev.traits) Object.assign(p.traits, ev.traits);
  let total = 0;
  if (ev.event === 'Order Completed') {
    let sum = 0;
    for (const pr of props.products || []) {
      const line = cents(pr.price) * (Number(pr.quantity) || 1);
      sum += line;
      if (pr.category) {
        p.cat[pr.category] = (p.cat[pr.category] || 0) + line;
        p.catLast[pr.category] = ts;
      }
    }
    total = props.total !== undefined ? cents(props.total) : sum - cents(props.discount);
    p.orders++;
    p.monetary += total;
    p.lastOrder = ts;
    p.points += Math.floor(total / 100);
  }
  const bday = p.traits.birthday || '';
  return {
    profile: p,
    ts,
    facts: {
      channel,
      event: ev.event || ev.type,
      birthdayToday: bday !== '' && bday.slice(5, 10) === ts.slice(5, 10),
      birthdayCooldownOver: p.birthdayFired === '' || days(ts) - days(p.birthdayFired) >= 300,
      womenswearSpend: p.cat["Women's Clothing"] || 0,
      daysSinceCosmetics: p.catLast.Cosmetics ? days(ts) - days(p.catLast.Cosmetics) : 1e9,
      points: p.points,
      passedMilestone: p.points % 500 < total / 100,
    },
  };
}

const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });
wss.on('listening', () => console.log(`listening on http://127.0.0.1:${wss.address().port}`));
wss.on('connection', (ws) => {
  ws.on('message', async (data) => {
    let ev;
    try {
      ev = JSON.parse(data);
    } catch (e) {
      ws.send('{"type":"error","messageId":null,"code":"bad_json"}');
      return;
    }
    const { profile, ts, facts } = update(ev);
    const { events } = await engine.run(facts);
    const id = JSON.stringify(ev.messageId || '');
    if (events.length === 0) {
      ws.send(`{"type":"ack","messageId":${id}}`);
      return;
    }
    if (events.some((e) => e.type === 'birthday-greeting')) profile.birthdayFired = ts;
    const actions = events.map((e) => `{"rule":"${e.type}","channel":"pos"}`).join(',');
    ws.send(`{"type":"actions","messageId":${id},"actions":[${actions}]}`);
  });
});
