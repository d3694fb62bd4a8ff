// The console page (feed/console/) in a real headless Chromium, against the
// real feed, ingest, matcher and recorder that tests/integration/
// feed_console.sh starts (issue 16, part 3). Every step waits with a bounded
// poll (Playwright's waitFor), never a fixed sleep.
//
//   CONSOLE_URL=http://127.0.0.1:<feed port>/ INGEST_URL=http://127.0.0.1:<ingest port> \
//   SCREENSHOT=/path/console.png node tests/js/console.mjs
//
// What it checks, through the page only (the DOM a user sees):
//  1. the page loads its config, connects (/ws) and shows the symbol's depth;
//  2. the key dev-key-alice authenticates and subscribes to her orders;
//  3. a sell, then a crossing buy, sent through the order form (a
//     cross-origin POST to ingest: CORS), each answered 202 QUEUED; the
//     sell rests (NEW in the orders table, its level in the depth), then
//     both show FILLED with the trade as maker and taker, the trades list
//     shows the trade and the level leaves the depth;
//  4. a disconnection: while the page cannot reconnect, an order of alice
//     is placed and partly filled by bob over REST; once it can, the page
//     resumes the orders and trades channels from its last positions (the
//     order and the trade appear: a subscription without `from` would never
//     show them) and takes a fresh depth snapshot;
//  5. the order's cancel button (a cross-origin DELETE) cancels it, and a
//     bad price shows ingest's 400 in the page.
// It saves a screenshot to SCREENSHOT, also when a step fails, and exits
// non-zero on the first failure or on any uncaught error in the page.
import { chromium } from 'playwright-core';

const env = process.env;
const CONSOLE_URL = env.CONSOLE_URL;
const INGEST_URL = env.INGEST_URL;
const SCREENSHOT = env.SCREENSHOT;
const KEY = env.CONSOLE_KEY || 'dev-key-alice';
const ACCOUNT = env.CONSOLE_ACCOUNT || 'alice';
const OTHER_KEY = env.CONSOLE_OTHER_KEY || 'dev-key-bob';
const SYMBOL = env.CONSOLE_SYMBOL || 'AAPL';
const PRICE = env.CONSOLE_PRICE || '187.25';
const QTY = env.CONSOLE_QTY || '7';
const LOW_PRICE = env.CONSOLE_LOW_PRICE || '1.00'; // far from PRICE: rests
// Generous: the whole pipeline under ASan on a shared 2-core machine; a
// wait ends as soon as its condition holds.
const WAIT_MS = Number(env.CONSOLE_WAIT_MS || 30000);

if (!CONSOLE_URL || !INGEST_URL || !SCREENSHOT) {
  console.error('usage: CONSOLE_URL=… INGEST_URL=… SCREENSHOT=… node tests/js/console.mjs');
  process.exit(2);
}

let checks = 0;
const pageErrors = [];

function ok(what) {
  checks++;
  console.log(`ok ${checks} - ${what}`);
}

function assertEq(what, got, want) {
  if (got !== want) throw new Error(`${what}: got '${got}', want '${want}'`);
  ok(what);
}

function assertMatch(what, got, re) {
  if (!re.test(got)) throw new Error(`${what}: '${got}' does not match ${re}`);
  ok(what);
}

// Waits until the text of selector matches re (bounded); returns the text.
async function waitText(page, what, selector, re) {
  const loc = page.locator(selector);
  try {
    await page.waitForFunction(
      ([sel, src, flags]) => {
        const e = document.querySelector(sel);
        return e !== null && new RegExp(src, flags).test(e.textContent);
      },
      [selector, re.source, re.flags],
      { timeout: WAIT_MS },
    );
  } catch (e) {
    const now = (await loc.count()) ? await loc.first().textContent() : '(no such element)';
    throw new Error(`${what}: '${selector}' did not match ${re} within ${WAIT_MS} ms (it shows '${now}')`);
  }
  ok(what);
  return loc.first().textContent();
}

async function waitGone(page, what, selector) {
  try {
    await page.locator(selector).first().waitFor({ state: 'detached', timeout: WAIT_MS });
  } catch (e) {
    throw new Error(`${what}: '${selector}' is still there after ${WAIT_MS} ms`);
  }
  ok(what);
}

// The columns of the orders table's row of order id, by header.
async function orderRow(page, id) {
  const cells = await page.locator(`#orders tr[data-order-id="${id}"] td`).allTextContents();
  const [order, symbol, side, price, qty, filled, status, last] = cells;
  return { order, symbol, side, price, qty, filled, status, last };
}

