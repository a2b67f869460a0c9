// The headless Chromium of the browser tests (Debian's `chromium`, driven by playwright-core): started
// one way, and a page that records its console errors and every request it makes.
import {type Browser, chromium, type Page} from 'playwright-core'
import {requireTool} from './static-hosts.js'

/** Debian's Chromium, headless; a missing one fails the test (CI installs it). */
export async function launchChromium(): Promise<Browser> {
  return chromium.launch({executablePath: requireTool('chromium'), args: ['--no-sandbox']})
}

/** A page of its own context (clipboard allowed for `origin`) that records console errors and every request URL. */
export async function openPage(browser: Browser, origin: string, options: {javaScript?: boolean} = {}): Promise<{page: Page; errors: string[]; requests: string[]; close(): Promise<void>}> {
  const context = await browser.newContext({javaScriptEnabled: options.javaScript ?? true, viewport: {width: 1000, height: 800}})
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], {origin})
  const page = await context.newPage()
  const errors: string[] = []
  const requests: string[] = []
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text())
  })
  page.on('pageerror', (error) => errors.push(error.message))
  page.on('request', (request) => requests.push(request.url()))
  return {page, errors, requests, close: () => context.close()}
}
