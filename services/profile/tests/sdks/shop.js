// What the shop's page does with analytics.js, evaluated by the browser test: settings
// inline (no CDN fetch), events sent to profile's origin; returns how each call went.
// `batching`: one POST to /v1/b per few events instead of one per event.
async ({ profile, writeKey, email, prefix, batching }) => {
  const segment = {
    apiKey: writeKey,
    apiHost: profile.replace('http://', '') + '/v1',
    protocol: 'http',
    ...(batching ? { deliveryStrategy: { strategy: 'batching', config: { size: 10, timeout: 300 } } } : {}),
  }
  const [analytics] = await window.AnalyticsBrowser.load({
    writeKey,
    cdnSettings: { integrations: { 'Segment.io': segment } },
  })
  const sent = []
  const keep = (ctx) => {
    const failed = ctx.failedDelivery()
    sent.push([ctx.event.type, failed ? String(failed.reason) : null])
  }
  keep(await analytics.page('Shop', 'Spring sale'))
  keep(
    await analytics.identify(`${prefix}-1`, {
      email,
      firstName: 'Hedy',
      lastName: 'Lamarr',
      plan: 'pro',
      seats: 2,
    }),
  )
  keep(
    await analytics.track('Order Completed', {
      order_id: `${prefix}-o-1`,
      revenue: 120,
      products: [{ product_id: 'sku-web', name: 'Grinder', price: 120 }],
    }),
  )
  keep(await analytics.group(`${prefix}-acme`, { name: `Acme (${prefix})`, industry: 'retail' }))
  keep(await analytics.alias(`${prefix}-1`, `${prefix}-legacy`))
  // sendBeacon: text/plain, the write key in the body only.
  const beacon = navigator.sendBeacon(
    profile + '/v1/t',
    JSON.stringify({ writeKey, userId: `${prefix}-1`, event: 'Beacon Sent', messageId: `${prefix}-b` }),
  )
  return { sent, beacon }
}