// Sends an order through the page's form; returns the order id of its
// 202 answer (the answer line must say QUEUED).
async function formOrder(page, side, price, qty) {
  await page.selectOption('#side', side);
  await page.selectOption('#type', 'limit');
  await page.selectOption('#tif', 'GTC');
  await page.fill('#price', price);
  await page.fill('#qty', qty);
  const before = await page.locator('#answer').getAttribute('data-order-id');
  await page.click('#submit');
  await page.waitForFunction(
    (prev) => {
      const a = document.querySelector('#answer');
      return a.dataset.result === 'error' || (a.dataset.result === 'ok' && a.dataset.orderId !== prev);
    },
    before,
    { timeout: WAIT_MS },
  );
  const text = await page.locator('#answer').textContent();
  assertMatch(`form ${side} ${qty} @ ${price}: ingest's answer in the page`, text, /^202 QUEUED: order \d+$/);
  return page.locator('#answer').getAttribute('data-order-id');
}

// REST straight to ingest (not through the page): a limit order of key.
async function restOrder(key, side, price, qty) {
  const res = await fetch(`${INGEST_URL}/v1/orders`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ symbol: SYMBOL, side, type: 'limit', price, qty: Number(qty) }),
  });
  const body = await res.json();
  assertEq(`REST ${side} ${qty} @ ${price}: status`, res.status, 202);
  return body.order_id;
}

// Polls GET /v1/orders/{id} until its recorded status is want: the
// recorder has it, so its reports are in the fills stream.
async function waitRecorded(key, id, want) {
  const deadline = Date.now() + WAIT_MS;
  let last = '';
  while (Date.now() < deadline) {
    const res = await fetch(`${INGEST_URL}/v1/orders/${id}`, { headers: { Authorization: `Bearer ${key}` } });
    if (res.status === 200) {
      last = (await res.json()).status;
      if (last === want) {
        ok(`order ${id} recorded as ${want}`);
        return;
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`order ${id}: recorded status '${last}', want '${want}' within ${WAIT_MS} ms`);
}

// Installed before the page's script: a WebSocket that can be held off
// (window.__ws.hold: new connections go to port 9, which Chromium refuses
// to connect to, so they fail as when the feed is unreachable) and closed
// from the test. The page itself is not changed.
function wsHook() {
  const Native = window.WebSocket;
  const hooks = { hold: false, all: [] };
  window.__ws = hooks;
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(hooks.hold ? 'ws://127.0.0.1:9/held' : url, protocols);
      hooks.all.push(this);
    }
  };
}

