// Sends one of each call with @segment/analytics-node to profile, then prints what failed.
// Usage: node analytics_node.mjs <profile base URL> <write key> <e-mail>
import { Analytics } from '@segment/analytics-node'

const [host, writeKey, email] = process.argv.slice(2)
const analytics = new Analytics({ writeKey, host, flushAt: 20, flushInterval: 200, maxRetries: 2 })
const failures = []
analytics.on('error', (error) => failures.push(String(error?.reason ?? error?.code ?? error)))

const userId = 'node-user-1'
analytics.track({ userId: 'node-legacy-1', event: 'Legacy Visit' })
analytics.identify({
  userId,
  traits: { email, firstName: 'Node', lastName: 'Lovelace', plan: 'pro', seats: 3 },
})
analytics.track({
  userId,
  event: 'Order Completed',
  properties: {
    order_id: 'node-order-1',
    revenue: 75,
    products: [{ product_id: 'sku-node', name: 'Kettle', price: 75 }],
  },
})
analytics.page({
  userId,
  name: 'Pricing',
  properties: { url: 'https://shop.example/pricing' },
  context: { campaign: { name: 'spring', source: 'newsletter', medium: 'email' } },
})
analytics.group({ userId, groupId: 'node-acme', traits: { name: 'Acme (Node)', employees: 40 } })
analytics.alias({ userId, previousId: 'node-legacy-1' })
await analytics.closeAndFlush({ timeout: 20000 })
console.log(JSON.stringify({ failures }))
