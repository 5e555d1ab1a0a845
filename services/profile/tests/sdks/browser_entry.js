// analytics.js (@segment/analytics-next) as one local file for the browser test: no CDN.
import { AnalyticsBrowser } from '@segment/analytics-next'

window.AnalyticsBrowser = AnalyticsBrowser