async function run(page) {
  // 1. load, connect, depth
  await page.goto(CONSOLE_URL);
  await page.locator('#ws-status[data-state="open"]').waitFor({ timeout: WAIT_MS });
  ok('the page connects to the feed');
  await page.locator(`#symbol option[value="${SYMBOL}"]`).waitFor({ state: 'attached', timeout: WAIT_MS });
  await page.selectOption('#symbol', SYMBOL);
  await waitText(page, `a depth snapshot of ${SYMBOL}`, '#book-meta', new RegExp(`^${SYMBOL} · seq \\d+`));

  // 2. the key
  await page.fill('#api-key', KEY);
  await page.click('#connect-key');
  await page.locator('#account-panel[data-orders="live"]').waitFor({ timeout: WAIT_MS });
  assertEq('the key authenticates as its account, orders live', await page.locator('#account').textContent(), `${ACCOUNT} · live`);

  // 3. a crossing pair through the form
  const sell = await formOrder(page, 'sell', PRICE, QTY);
  await waitText(page, 'the sell is accepted (orders channel)', `#orders tr[data-order-id="${sell}"] td.status`, /^NEW$/);
  await waitText(page, 'the sell rests in the depth (book channel)', `#asks tr[data-price="${PRICE}"] td:nth-child(2)`, new RegExp(`^${QTY}$`));
  const buy = await formOrder(page, 'buy', PRICE, QTY);
  if (buy === sell) throw new Error(`the buy got the sell's order id ${sell}`);
  await waitText(page, 'the buy shows FILLED', `#orders tr[data-order-id="${buy}"] td.status`, /^FILLED$/);
  await waitText(page, 'the sell shows FILLED', `#orders tr[data-order-id="${sell}"] td.status`, /^FILLED$/);
  const b = await orderRow(page, buy), s = await orderRow(page, sell);
  assertEq('buy row: side', b.side, 'buy');
  assertEq('buy row: filled', b.filled, QTY);
  assertMatch('buy row: the trade, as taker', b.last, new RegExp(`trade ${QTY} @ ${PRICE.replace('.', '\\.')} \\(taker\\)$`));
  assertEq('sell row: filled', s.filled, QTY);
  assertMatch('sell row: the trade, as maker', s.last, new RegExp(`trade ${QTY} @ ${PRICE.replace('.', '\\.')} \\(maker\\)$`));
  await waitText(page, 'the trade in the trades list (trades channel)', '#trades tr:first-child',
    new RegExp(`${PRICE.replace('.', '\\.')}${QTY}buy$`));
  await waitGone(page, 'the filled level leaves the depth', `#asks tr[data-price="${PRICE}"]`);

  // 4. a disconnection, reports missed meanwhile, resume from the positions
  await page.evaluate(() => {
    window.__ws.hold = true;
    for (const w of window.__ws.all) w.close();
  });
  await page.locator('#ws-status[data-state="closed"]').waitFor({ timeout: WAIT_MS });
  ok('the page sees the disconnection');
  const missed = await restOrder(KEY, 'buy', LOW_PRICE, '3');
  await restOrder(OTHER_KEY, 'sell', LOW_PRICE, '1');
  await waitRecorded(KEY, missed, 'PARTIALLY_FILLED');
  await page.evaluate(() => {
    window.__ws.hold = false;
  });
  await page.locator('#account-panel[data-orders="live"]').waitFor({ timeout: WAIT_MS });
  ok('the page reconnects and resubscribes');
  await waitText(page, 'an order placed while disconnected appears (orders resumed from its pos)',
    `#orders tr[data-order-id="${missed}"] td.status`, /^PARTIALLY_FILLED$/);
  const m = await orderRow(page, missed);
  assertEq('resumed order: filled', m.filled, '1');
  assertMatch('resumed order: its trade as maker', m.last, new RegExp(`trade 1 @ ${LOW_PRICE.replace('.', '\\.')} \\(maker\\)$`));
  await waitText(page, 'a trade made while disconnected appears (trades resumed from its pos)', '#trades tr:first-child',
    new RegExp(`${LOW_PRICE.replace('.', '\\.')}1sell$`));
  assertEq('each trade once in the trades list', await page.locator('#trades tr').count(), 2);
  await waitText(page, 'a fresh depth snapshot shows the rest of the order', `#bids tr[data-price="${LOW_PRICE}"] td:nth-child(2)`, /^2$/);

  // 5. cancel from the page, and an error answer
  await page.click(`#orders tr[data-order-id="${missed}"] button.cancel`);
  await waitText(page, "the cancel's answer in the page", '#answer', new RegExp(`^202 CANCEL_QUEUED: order ${missed}$`));
  await waitText(page, 'the cancelled order shows CANCELLED', `#orders tr[data-order-id="${missed}"] td.status`, /^CANCELLED$/);
  await waitGone(page, 'the cancelled level leaves the depth', `#bids tr[data-price="${LOW_PRICE}"]`);
  await page.fill('#price', '1.001');
  await page.fill('#qty', '1');
  await page.click('#submit');
  await waitText(page, "a bad price shows ingest's 400 (readable cross-origin)", '#answer[data-result="error"]', /^400 invalid_price: /);
  assertEq('every order of the page in the table', await page.locator('#orders tr').count(), 3);
}

const browser = await chromium.launch({
  executablePath: env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox'],
});
let failure = null;
const page = await browser.newPage({ viewport: { width: 1400, height: 820 } });
page.on('pageerror', (e) => pageErrors.push(e.message));
page.on('console', (m) => {
  if (m.type() === 'error' || m.type() === 'warning') console.log(`(browser console, ${m.type()}: ${m.text()})`);
});
await page.addInitScript(wsHook);
try {
  await run(page);
  if (pageErrors.length) throw new Error(`uncaught errors in the page: ${pageErrors.join('; ')}`);
  ok('no uncaught error in the page');
} catch (e) {
  failure = e;
}
try {
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  console.log(`screenshot: ${SCREENSHOT}`);
} catch (e) {
  console.log(`screenshot failed: ${e.message}`);
}
await browser.close();
if (failure) {
  console.log(`FAIL: ${failure.message}`);
  console.log(`console.mjs: ${checks} checks passed, then a failure`);
  process.exit(1);
}
console.log(`console.mjs: ${checks} checks, 0 failed`);
