// The console page's logic: one WebSocket to the feed (protocol in
// docs/feed.md) for depth, trades and the account's own orders, and fetch()
// to ingest's REST API (docs/ingest.md; cross-origin, so it needs ingest's
// CORS) for new orders and cancels. Plain browser JavaScript, no build step.
//
// Prices stay decimal strings from end to end, as everywhere in orderpipe:
// they are compared and subtracted as scaled BigInts, never as floats.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  // How many rows each list keeps: enough to watch, bounded so that a
  // busy symbol or account cannot grow the page without end.
  const TRADES_MAX = 50;
  const ORDERS_MAX = 500;
  const BOOK_LEVELS_SHOWN = 15;
  // Reconnect backoff: starts small (a feed restart is over in a moment),
  // doubles to a cap that still feels live.
  const RETRY_MIN_MS = 250;
  const RETRY_MAX_MS = 5000;
  // After a gap, how many of the orders shown before it are read back over
  // REST (GET /v1/orders/{id}), so that they do not vanish from the table.
  const GAP_REFRESH_MAX = 100;
  const FINAL = new Set(['FILLED', 'CANCELLED', 'REJECTED']);

  const st = {
    config: null,        // /config.json: {ingest_url, symbols}
    symbol: null,        // the symbol shown
    key: '',             // the API key entered (memory only, never stored)
    account: null,       // the account the feed authenticated the key as
    ws: null,
    retryMs: RETRY_MIN_MS,
    retryTimer: null,
    subs: new Set(),     // subscriptions asked for on this connection: "orders", "book:AAPL", …
    book: null,          // {symbol, seq, bids: Map, asks: Map} once a snapshot came
    trades: [],          // newest first
    tradeIds: new Set(), // fill_ids shown (a guard: resume promises no duplicate)
    tradesPos: null,     // pos of the last trades message of st.symbol
    orders: new Map(),   // order_id → row state, insertion order = oldest first
    ordersPos: null,     // pos of the last orders message handled
  };

  // ---- decimals -------------------------------------------------------------

  // The decimal string s as a BigInt in units of 10^-scale.
  function scaled(s, scale) {
    const [i, f = ''] = String(s).split('.');
    return BigInt(i + f.padEnd(scale, '0').slice(0, scale));
  }

  function decScale(...xs) {
    return Math.max(...xs.map((s) => (String(s).split('.')[1] || '').length));
  }

  function cmpDec(a, b) {
    const k = decScale(a, b);
    const x = scaled(a, k), y = scaled(b, k);
    return x < y ? -1 : x > y ? 1 : 0;
  }

  function subDec(a, b) {
    const k = decScale(a, b);
    let v = scaled(a, k) - scaled(b, k);
    const neg = v < 0n;
    if (neg) v = -v;
    let t = v.toString().padStart(k + 1, '0');
    if (k) t = t.slice(0, -k) + '.' + t.slice(-k);
    return (neg ? '-' : '') + t;
  }

  // ---- small helpers ------------------------------------------------------------

  // "2026-12-06T21:00:00.123456789Z" → "21:00:00.123" (no Date: it keeps ms only).
  function clock(ts) {
    return typeof ts === 'string' && ts.length >= 23 ? ts.slice(11, 23) : '';
  }

  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === 'class') e.className = v;
      else if (k.startsWith('data-')) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  // A line in the footer log (the last few), and the console for the rest.
  function log(text, level = 'info') {
    const line = el('div', { class: level }, `${new Date().toLocaleTimeString()} ${text}`);
    const box = $('log');
    box.prepend(line);
    while (box.children.length > 6) box.lastChild.remove();
    (level === 'error' ? console.warn : console.log)(`[console] ${text}`);
  }

  function setStatus(state, text) {
    const s = $('ws-status');
    s.dataset.state = state;
    s.textContent = text;
  }

  // ---- the WebSocket ----------------------------------------------------------

  function wsUrl() {
    return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
  }

  function send(msg) {
    if (st.ws && st.ws.readyState === WebSocket.OPEN) st.ws.send(JSON.stringify(msg));
  }

  function subscribe(channel, symbol, from) {
    const id = symbol ? `${channel}:${symbol}` : channel;
    if (st.subs.has(id)) return;
    st.subs.add(id);
    const msg = { op: 'subscribe', channel };
    if (symbol) msg.symbol = symbol;
    if (from) msg.from = from;
    send(msg);
  }

  function unsubscribe(channel, symbol) {
    const id = symbol ? `${channel}:${symbol}` : channel;
    if (!st.subs.delete(id)) return;
    const msg = { op: 'unsubscribe', channel };
    if (symbol) msg.symbol = symbol;
    send(msg);
  }

  function connect() {
    clearTimeout(st.retryTimer);
    st.retryTimer = null;
    st.subs.clear();
    st.book = null;
    renderBook();
    setStatus('connecting', 'connecting…');
    const ws = new WebSocket(wsUrl());
    st.ws = ws;
    ws.onopen = () => {
      if (ws !== st.ws) return;
      st.retryMs = RETRY_MIN_MS;
      setStatus('open', 'live');
      // Public channels need no auth; trades resume where they were left.
      if (st.symbol) {
        subscribe('book', st.symbol);
        subscribe('trades', st.symbol, st.tradesPos);
      }
      if (st.key) send({ op: 'auth', key: st.key });
    };
    ws.onmessage = (ev) => {
      if (ws !== st.ws) return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (e) {
        log(`feed sent a frame that is not JSON: ${String(ev.data).slice(0, 80)}`, 'error');
        return;
      }
      handle(msg);
    };
    ws.onclose = (ev) => {
      if (ws !== st.ws) return; // replaced on purpose (a new key)
      st.ws = null;
      setOrdersLive(false);
      if (ev.code === 1008) {
        // a wrong API key: drop it, keep the public channels going
        log(`the feed refused the API key (${ev.reason || 'policy violation'})`, 'error');
        $('answer').textContent = 'The feed refused this API key.';
        forgetKey(false);
        connect();
        return;
      }
      const why = ev.code === 4001 ? 'slow consumer' : `code ${ev.code}`;
      setStatus('closed', `disconnected (${why}): retrying in ${(st.retryMs / 1000).toFixed(1)} s`);
      st.retryTimer = setTimeout(connect, st.retryMs);
      st.retryMs = Math.min(st.retryMs * 2, RETRY_MAX_MS);
    };
  }

  // Starts a fresh connection now (a new key, or none any more).
  function reconnect() {
    const old = st.ws;
    st.ws = null;
    if (old) old.close(1000, 'reconnect');
    connect();
  }

  // ---- messages from the feed ---------------------------------------------------

  function handle(msg) {
    switch (msg.type) {
      case 'authed':
        st.account = msg.account;
        $('account').textContent = msg.account;
        $('order-fields').disabled = false;
        $('forget-key').hidden = false;
        subscribe('orders', null, st.ordersPos);
        break;
      case 'subscribed':
        if (msg.channel === 'orders') {
          if (!st.ordersPos) st.ordersPos = msg.pos;
          setOrdersLive(true);
        } else if (msg.channel === 'trades' && msg.symbol === st.symbol && !st.tradesPos) {
          st.tradesPos = msg.pos;
        }
        break;
      case 'unsubscribed':
        break;
      case 'orders':
        for (const r of msg.reports || []) applyReport(r);
        st.ordersPos = msg.pos;
        renderOrders();
        break;
      case 'trades':
        if (msg.symbol !== st.symbol) return; // one still in flight from the last symbol
        for (const t of msg.trades || []) addTrade(t);
        st.tradesPos = msg.pos;
        renderTrades();
        break;
      case 'book':
        onBook(msg);
        break;
      case 'error':
        onError(msg);
        break;
      default:
        log(`unknown message type '${msg.type}'`, 'error');
    }
  }

  function onError(msg) {
    const what = `${msg.code}${msg.channel ? ` on ${msg.channel}` : ''}${msg.symbol ? ` ${msg.symbol}` : ''}`;
    const resumable = msg.code === 'gap' || msg.code === 'bad_position';
    if (msg.channel === 'orders' && resumable) {
      // The streams no longer hold what followed our position: start over
      // live, and read the orders we were showing back over REST.
      log(`${what}: the orders missed meanwhile are read back over REST`, 'error');
      const known = [...st.orders.keys()].reverse().slice(0, GAP_REFRESH_MAX);
      st.orders.clear();
      st.ordersPos = null;
      st.subs.delete('orders');
      $('orders-note').textContent = 'Missed reports after a disconnection: orders shown as recorded (REST), then live.';
      renderOrders();
      subscribe('orders');
      refreshOrders(known);
      return;
    }
    if (msg.channel === 'trades' && resumable) {
      log(`${what}: trades start again from now`, 'error');
      st.trades = [];
      st.tradeIds.clear();
      st.tradesPos = null;
      st.subs.delete(`trades:${msg.symbol}`);
      renderTrades();
      if (msg.symbol === st.symbol) subscribe('trades', st.symbol);
      return;
    }
    if (msg.code === 'already_subscribed') return; // harmless
    log(`feed error ${what}: ${msg.message || ''}`, 'error');
  }

  // ---- book -------------------------------------------------------------------------

  function onBook(msg) {
    if (msg.symbol !== st.symbol) return;
    if (msg.kind === 'snapshot') {
      st.book = { symbol: msg.symbol, seq: msg.seq, ts: msg.ts, bids: new Map(), asks: new Map() };
      applyLevels(st.book.bids, msg.bids);
      applyLevels(st.book.asks, msg.asks);
    } else if (msg.kind === 'update') {
      if (!st.book) return; // waiting for the snapshot of a new subscription
      if (msg.seq !== st.book.seq + 1) {
        // A missed update: the levels may be wrong; a new subscription
        // starts with a fresh snapshot.
        log(`book ${msg.symbol}: seq ${msg.seq} after ${st.book.seq}, resubscribing`, 'error');
        st.book = null;
        unsubscribe('book', msg.symbol);
        subscribe('book', msg.symbol);
        renderBook();
        return;
      }
      st.book.seq = msg.seq;
      st.book.ts = msg.ts;
      applyLevels(st.book.bids, msg.bids);
      applyLevels(st.book.asks, msg.asks);
    }
    renderBook();
  }

  // [price, qty, count] levels; qty 0 removes one.
  function applyLevels(side, levels) {
    for (const [price, qty, count] of levels || []) {
      if (qty > 0) side.set(price, [qty, count]);
      else side.delete(price);
    }
  }

  function renderBook() {
    const asks = $('asks'), bids = $('bids');
    const b = st.book;
    $('book-meta').textContent = b ? `${b.symbol} · seq ${b.seq}${b.ts ? ` · ${clock(b.ts)}` : ''}` : 'waiting for a snapshot…';
    if (!b) {
      asks.replaceChildren();
      bids.replaceChildren();
      $('spread-cell').textContent = '—';
      return;
    }
    const a = [...b.asks.entries()].sort((x, y) => cmpDec(x[0], y[0])).slice(0, BOOK_LEVELS_SHOWN);
    const d = [...b.bids.entries()].sort((x, y) => cmpDec(y[0], x[0])).slice(0, BOOK_LEVELS_SHOWN);
    const most = Math.max(1, ...a.map((l) => l[1][0]), ...d.map((l) => l[1][0]));
    const row = (side, [price, [qty, count]]) => {
      const tr = el('tr', { class: side, 'data-price': price, title: 'use this price' },
        el('td', {}, price), el('td', {}, qty), el('td', {}, count));
      tr.style.setProperty('--depth', `${Math.round((100 * qty) / most)}%`);
      tr.addEventListener('click', () => { $('price').value = price; $('type').value = 'limit'; syncForm(); });
      return tr;
    };
    asks.replaceChildren(...a.reverse().map((l) => row('ask', l)));
    bids.replaceChildren(...d.map((l) => row('bid', l)));
    $('spread-cell').textContent = a.length && d.length
      ? `spread ${subDec(a[a.length - 1][0], d[0][0])}`
      : (a.length || d.length ? 'one side empty' : 'empty book');
  }

  // ---- trades -----------------------------------------------------------------------

  function addTrade(t) {
    if (st.tradeIds.has(t.fill_id)) return;
    st.tradeIds.add(t.fill_id);
    st.trades.unshift(t);
    while (st.trades.length > TRADES_MAX) st.tradeIds.delete(st.trades.pop().fill_id);
  }

  function renderTrades() {
    $('trades').replaceChildren(...st.trades.map((t) =>
      el('tr', { class: t.taker_side, 'data-fill-id': t.fill_id },
        el('td', {}, clock(t.ts)), el('td', {}, t.price), el('td', {}, t.qty), el('td', {}, t.taker_side))));
  }

  // ---- orders -----------------------------------------------------------------------

  function describe(r) {
    const why = r.reason ? ` (${r.reason})` : '';
    switch (r.kind) {
      case 'trade': return `trade ${r.trade_qty} @ ${r.trade_price} (${r.liquidity})`;
      case 'cancelled': return `cancelled${why}`;
      case 'rejected': return `${r.request && r.request !== 'new' ? `${r.request} ` : ''}rejected${why}`;
      case 'amended': return `amended: qty ${r.qty}${why}`;
      case 'replaced': return `replaced: ${r.qty} @ ${r.price}`;
      default: return r.kind + why;
    }
  }

  function applyReport(r) {
    if (!r.order_id || r.order_id === '0') {
      // cancel_all_done, dead_man: about the account, not one order
      if (r.kind === 'cancel_all_done') log(`cancel-all ${r.symbol || 'every symbol'}: ${r.count ?? 0} cancelled${r.reason ? ` (${r.reason})` : ''}`);
      else if (r.kind === 'dead_man') log(r.timeout_ms ? `dead-man switch armed: ${r.timeout_ms} ms` : 'dead-man switch disarmed');
      return;
    }
    let o = st.orders.get(r.order_id);
    if (!o) {
      o = { order_id: r.order_id };
      st.orders.set(r.order_id, o);
    }
    // A rejected cancel or amend leaves the order as it was (schemas/messages.md).
    const changes = !(r.kind === 'rejected' && r.request && r.request !== 'new');
    for (const f of ['symbol', 'side', 'type', 'tif', 'price', 'stop_price']) if (r[f] !== undefined && (changes || !o[f])) o[f] = r[f];
    if (changes) for (const f of ['qty', 'filled_qty', 'status']) if (r[f] !== undefined) o[f] = r[f];
    o.last = `${clock(r.ts)} ${describe(r)}`;
    trimOrders();
  }

  // Keeps at most ORDERS_MAX rows: the oldest closed ones go first.
  function trimOrders() {
    if (st.orders.size <= ORDERS_MAX) return;
    for (const [id, o] of st.orders) {
      if (st.orders.size <= ORDERS_MAX) return;
      if (FINAL.has(o.status)) st.orders.delete(id);
    }
  }

  function renderOrders() {
    const rows = [...st.orders.values()].reverse().map((o) => {
      // a cancel button while the order can still be cancelled
      const open = o.status && !FINAL.has(o.status);
      const cancel = open ? el('button', { type: 'button', class: 'cancel', title: 'cancel this order' }, '×') : '';
      if (open) cancel.addEventListener('click', () => cancelOrder(o));
      return el('tr', { class: `${o.side || ''} ${String(o.status || '').toLowerCase()}`, 'data-order-id': o.order_id },
        el('td', { class: 'id' }, o.order_id), el('td', {}, o.symbol || ''), el('td', {}, o.side || ''),
        el('td', {}, o.price || (o.type === 'market' ? 'market' : '')), el('td', {}, o.qty ?? ''),
        el('td', {}, o.filled_qty ?? ''), el('td', { class: 'status' }, o.status || ''),
        el('td', { class: 'last' }, o.last || ''), el('td', {}, cancel));
    });
    $('orders').replaceChildren(...rows);
  }

  function setOrdersLive(live) {
    $('account-panel').dataset.orders = live ? 'live' : 'off';
    $('account').textContent = st.account ? `${st.account}${live ? ' · live' : ' · reconnecting…'}` : '';
  }

  // ---- REST (ingest) ----------------------------------------------------------------

  // fetch() to ingest with the key; resolves {status, body} (body parsed
  // when JSON), or rejects with a readable message.
  async function ingest(method, path, body) {
    if (!st.config || !st.config.ingest_url) throw new Error('the feed named no ingest_url in /config.json');
    const headers = { Authorization: `Bearer ${st.key}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await fetch(st.config.ingest_url.replace(/\/$/, '') + path,
        { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new Error(`cannot reach ingest at ${st.config.ingest_url} (down, or this page's origin ${location.origin} is not in its INGEST_CORS_ORIGINS)`);
    }
    const text = await res.text();
    let parsed = text;
    try { parsed = JSON.parse(text); } catch (e) { /* not JSON: shown as is */ }
    return { status: res.status, body: parsed };
  }

  function errorText(status, body) {
    const e = body && body.error;
    return e ? `${status} ${e.code}: ${e.message}${e.field ? ` (${e.field})` : ''}` : `${status} ${typeof body === 'string' ? body : JSON.stringify(body)}`;
  }

  function syncForm() {
    const market = $('type').value === 'market';
    $('price').disabled = market;
    $('price').required = !market;
    $('tif').disabled = market; // a market order is IOC
  }

  async function submitOrder(ev) {
    ev.preventDefault();
    const out = $('answer');
    const qty = $('qty').value.trim(), price = $('price').value.trim();
    if (!/^[1-9][0-9]*$/.test(qty)) { out.dataset.result = 'error'; out.textContent = 'qty must be a whole number ≥ 1'; return; }
    const order = { symbol: st.symbol, side: $('side').value, type: $('type').value, qty: Number(qty) };
    if (order.type === 'limit') {
      if (!/^[0-9]+(\.[0-9]+)?$/.test(price)) { out.dataset.result = 'error'; out.textContent = 'a limit order needs a price such as 187.25'; return; }
      order.price = price; // a decimal string: never through a float
      order.tif = $('tif').value;
    }
    out.dataset.result = 'pending';
    out.textContent = `sending ${order.side} ${order.qty} ${order.symbol}${order.price ? ` @ ${order.price}` : ' at market'}…`;
    $('submit').disabled = true;
    try {
      const { status, body } = await ingest('POST', '/v1/orders', order);
      if ((status === 202 || status === 200) && body && body.order_id) {
        out.dataset.result = 'ok';
        out.dataset.orderId = body.order_id;
        out.textContent = `${status} ${body.status}: order ${body.order_id}${body.duplicate ? ' (duplicate)' : ''}`;
        if (!st.orders.has(body.order_id)) { // the feed may well have told us first
          st.orders.set(body.order_id, { ...order, qty: order.qty, filled_qty: 0, order_id: body.order_id, status: 'QUEUED', last: 'queued at ingest' });
          trimOrders();
          renderOrders();
        }
      } else {
        out.dataset.result = 'error';
        out.textContent = errorText(status, body);
      }
    } catch (e) {
      out.dataset.result = 'error';
      out.textContent = e.message;
    } finally {
      $('submit').disabled = false;
    }
  }

  async function cancelOrder(o) {
    const out = $('answer');
    try {
      const { status, body } = await ingest('DELETE', `/v1/orders/${encodeURIComponent(o.order_id)}?symbol=${encodeURIComponent(o.symbol)}`);
      out.dataset.result = status === 202 ? 'ok' : 'error';
      out.textContent = status === 202 ? `202 ${body.status}: order ${o.order_id}` : errorText(status, body);
    } catch (e) {
      out.dataset.result = 'error';
      out.textContent = e.message;
    }
  }

  // After a gap: the recorded state of the orders that were shown, unless a
  // live report has brought them back meanwhile (that one is newer).
  async function refreshOrders(ids) {
    for (const id of ids) {
      try {
        const { status, body } = await ingest('GET', `/v1/orders/${encodeURIComponent(id)}`);
        if (status !== 200 || st.orders.has(id)) continue;
        st.orders.set(id, {
          order_id: id, symbol: body.symbol, side: body.side, type: body.type, tif: body.tif,
          price: body.price == null ? undefined : String(body.price), qty: body.qty,
          filled_qty: body.filled_qty, status: body.status, last: `${clock(body.updated_at)} recorded state (REST)`,
        });
      } catch (e) {
        log(e.message, 'error');
        return;
      }
    }
    renderOrders();
  }

  // ---- the key and the symbol --------------------------------------------------

  function useKey(ev) {
    ev.preventDefault();
    const key = $('api-key').value.trim();
    if (!key) return;
    const wasAuthed = Boolean(st.account);
    forgetKey(false);
    st.key = key;
    $('api-key').value = '';
    $('answer').textContent = '';
    // One account per connection: a new key on an authenticated one gets a
    // new connection; otherwise auth goes on the current one.
    if (wasAuthed || !st.ws || st.ws.readyState !== WebSocket.OPEN) reconnect();
    else send({ op: 'auth', key });
  }

  // Drops the key, the account and its orders; reconnects without them if asked.
  function forgetKey(andReconnect) {
    st.key = '';
    st.account = null;
    st.orders.clear();
    st.ordersPos = null;
    $('order-fields').disabled = true;
    $('forget-key').hidden = true;
    $('orders-note').textContent = '';
    setOrdersLive(false);
    renderOrders();
    if (andReconnect) reconnect();
  }

  function chooseSymbol(sym) {
    if (sym === st.symbol) return;
    const old = st.symbol;
    st.symbol = sym;
    history.replaceState(null, '', `#${sym}`);
    $('order-symbol').textContent = sym;
    st.book = null;
    st.trades = [];
    st.tradeIds.clear();
    st.tradesPos = null;
    renderBook();
    renderTrades();
    if (old) {
      unsubscribe('book', old);
      unsubscribe('trades', old);
    }
    subscribe('book', sym);
    subscribe('trades', sym);
  }

  // ---- start --------------------------------------------------------------------

  async function loadConfig() {
    for (let wait = 500; ; wait = Math.min(wait * 2, RETRY_MAX_MS)) {
      try {
        const res = await fetch('/config.json', { cache: 'no-store' });
        if (res.ok) return await res.json();
        log(`/config.json answered ${res.status}`, 'error');
      } catch (e) {
        log(`cannot load /config.json: ${e.message}`, 'error');
      }
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  async function start() {
    st.config = await loadConfig();
    const symbols = st.config.symbols || [];
    const select = $('symbol');
    select.replaceChildren(...symbols.map((s) => el('option', { value: s }, s)));
    select.disabled = symbols.length === 0;
    const wanted = decodeURIComponent(location.hash.slice(1));
    st.symbol = symbols.includes(wanted) ? wanted : symbols[0] || null;
    select.value = st.symbol || '';
    $('order-symbol').textContent = st.symbol || '';
    select.addEventListener('change', () => chooseSymbol(select.value));
    $('key-form').addEventListener('submit', useKey);
    $('forget-key').addEventListener('click', () => forgetKey(true));
    $('order-form').addEventListener('submit', submitOrder);
    $('type').addEventListener('change', syncForm);
    syncForm();
    setOrdersLive(false);
    connect();
  }

  start();
})();
