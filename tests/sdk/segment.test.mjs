// @segment/analytics-node, unmodified, pointed at StorePulse (its `host`):
// identify + track("Order Completed", Segment's spec example) + page + alias,
// then the profile must show the order and the merged identity, exactly as
// through /v1/web. A wrong write key must surface as an SDK error, not as a
// silent success. Run by tests/integration/segment_sdk_test.cpp:
//   node segment.test.mjs --port P --write-key K --token ADMIN
import { Analytics } from '@segment/analytics-node'
import assert from 'node:assert/strict'

const arg = (name) => {
  const i = process.argv.indexOf(`--${name}`)
  if (i < 0 || i + 1 >= process.argv.length) throw new Error(`--${name} is required`)
  return process.argv[i + 1]
}
const port = arg('port')
const host = `http://127.0.0.1:${port}`
const run = `${process.pid}-${Date.now()}`
const member = `SEG-${run}`
const visitor = `anon-${run}`

const analytics = new Analytics({ writeKey: arg('write-key'), host, flushInterval: 200, maxRetries: 2 })
const errors = []
analytics.on('error', (e) => errors.push(e))
analytics.identify({
  userId: member,
  traits: { firstName: 'Ann', email: `ann-${run}@example.com`, birthday: new Date(Date.UTC(1990, 10, 26)) },
})
// Segment's Order Completed example (snake_case spec names; the total is what
// was paid, 27.50 against 19.00 of lines: kept as stated).
analytics.track({
  userId: member,
  event: 'Order Completed',
  properties: {
    checkout_id: 'fksdjfsdjfisjf9sdfjsd9f',
    order_id: '50314b8e9bcf000000000000',
    affiliation: 'Google Store',
    total: 27.5,
    subtotal: 22.5,
    revenue: 25.0,
    shipping: 3,
    tax: 2,
    discount: 2.5,
    coupon: 'hasbros',
    currency: 'USD',
    products: [
      { product_id: '507f1f77bcf86cd799439011', sku: '45790-32', name: 'Monopoly: 3rd Edition',
        price: 19, quantity: 1, category: 'Games', url: 'https://www.example.com/product/path' },
    ],
  },
})
analytics.page({ userId: member, name: 'Home', properties: { url: 'https://shop.example/' } })
analytics.alias({ userId: member, previousId: visitor })
await analytics.closeAndFlush({ timeout: 20000 })
assert.deepEqual(errors, [], `SDK errors: ${JSON.stringify(errors.map(String))}`)

// Alias links across shards: give the merge a moment.
let profile
for (let i = 0; i < 50; i++) {
  const res = await fetch(`${host}/v1/profiles/${member}`, { headers: { authorization: `Bearer ${arg('token')}` } })
  assert.equal(res.status, 200)
  profile = await res.json()
  if (profile.merges?.some((m) => m.id === visitor && m.absorbed)) break
  await new Promise((r) => setTimeout(r, 100))
}
assert.equal(profile.rfm.frequency, 1, JSON.stringify(profile))
assert.equal(profile.rfm.monetary, 27.5)
assert.equal(profile.traits.birthday, '1990-11-26')
assert.equal(profile.traits.firstName, 'Ann')
assert.equal(profile.channels.web, 1)
assert.ok(profile.categories.Games > 0)
assert.ok(profile.merges.some((m) => m.id === visitor && m.via === 'alias'), JSON.stringify(profile.merges))
const kinds = profile.recentEvents.map((e) => e.type).sort()
assert.deepEqual(kinds, ['alias', 'identify', 'page', 'track'])

// A write key the server does not know: the SDK reports the failure.
const wrong = new Analytics({ writeKey: 'not-a-configured-key', host, flushInterval: 100, maxRetries: 0 })
const wrongErrors = []
wrong.on('error', (e) => wrongErrors.push(e))
wrong.track({ userId: member, event: 'Card Swiped' })
await wrong.closeAndFlush({ timeout: 10000 })
assert.equal(wrongErrors.length, 1, 'a rejected write key must not look like a success')
// A write key may not read profiles.
const peek = await fetch(`${host}/v1/profiles/${member}`, {
  headers: { authorization: `Basic ${Buffer.from(`${arg('write-key')}:`).toString('base64')}` },
})
assert.equal(peek.status, 401)
console.log(`segment sdk: ok (${member})`)
