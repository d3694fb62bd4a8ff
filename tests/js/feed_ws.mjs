// The feed's WebSocket protocol (docs/feed.md) checked with a real client
// library (ws) against real services; run by tests/integration/feed_ws.sh.
//
// Environment (set by the harness):
//   FEED_A_URL, FEED_B_URL   two feed instances (http://127.0.0.1:PORT); A is
//                            restarted during the test, B never is: B's
//                            clients are the never-disconnected references
//   INGEST_URL               where orders are submitted (curl, REST)
//   ORDER_SHARDS             shards (default 4)
//
// Orders are submitted over REST with curl. What only the harness can do
// (kill and start a feed, kill -9 a matcher, trim a stream) is asked of it
// on stdout with a line "@ctl <command>"; it answers on stdin "ok <result>"
// or "err <message>".
//
// Every check prints "ok: <name>" or "FAIL: <name>: <what was expected and
// what came>"; the exit status is 1 when one failed. Waits are bounded polls
// with generous limits, never timing thresholds.
import WebSocket from 'ws';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import readline from 'node:readline';

const FEED_A = mustEnv('FEED_A_URL');
const FEED_B = mustEnv('FEED_B_URL');
const INGEST = mustEnv('INGEST_URL');
const SHARDS = Number(process.env.ORDER_SHARDS || 4);
const WAIT_MS = 60000; // generous: the services run under ASan on a shared machine

const ALICE = 'dev-key-alice';
const BOB = 'dev-key-bob';
const CAROL = 'dev-key-carol';
const DAVE = 'dev-key-dave';

function mustEnv(name) {
	const v = process.env[name];
	if (!v) {
		console.log(`FAIL: environment: ${name} is not set (run through tests/integration/feed_ws.sh)`);
		process.exit(1);
	}
	return v;
}

// ---- checks ------------------------------------------------------------------

let nChecks = 0;
let nFails = 0;

function check(name, ok, detail = '') {
	nChecks++;
	if (ok) {
		console.log(`ok: ${name}`);
	} else {
		nFails++;
		console.log(`FAIL: ${name}${detail ? ': ' + detail : ''}`);
	}
	return ok;
}

function eq(name, got, want) {
	const g = JSON.stringify(got);
	const w = JSON.stringify(want);
	return check(name, g === w, `got ${g}, want ${w}`);
}

// Checks that obj has every field of want (deep-equal); names the differences.
function fields(name, obj, want) {
	const bad = [];
	for (const [k, v] of Object.entries(want)) {
		if (v === undefined) {
			if (obj && k in obj) bad.push(`${k}: present (${JSON.stringify(obj[k])}), want absent`);
		} else if (!obj || JSON.stringify(obj[k]) !== JSON.stringify(v)) {
			bad.push(`${k}: got ${JSON.stringify(obj ? obj[k] : undefined)}, want ${JSON.stringify(v)}`);
		}
	}
	return check(name, bad.length === 0, `${bad.join('; ')} (in ${JSON.stringify(obj)})`);
}

// Runs one named part; an exception (a wait that timed out, a REST call that
// failed) is a failure of that part, and the next part still runs.
async function section(name, fn) {
	const t0 = Date.now();
	console.log(`--- ${name}`);
	try {
		await fn();
	} catch (e) {
		check(`${name}: ran to its end`, false, e && e.message ? e.message : String(e));
	}
	console.log(`    (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(cond, what, ms = WAIT_MS) {
	const deadline = Date.now() + ms;
	while (!cond()) {
		if (Date.now() > deadline) throw new Error(`timed out after ${ms / 1000}s waiting for ${what}`);
		await sleep(25);
	}
}

// ---- the harness's control channel ---------------------------------------------

const ctlWaiters = [];
readline.createInterface({ input: process.stdin }).on('line', (line) => {
	const w = ctlWaiters.shift();
	if (w) w(line);
});

async function ctl(cmd) {
	const answer = new Promise((res) => ctlWaiters.push(res));
	process.stdout.write(`@ctl ${cmd}\n`);
	const line = await answer;
	if (!line.startsWith('ok')) throw new Error(`harness command '${cmd}' failed: ${line}`);
	return line.slice(3);
}

// ---- REST with curl ----------------------------------------------------------------

const execFileP = promisify(execFile);

async function rest(method, path, key, body) {
	const args = ['-s', '-S', '-X', method, '-o', '-', '-w', '\n%{http_code}', '--max-time', '30',
		'-H', `Authorization: Bearer ${key}`, '-H', 'Content-Type: application/json'];
	if (body !== undefined) args.push('--data-binary', typeof body === 'string' ? body : JSON.stringify(body));
	args.push(INGEST + path);
	const { stdout } = await execFileP('curl', args, { maxBuffer: 64 << 20 });
	const i = stdout.lastIndexOf('\n');
	return { status: Number(stdout.slice(i + 1)), body: stdout.slice(0, i) };
}

async function restOk(method, path, key, body, want = 202) {
	const r = await rest(method, path, key, body);
	if (r.status !== want) throw new Error(`${method} ${path} ${JSON.stringify(body) || ''}: ${r.status} ${r.body}`);
	return r.body ? JSON.parse(r.body) : null;
}

// Submits one order; returns its order_id.
async function order(key, body) {
	return (await restOk('POST', '/v1/orders', key, body)).order_id;
}

function lim(symbol, side, price, qty, extra = {}) {
	return { symbol, side, type: 'limit', price, qty, ...extra };
}

// ---- streams, shards, positions --------------------------------------------------

function fnv1a32(s) {
	let h = 0x811c9dc5;
	for (const b of Buffer.from(s)) {
		h ^= b;
		h = Math.imul(h, 0x01000193) >>> 0;
	}
	return h >>> 0;
}
const shardOf = (symbol) => fnv1a32(symbol) % SHARDS;

function sid(id) {
	const m = /^(\d+)-(\d+)$/.exec(id);
	if (!m) throw new Error(`not a stream id: '${id}'`);
	return [BigInt(m[1]), BigInt(m[2])];
}
function sidCmp(a, b) {
	const x = sid(a);
	const y = sid(b);
	return x[0] !== y[0] ? (x[0] < y[0] ? -1 : 1) : x[1] !== y[1] ? (x[1] < y[1] ? -1 : 1) : 0;
}

// "0:1-0,3:5-2" -> Map shard -> id; null when it is not a position.
function parsePos(pos) {
	if (typeof pos !== 'string' || !/^\d+:\d+-\d+(,\d+:\d+-\d+)*$/.test(pos)) return null;
	const m = new Map();
	for (const part of pos.split(',')) {
		const [s, id] = part.split(':');
		m.set(Number(s), id);
	}
	return m;
}

// A position listing every shard, in shard order.
function isOrdersPos(pos) {
	const p = parsePos(pos);
	return p !== null && pos.split(',').map((x) => Number(x.split(':')[0])).join() ===
		[...Array(SHARDS).keys()].join();
}

// ---- clients ------------------------------------------------------------------------

const allClients = [];

class Client {
	constructor(base, label) {
		this.label = label;
		this.msgs = []; // {m, text} in arrival order
		this.reports = []; // orders reports: {r, mi, shard} (shard: of its symbol; null for symbol "")
		this.nonJson = [];
		this.closeCode = null;
		this.closeReason = '';
		this.error = null;
		this.ws = new WebSocket(base.replace(/^http/, 'ws') + '/ws', { perMessageDeflate: false });
		this.ws.on('message', (data) => this.onMessage(data.toString()));
		this.ws.on('close', (code, reason) => {
			this.closeCode = code;
			this.closeReason = reason.toString();
		});
		this.ws.on('error', (e) => {
			this.error = e;
		});
		allClients.push(this);
	}

	onMessage(text) {
		let m;
		try {
			m = JSON.parse(text);
		} catch {
			this.nonJson.push(text);
			return;
		}
		const mi = this.msgs.length;
		this.msgs.push({ m, text });
		if (m.type === 'orders' && Array.isArray(m.reports)) {
			for (const r of m.reports) this.reports.push({ r, mi, shard: r.symbol ? shardOf(r.symbol) : null });
		}
	}

	async open() {
		await waitUntil(() => this.ws.readyState !== WebSocket.CONNECTING, `${this.label}: the connection`);
		if (this.ws.readyState !== WebSocket.OPEN) {
			throw new Error(`${this.label}: cannot connect: ${this.error ? this.error.message : 'closed ' + this.closeCode}`);
		}
		return this;
	}

	send(x) {
		this.ws.send(typeof x === 'string' ? x : JSON.stringify(x));
	}

	// The first message from index `from` on for which pred holds.
	async expect(pred, what, from = 0, ms = WAIT_MS) {
		let i = -1;
		await waitUntil(() => {
			for (let k = Math.max(from, 0); k < this.msgs.length; k++) {
				if (pred(this.msgs[k].m)) {
					i = k;
					return true;
				}
			}
			return this.closeCode !== null;
		}, `${this.label}: ${what}`, ms);
		if (i < 0) throw new Error(`${this.label}: closed (${this.closeCode} ${this.closeReason}) while waiting for ${what}`);
		return this.msgs[i].m;
	}

	// Sends x and returns the first message after it that answers it: an
	// error, or a message of one of the types given.
	async request(x, types, what) {
		const from = this.msgs.length;
		this.send(x);
		return this.expect((m) => m.type === 'error' || types.includes(m.type), what || `the answer to ${JSON.stringify(x)}`, from);
	}

	// The first report for which pred holds. An error message or a close
	// meanwhile ends the wait at once, naming it.
	async waitReport(pred, what, ms = WAIT_MS) {
		let hit;
		const errs = this.errors().length;
		await waitUntil(() => (hit = this.reports.find((e) => pred(e.r))) !== undefined ||
			this.errors().length > errs || this.closeCode !== null, `${this.label}: ${what}`, ms);
		if (hit) return hit.r;
		if (this.closeCode !== null) throw new Error(`${this.label}: closed ${this.closeCode} '${this.closeReason}' while waiting for ${what}`);
		throw new Error(`${this.label}: got ${JSON.stringify(this.errors()[errs])} while waiting for ${what}`);
	}

	close() {
		if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
	}

	errors() {
		return this.msgs.filter((x) => x.m.type === 'error').map((x) => x.m);
	}
}

async function connect(base, label) {
	return new Client(base, label).open();
}

async function authed(base, key, label) {
	const c = await connect(base, label);
	const m = await c.request({ op: 'auth', key }, ['authed']);
	if (m.type !== 'authed') throw new Error(`${label}: auth answered ${JSON.stringify(m)}`);
	return c;
}

// Subscribes c to its account's orders (from: a position, or none); returns the answer.
async function subOrders(c, from) {
	const x = { op: 'subscribe', channel: 'orders' };
	if (from !== undefined) x.from = from;
	return c.request(x, ['subscribed'], `the answer to subscribe orders${from !== undefined ? ' from ' + from : ''}`);
}

function lastOrdersPos(c) {
	for (let i = c.msgs.length - 1; i >= 0; i--) if (c.msgs[i].m.type === 'orders') return c.msgs[i].m.pos;
	return null;
}

const key = (e) => `${e.shard}:${e.r.report_id}:${e.r.order_id || ''}:${e.r.liquidity || ''}:${e.r.kind}`;

// Per shard (of the reports' symbols), the reports of list (entries of
// Client.reports) from the accepted report of the order from.get(shard)
// (everything when from is null) up to the accepted report of the order
// upTo.get(shard), both included. Orders, not positions, mark the bounds: a
// message may hold several fills entries (docs/feed.md), so a report's own
// entry is not known, but its shard's order is.
function slice(list, from, upTo) {
	const out = new Map();
	const started = new Set();
	const done = new Set();
	for (const e of list) {
		if (e.shard === null || done.has(e.shard)) continue;
		const isAcc = (m) => m && e.r.kind === 'accepted' && e.r.order_id === m.get(e.shard);
		if (from && !started.has(e.shard)) {
			if (!isAcc(from)) continue;
			started.add(e.shard);
		}
		if (!out.has(e.shard)) out.set(e.shard, []);
		out.get(e.shard).push(e);
		if (isAcc(upTo)) done.add(e.shard);
	}
	return out;
}

// Checks that what `got` received (all its reports, per shard, up to the
// markers) is exactly what the reference received from the orders `from` on
// up to the markers: the same reports, the same order, nothing missing,
// nothing twice, nothing from before.
function sameAsReference(name, got, ref, from, markers) {
	const g = slice(got, null, markers);
	const r = slice(ref, from, markers);
	for (const shard of new Set([...g.keys(), ...r.keys()])) {
		const gl = (g.get(shard) || []).map((e) => JSON.stringify(e.r));
		const rl = (r.get(shard) || []).map((e) => JSON.stringify(e.r));
		const missing = rl.filter((x) => !gl.includes(x));
		const extra = gl.filter((x) => !rl.includes(x));
		const dup = gl.filter((x, i) => gl.indexOf(x) !== i);
		check(`${name}: shard ${shard}: ${rl.length} reports, exactly the reference's (no gap, no duplicate, same order)`,
			JSON.stringify(gl) === JSON.stringify(rl),
			`got ${gl.length}, reference ${rl.length}; missing ${missing.length} ${missing.slice(0, 3).join(' ')}; ` +
			`extra ${extra.length} ${extra.slice(0, 3).join(' ')}; duplicated ${dup.length} ${dup.slice(0, 3).join(' ')}`);
	}
	for (const [shard, id] of markers) {
		check(`${name}: shard ${shard}: the marker order ${id} was delivered`,
			(g.get(shard) || []).some((e) => e.r.kind === 'accepted' && e.r.order_id === id));
	}
}

// ---- the book ------------------------------------------------------------------------

// Applies a book client's messages to a local depth; checks seq +1 on the way.
function localBook(c, symbol) {
	const bids = new Map();
	const asks = new Map();
	let seq = null;
	const problems = [];
	let snapshots = 0;
	for (const { m } of c.msgs) {
		if (m.type !== 'book' || m.symbol !== symbol) continue;
		if (m.kind === 'snapshot') {
			snapshots++;
			if (snapshots > 1) problems.push(`a second snapshot at seq ${m.seq}`);
			bids.clear();
			asks.clear();
		} else if (m.kind === 'update') {
			if (seq === null) problems.push(`an update (seq ${m.seq}) before the snapshot`);
			else if (m.seq !== seq + 1) problems.push(`seq ${m.seq} after ${seq}`);
		} else {
			problems.push(`kind '${m.kind}'`);
		}
		seq = m.seq;
		for (const [side, levels] of [[bids, m.bids], [asks, m.asks]]) {
			for (const [px, qty, count] of levels) {
				if (qty === 0) side.delete(px);
				else side.set(px, [px, qty, count]);
			}
		}
	}
	const sorted = (side, dir) => [...side.values()].sort((a, b) => dir * (Number(a[0]) - Number(b[0])));
	return { bids: sorted(bids, -1), asks: sorted(asks, 1), seq, problems, snapshots };
}

async function restBook(symbol) {
	const b = await restOk('GET', `/v1/book/${symbol}?depth=100`, ALICE, undefined, 200);
	return { bids: b.bids, asks: b.asks };
}

// Waits until c's local depth of symbol equals want() (a function: want may
// be what ingest serves now); checks it, naming the last difference.
async function bookConverges(name, c, symbol, want) {
	let last = null;
	let w = null;
	const deadline = Date.now() + WAIT_MS;
	for (;;) {
		const l = localBook(c, symbol);
		w = await want();
		last = { bids: l.bids, asks: l.asks };
		if (JSON.stringify(last) === JSON.stringify(w) || Date.now() > deadline) break;
		await sleep(100);
	}
	eq(name, last, w);
}

// ================================================================================
// The parts
// ================================================================================

const refs = {}; // account -> reference client on feed B, subscribed to orders from the start
const refStart = {}; // account -> the position its subscription started at

await section('the references: one never-disconnected client per account on feed B', async () => {
	for (const [acct, k] of [['alice', ALICE], ['bob', BOB], ['carol', CAROL], ['dave', DAVE]]) {
		refs[acct] = await authed(FEED_B, k, `ref-${acct}`);
		const m = await subOrders(refs[acct]);
		fields(`reference ${acct}: subscribed to orders`, m, { type: 'subscribed', channel: 'orders' });
		check(`reference ${acct}: the subscribed pos lists every shard`, isOrdersPos(m.pos), `pos ${JSON.stringify(m.pos)}`);
		refStart[acct] = parsePos(m.pos);
	}
});

await section('auth', async () => {
	const a = await connect(FEED_A, 'auth-alice');
	const m = await a.request({ op: 'auth', key: ALICE }, ['authed']);
	eq('auth: dev-key-alice is answered authed as alice', m, { type: 'authed', account: 'alice' });

	const w = await connect(FEED_A, 'auth-wrong');
	w.send({ op: 'auth', key: 'dev-key-mallory' });
	await waitUntil(() => w.closeCode !== null, 'the connection with a wrong key to close');
	eq('auth: a wrong key closes the connection with code 1008', w.closeCode, 1008);
	eq('auth: the close reason of a wrong key', w.closeReason, 'bad api key');
	check('auth: a wrong key is not answered authed', !w.msgs.some((x) => x.m.type === 'authed'),
		JSON.stringify(w.msgs.map((x) => x.m)));

	const u = await connect(FEED_A, 'no-auth');
	const e = await u.request({ op: 'subscribe', channel: 'orders' }, ['subscribed']);
	fields('auth: orders without auth is answered error auth_required', e, { type: 'error', code: 'auth_required', channel: 'orders' });
	const t = await u.request({ op: 'subscribe', channel: 'trades', symbol: 'AAPL' }, ['subscribed']);
	fields('auth: the connection stays open and public channels need no auth', t, { type: 'subscribed', channel: 'trades', symbol: 'AAPL' });
	const a2 = await u.request({ op: 'auth', key: BOB }, ['authed']);
	fields('auth: auth after the refusal', a2, { type: 'authed', account: 'bob' });
	const o = await subOrders(u);
	fields('auth: orders once authed', o, { type: 'subscribed', channel: 'orders' });
	for (const c of [a, w, u]) c.close();
});

await section('errors', async () => {
	const c = await connect(FEED_A, 'errors');
	const cases = [
		['bad JSON', '{"op":"subscribe",', 'bad_request'],
		['not an object', '[1,2]', 'bad_request'],
		['unknown op', { op: 'dance' }, 'bad_request'],
		['missing op', { channel: 'trades', symbol: 'AAPL' }, 'bad_request'],
		['missing channel', { op: 'subscribe', symbol: 'AAPL' }, 'bad_request'],
		['missing symbol', { op: 'subscribe', channel: 'trades' }, 'bad_request'],
		['unknown channel', { op: 'subscribe', channel: 'news', symbol: 'AAPL' }, 'unknown_channel', { channel: 'news' }],
		['unknown symbol (trades)', { op: 'subscribe', channel: 'trades', symbol: 'NOPE' }, 'unknown_symbol', { channel: 'trades', symbol: 'NOPE' }],
		['unknown symbol (book)', { op: 'subscribe', channel: 'book', symbol: 'ZZZZ' }, 'unknown_symbol', { channel: 'book', symbol: 'ZZZZ' }],
		['unsubscribe of nothing', { op: 'unsubscribe', channel: 'trades', symbol: 'MSFT' }, 'not_subscribed', { channel: 'trades', symbol: 'MSFT' }],
	];
	for (const [name, x, code, extra] of cases) {
		const m = await c.request(x, ['subscribed', 'unsubscribed', 'authed']);
		fields(`errors: ${name} is answered error ${code}`, m, { type: 'error', code, ...(extra || {}) });
		check(`errors: ${name}: the error has a message`, typeof m.message === 'string' && m.message.length > 0, JSON.stringify(m));
	}
	check('errors: the connection stayed open through them', c.closeCode === null && c.ws.readyState === WebSocket.OPEN, `closed ${c.closeCode}`);
	const s = await c.request({ op: 'subscribe', channel: 'trades', symbol: 'AAPL' }, ['subscribed']);
	fields('errors: a valid subscribe after them works', s, { type: 'subscribed', channel: 'trades', symbol: 'AAPL' });
	const d = await c.request({ op: 'subscribe', channel: 'trades', symbol: 'AAPL' }, ['subscribed']);
	fields('errors: subscribing twice is already_subscribed', d, { type: 'error', code: 'already_subscribed', channel: 'trades', symbol: 'AAPL' });
	const un = await c.request({ op: 'unsubscribe', channel: 'trades', symbol: 'AAPL' }, ['unsubscribed']);
	fields('errors: unsubscribe is answered unsubscribed', un, { type: 'unsubscribed', channel: 'trades', symbol: 'AAPL' });
	const un2 = await c.request({ op: 'unsubscribe', channel: 'trades', symbol: 'AAPL' }, ['unsubscribed']);
	fields('errors: unsubscribing again is not_subscribed', un2, { type: 'error', code: 'not_subscribed' });
	check('errors: no frame was anything but JSON', c.nonJson.length === 0, c.nonJson.slice(0, 3).join(' | '));
	c.close();
});

// alice and bob trade MSFT; their clients, a public trades client and a book client on feed A.
const ids = { alice: new Set(), bob: new Set() };
let msftBook = null;
await section('orders channel: every kind of report, each account its own', async () => {
	const A = await authed(FEED_A, ALICE, 'orders-alice');
	const B = await authed(FEED_A, BOB, 'orders-bob');
	for (const [c, n] of [[A, 'alice'], [B, 'bob']]) {
		const m = await subOrders(c);
		fields(`orders: ${n} subscribed`, m, { type: 'subscribed', channel: 'orders' });
		check(`orders: ${n}'s subscribed pos lists every shard in order`, isOrdersPos(m.pos), `pos ${JSON.stringify(m.pos)}`);
	}
	const T = await connect(FEED_A, 'trades-msft');
	const ts = await T.request({ op: 'subscribe', channel: 'trades', symbol: 'MSFT' }, ['subscribed']);
	fields('trades: subscribed', ts, { type: 'subscribed', channel: 'trades', symbol: 'MSFT' });
	check('trades: the subscribed pos names the symbol\'s shard only', ts.pos && parsePos(ts.pos) && [...parsePos(ts.pos).keys()].join() === String(shardOf('MSFT')),
		`pos ${JSON.stringify(ts.pos)}, MSFT is on shard ${shardOf('MSFT')}`);
	msftBook = await connect(FEED_A, 'book-msft');
	const bs = await msftBook.request({ op: 'subscribe', channel: 'book', symbol: 'MSFT' }, ['subscribed']);
	fields('book: subscribed', bs, { type: 'subscribed', channel: 'book', symbol: 'MSFT' });

	const rfc3339ns = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/;
	const track = (acct, id) => {
		ids[acct].add(id);
		return id;
	};

	// accepted
	const a1 = track('alice', await order(ALICE, lim('MSFT', 'buy', '100.00', 10, { client_order_id: 'ws-a1' })));
	const acc = await A.waitReport((r) => r.kind === 'accepted' && r.order_id === a1, `accepted of ${a1}`);
	fields('orders: accepted', acc, {
		kind: 'accepted', order_id: a1, client_order_id: 'ws-a1', symbol: 'MSFT', side: 'buy', type: 'limit',
		tif: 'GTC', price: '100.00', qty: 10, filled_qty: 0, status: 'NEW', request: 'new',
	});
	check('orders: accepted: report_id is a decimal string', /^\d+$/.test(acc.report_id), JSON.stringify(acc.report_id));
	check('orders: accepted: ts is RFC 3339 with nanoseconds, UTC', rfc3339ns.test(acc.ts), JSON.stringify(acc.ts));

	// a trade: both legs
	const b1 = track('bob', await order(BOB, lim('MSFT', 'sell', '100.00', 4, { client_order_id: 'ws-b1' })));
	const tb = await B.waitReport((r) => r.kind === 'trade' && r.order_id === b1, `bob's trade of ${b1}`);
	const ta = await A.waitReport((r) => r.kind === 'trade' && r.order_id === a1, `alice's trade of ${a1}`);
	fields('orders: trade, the taker\'s leg (bob)', tb, {
		kind: 'trade', order_id: b1, client_order_id: 'ws-b1', symbol: 'MSFT', side: 'sell', liquidity: 'taker',
		trade_price: '100.00', trade_qty: 4, qty: 4, filled_qty: 4, status: 'FILLED', fill_id: tb.report_id,
	});
	fields('orders: trade, the maker\'s leg (alice)', ta, {
		kind: 'trade', order_id: a1, symbol: 'MSFT', side: 'buy', liquidity: 'maker', trade_price: '100.00',
		trade_qty: 4, qty: 10, filled_qty: 4, status: 'PARTIALLY_FILLED', fill_id: ta.report_id, client_order_id: undefined,
	});
	eq('orders: trade: both legs carry the same report_id', ta.report_id, tb.report_id);
	const bAcc = await B.waitReport((r) => r.kind === 'accepted' && r.order_id === b1, `bob's accepted of ${b1}`);
	check('orders: trade: the taker\'s accepted comes before its trade', BigInt(bAcc.report_id) < BigInt(tb.report_id),
		`accepted ${bAcc.report_id}, trade ${tb.report_id}`);
	const tm = await T.expect((m) => m.type === 'trades' && m.trades.some((t) => t.fill_id === tb.report_id), `the public trade ${tb.report_id}`);
	const pub = tm.trades.find((t) => t.fill_id === tb.report_id);
	fields('trades: the public trade', pub, { fill_id: tb.report_id, price: '100.00', qty: 4, taker_side: 'sell' });
	check('trades: the trade has its ts', rfc3339ns.test(pub.ts), JSON.stringify(pub.ts));
	fields('trades: the message', tm, { type: 'trades', symbol: 'MSFT' });
	check('trades: the message\'s pos names the symbol\'s shard only',
		parsePos(tm.pos) !== null && [...parsePos(tm.pos).keys()].join() === String(shardOf('MSFT')), JSON.stringify(tm.pos));

	// cancelled by the owner
	await restOk('DELETE', `/v1/orders/${a1}?symbol=MSFT`, ALICE);
	const can = await A.waitReport((r) => r.kind === 'cancelled' && r.order_id === a1, `cancelled of ${a1}`);
	fields('orders: cancelled', can, { kind: 'cancelled', order_id: a1, reason: 'USER_CANCEL', status: 'CANCELLED', qty: 10, filled_qty: 4, request: 'cancel' });

	// amended (a reduction keeps priority) and replaced (a new price)
	const a2 = track('alice', await order(ALICE, lim('MSFT', 'buy', '99.00', 10)));
	await A.waitReport((r) => r.kind === 'accepted' && r.order_id === a2, `accepted of ${a2}`);
	await restOk('PATCH', `/v1/orders/${a2}?symbol=MSFT`, ALICE, { qty: 6 });
	const am = await A.waitReport((r) => r.kind === 'amended' && r.order_id === a2, `amended of ${a2}`);
	fields('orders: amended', am, { kind: 'amended', order_id: a2, symbol: 'MSFT', price: '99.00', qty: 6, filled_qty: 0, status: 'NEW', request: 'amend' });
	await restOk('PATCH', `/v1/orders/${a2}?symbol=MSFT`, ALICE, { price: '98.50' });
	const rp = await A.waitReport((r) => r.kind === 'replaced' && r.order_id === a2, `replaced of ${a2}`);
	fields('orders: replaced', rp, { kind: 'replaced', order_id: a2, price: '98.50', qty: 6, status: 'NEW', request: 'amend' });

	// post-only that would trade: cancelled with its reason
	const b2 = track('bob', await order(BOB, lim('MSFT', 'sell', '101.00', 1)));
	await B.waitReport((r) => r.kind === 'accepted' && r.order_id === b2, `accepted of ${b2}`);
	const a3 = track('alice', await order(ALICE, lim('MSFT', 'buy', '101.00', 1, { post_only: true })));
	const po = await A.waitReport((r) => r.order_id === a3 && r.status === 'CANCELLED', `the post-only ${a3} closed`);
	fields('orders: a post-only order that would trade is cancelled', po, {
		kind: 'cancelled', order_id: a3, post_only: true, reason: 'POST_ONLY_WOULD_TRADE', status: 'CANCELLED', filled_qty: 0,
	});

	// rejected: a cancel of an order that does not exist; another account's order
	await restOk('DELETE', '/v1/orders/987654321?symbol=MSFT', ALICE);
	const rj = await A.waitReport((r) => r.kind === 'rejected' && r.order_id === '987654321', 'the rejected cancel of 987654321');
	fields('orders: rejected (cancel of an unknown order)', rj, { kind: 'rejected', order_id: '987654321', reason: 'UNKNOWN_ORDER', request: 'cancel' });
	await restOk('DELETE', `/v1/orders/${a2}?symbol=MSFT`, BOB);
	const no = await B.waitReport((r) => r.kind === 'rejected' && r.order_id === a2, `bob's rejected cancel of alice's ${a2}`);
	fields('orders: rejected (a cancel of another account\'s order), to the requester', no, { kind: 'rejected', reason: 'NOT_OWNER', request: 'cancel' });

	// GTD: accepted with its expiry, then cancelled EXPIRED
	const exp = new Date(Date.now() + 3000).toISOString();
	const a4 = track('alice', await order(ALICE, lim('MSFT', 'buy', '95.00', 1, { tif: 'GTD', expire_at: exp })));
	const ga = await A.waitReport((r) => r.kind === 'accepted' && r.order_id === a4, `accepted of GTD ${a4}`);
	fields('orders: a GTD order is accepted with tif GTD', ga, { tif: 'GTD', status: 'NEW' });
	check('orders: the GTD order\'s accepted carries expire_at', typeof ga.expire_at === 'string' && Date.parse(ga.expire_at) === Date.parse(exp),
		`expire_at ${JSON.stringify(ga.expire_at)}, sent ${exp}`);
	const ge = await A.waitReport((r) => r.kind === 'cancelled' && r.order_id === a4, `the expiry of ${a4}`);
	fields('orders: the GTD order expires', ge, { kind: 'cancelled', order_id: a4, reason: 'EXPIRED', status: 'CANCELLED' });

	// cancel-all of one symbol, then of all
	const a5 = track('alice', await order(ALICE, lim('GOOG', 'buy', '50.00', 1)));
	const a6 = track('alice', await order(ALICE, lim('GOOG', 'sell', '60.00', 1)));
	for (const id of [a5, a6]) await A.waitReport((r) => r.kind === 'accepted' && r.order_id === id, `accepted of ${id}`);
	await restOk('DELETE', '/v1/orders?symbol=GOOG', ALICE);
	const cad = await A.waitReport((r) => r.kind === 'cancel_all_done' && r.symbol === 'GOOG', 'cancel_all_done of GOOG');
	fields('orders: cancel_all_done of one symbol', cad, { kind: 'cancel_all_done', symbol: 'GOOG', count: 2, request: 'cancel_all' });
	for (const id of [a5, a6]) {
		const r = await A.waitReport((x) => x.kind === 'cancelled' && x.order_id === id, `cancelled of ${id}`);
		fields(`orders: cancel-all cancelled ${id}`, r, { reason: 'USER_CANCEL', request: 'cancel_all', status: 'CANCELLED' });
	}
	await restOk('DELETE', '/v1/orders', ALICE);
	const c2 = await A.waitReport((r) => r.kind === 'cancelled' && r.order_id === a2, `cancelled of ${a2} by the cancel-all of every symbol`);
	fields('orders: cancel-all of every symbol cancelled the replaced order', c2, { reason: 'USER_CANCEL', request: 'cancel_all' });
	await A.waitReport((r) => r.kind === 'cancel_all_done' && r.symbol === '' && r.count === 1, 'a cancel_all_done of every symbol with count 1');
	const alls = A.reports.filter((e) => e.r.kind === 'cancel_all_done' && e.r.symbol === '');
	eq('orders: the cancel_all_done of every symbol count one cancelled order in all', alls.reduce((n, e) => n + e.r.count, 0), 1);

	// the dead-man switch: armed, disarmed
	await restOk('POST', '/v1/cancel-all-after', ALICE, { timeout_ms: 60000 });
	const dm = await A.waitReport((r) => r.kind === 'dead_man' && r.timeout_ms === 60000, 'dead_man armed');
	fields('orders: dead_man armed', dm, { kind: 'dead_man', timeout_ms: 60000, request: 'cancel_all_after' });
	await restOk('POST', '/v1/cancel-all-after', ALICE, { timeout_ms: 0 });
	await A.waitReport((r) => r.kind === 'dead_man' && r.timeout_ms === 0, 'dead_man disarmed');
	// ... and fired: its cancels and cancel_all_done carry reason DEAD_MAN
	const a7 = track('alice', await order(ALICE, lim('GOOG', 'buy', '40.00', 1)));
	await A.waitReport((r) => r.kind === 'accepted' && r.order_id === a7, `accepted of ${a7}`);
	await restOk('POST', '/v1/cancel-all-after', ALICE, { timeout_ms: 1000 });
	const dc = await A.waitReport((r) => r.kind === 'cancelled' && r.order_id === a7, `the dead-man cancel of ${a7}`);
	fields('orders: the dead-man switch fired: the open order cancelled', dc, { reason: 'DEAD_MAN', status: 'CANCELLED' });
	await A.waitReport((r) => r.kind === 'cancel_all_done' && r.reason === 'DEAD_MAN' && r.count === 1, 'the cancel_all_done of the dead-man switch');
	const fired = A.reports.filter((e) => e.r.kind === 'cancel_all_done' && e.r.reason === 'DEAD_MAN');
	check('orders: the dead-man cancel_all_done are of every symbol and count one order in all',
		fired.every((e) => e.r.symbol === '') && fired.reduce((n, e) => n + e.r.count, 0) === 1, JSON.stringify(fired.map((e) => e.r)));

	// a last order of each, so that everything before it was delivered
	const la = track('alice', await order(ALICE, lim('MSFT', 'buy', '90.00', 1)));
	const lb = track('bob', await order(BOB, lim('MSFT', 'sell', '110.00', 1)));
	await A.waitReport((r) => r.kind === 'accepted' && r.order_id === la, `accepted of ${la}`);
	await B.waitReport((r) => r.kind === 'accepted' && r.order_id === lb, `accepted of ${lb}`);

	// isolation
	for (const [c, me, other] of [[A, 'alice', 'bob'], [B, 'bob', 'alice']]) {
		const leak = c.msgs.filter((x) => x.text.includes(other));
		check(`orders: ${me}'s messages never name ${other}`, leak.length === 0, leak.slice(0, 2).map((x) => x.text).join(' | '));
		const foreign = c.reports.filter((e) => e.r.order_id && !ids[me].has(e.r.order_id) &&
			!(me === 'alice' && e.r.order_id === '987654321') && !(me === 'bob' && e.r.kind === 'rejected' && e.r.order_id === a2));
		check(`orders: ${me} gets reports about ${me}'s orders only`, foreign.length === 0,
			foreign.slice(0, 3).map((e) => JSON.stringify(e.r)).join(' | '));
	}
	check('orders: alice got nothing about bob\'s refused cancel of her order',
		!A.reports.some((e) => e.r.kind === 'rejected' && e.r.order_id === a2));
	const kinds = new Set(A.reports.map((e) => e.r.kind));
	for (const k of ['accepted', 'trade', 'cancelled', 'amended', 'replaced', 'rejected', 'cancel_all_done', 'dead_man']) {
		check(`orders: alice received a '${k}' report`, kinds.has(k), [...kinds].join(','));
	}
	check('orders: no report of kind tick is sent', !A.reports.concat(B.reports).some((e) => e.r.kind === 'tick'));
	// an orders message holds reports, each message with the position after it
	for (const [c, n] of [[A, 'alice'], [B, 'bob']]) {
		const bad = c.msgs.filter((x) => x.m.type === 'orders' && (!isOrdersPos(x.m.pos) || !Array.isArray(x.m.reports) || x.m.reports.length === 0));
		check(`orders: ${n}'s orders messages have a pos of every shard and reports`, bad.length === 0, bad.slice(0, 2).map((x) => x.text).join(' | '));
	}
	// the public trades
	const leaks = T.msgs.filter((x) => /account|alice|bob/.test(x.text));
	check('trades: no account anywhere in the public messages', leaks.length === 0, leaks.slice(0, 2).map((x) => x.text).join(' | '));
	const tradeIds = new Set(A.reports.concat(B.reports).filter((e) => e.r.kind === 'trade').map((e) => e.r.report_id));
	const pubIds = T.msgs.filter((x) => x.m.type === 'trades').flatMap((x) => x.m.trades.map((t) => t.fill_id));
	eq('trades: the public trades of MSFT are exactly the trades alice and bob saw', [...new Set(pubIds)].sort(), [...tradeIds].sort());
	eq('trades: no public trade twice', pubIds.length, new Set(pubIds).size);
	for (const c of [A, B, T]) c.close();
});

await section('book channel: snapshot, updates seq +1, the depth ingest serves', async () => {
	if (!msftBook) throw new Error('the MSFT book client did not start');
	const K = msftBook;
	const first = K.msgs.find((x) => x.m.type === 'book');
	check('book: the first book message is a snapshot', first && first.m.kind === 'snapshot' && first.m.symbol === 'MSFT' &&
		Number.isInteger(first.m.seq) && Array.isArray(first.m.bids) && Array.isArray(first.m.asks) && typeof first.m.ts === 'string',
	first ? first.text : 'none');
	await bookConverges('book: MSFT depth from the feed equals GET /v1/book/MSFT', K, 'MSFT', () => restBook('MSFT'));
	const l = localBook(K, 'MSFT');
	check('book: MSFT: one snapshot, then updates with seq exactly +1', l.problems.length === 0, l.problems.join('; '));
	check('book: MSFT: updates came', K.msgs.filter((x) => x.m.kind === 'update').length > 0);

	// a symbol nothing traded yet: an empty snapshot, then known levels
	const T3 = await connect(FEED_A, 'book-tsla');
	const s = await T3.request({ op: 'subscribe', channel: 'book', symbol: 'TSLA' }, ['subscribed']);
	fields('book: TSLA subscribed', s, { type: 'subscribed', channel: 'book', symbol: 'TSLA' });
	const snap = await T3.expect((m) => m.type === 'book', 'the TSLA snapshot');
	fields('book: TSLA snapshot of an empty book', snap, { type: 'book', kind: 'snapshot', symbol: 'TSLA', bids: [], asks: [] });
	await order(ALICE, lim('TSLA', 'buy', '10.00', 5));
	await order(ALICE, lim('TSLA', 'buy', '10.00', 3));
	await order(ALICE, lim('TSLA', 'buy', '9.99', 7));
	await order(BOB, lim('TSLA', 'sell', '10.05', 2));
	const want1 = { bids: [['10.00', 8, 2], ['9.99', 7, 1]], asks: [['10.05', 2, 1]] };
	await bookConverges('book: TSLA levels after four orders', T3, 'TSLA', () => want1);
	await bookConverges('book: TSLA: ingest serves the same depth', T3, 'TSLA', () => restBook('TSLA'));
	await order(BOB, lim('TSLA', 'sell', '10.00', 8));
	const want2 = { bids: [['9.99', 7, 1]], asks: [['10.05', 2, 1]] };
	await bookConverges('book: TSLA: a level taken away', T3, 'TSLA', () => want2);
	check('book: TSLA: the level gone was sent as ["10.00",0,0]',
		T3.msgs.some((x) => x.m.kind === 'update' && x.m.bids.some((lv) => JSON.stringify(lv) === '["10.00",0,0]')),
		T3.msgs.map((x) => x.text).join(' | '));
	const lt = localBook(T3, 'TSLA');
	check('book: TSLA: seq exactly +1', lt.problems.length === 0, lt.problems.join('; '));
	const upd = T3.msgs.filter((x) => x.m.kind === 'update');
	check('book: TSLA: updates list changed levels only', upd.every((x) => x.m.bids.length + x.m.asks.length > 0), upd.map((x) => x.text).join(' | '));
	// a later subscriber gets today's depth as its snapshot
	const T4 = await connect(FEED_A, 'book-tsla-2');
	await T4.request({ op: 'subscribe', channel: 'book', symbol: 'TSLA' }, ['subscribed']);
	const snap2 = await T4.expect((m) => m.type === 'book', 'the second TSLA snapshot');
	fields('book: TSLA: a later subscriber\'s snapshot is the current depth', snap2, { kind: 'snapshot', bids: want2.bids, asks: want2.asks });
	for (const c of [K, T3, T4]) c.close();
});

// ---- resume --------------------------------------------------------------------------

let round = 0;
// carol's flow on AAPL (shard 3) and GOOG (shard 1): a resting buy that
// dave partly fills, then cancelled; a resting sell.
// Returns Map shard -> the first of carol's orders there (where a slice of
// what followed starts).
async function carolRounds(n) {
	const first = new Map();
	for (let i = 0; i < n; i++) {
		round++;
		const px = (20 + round).toFixed(2);
		const c1 = await order(CAROL, lim('AAPL', 'buy', px, 2, { client_order_id: `carol-${round}` }));
		await order(DAVE, lim('AAPL', 'sell', px, 1));
		const c2 = await order(CAROL, lim('GOOG', 'sell', (300 + round).toFixed(2), 1));
		await restOk('DELETE', `/v1/orders/${c1}?symbol=AAPL`, CAROL);
		if (!first.has(shardOf('AAPL'))) first.set(shardOf('AAPL'), c1);
		if (!first.has(shardOf('GOOG'))) first.set(shardOf('GOOG'), c2);
	}
	return first;
}

// Marker orders of carol on both of her shards; returns Map shard -> order id.
async function markers() {
	const m = new Map();
	m.set(shardOf('AAPL'), await order(CAROL, lim('AAPL', 'buy', '1.00', 1)));
	m.set(shardOf('GOOG'), await order(CAROL, lim('GOOG', 'buy', '1.00', 1)));
	return m;
}

async function gotMarkers(c, mk) {
	for (const id of mk.values()) await c.waitReport((r) => r.kind === 'accepted' && r.order_id === id, `the marker ${id}`);
}

// One resume: c1 subscribes (no from), gets some, its last pos is kept; then
// `between` runs (disconnected); c2 resumes from that pos on `base2`.
async function resumeCase(name, base1, base2, between) {
	const c1 = await authed(base1, CAROL, `${name}-1`);
	const s1 = await subOrders(c1);
	if (!parsePos(s1.pos)) throw new Error(`${name}: subscribe answered ${JSON.stringify(s1)}`);
	const start = await carolRounds(2); // carol's first orders since c1 subscribed
	const mk1 = await markers();
	await gotMarkers(c1, mk1);
	const P = lastOrdersPos(c1);
	c1.close(); // at once: nothing can arrive between reading P and the close
	check(`${name}: the last message's pos lists every shard`, isOrdersPos(P), JSON.stringify(P));
	await between();
	await carolRounds(3);
	// (what c1 got ends at P, what c2 gets starts after it: together they
	// must be the reference's, each report once)
	const mk2 = await markers();
	await gotMarkers(refs.carol, mk2);
	const c2 = await authed(base2, CAROL, `${name}-2`);
	const s2 = await subOrders(c2, P);
	fields(`${name}: the resume is answered subscribed at the position given`, s2, { type: 'subscribed', channel: 'orders', pos: P });
	await gotMarkers(c2, mk2);
	sameAsReference(`${name}: before and after together`, c1.reports.concat(c2.reports), refs.carol.reports, start, mk2);
	const k1 = new Set(c1.reports.map(key));
	const both = c2.reports.filter((e) => k1.has(key(e)));
	check(`${name}: nothing received before the disconnect came again`, both.length === 0, both.slice(0, 3).map((e) => JSON.stringify(e.r)).join(' | '));
	c2.close();
	return P;
}

await section('resume from a position, same feed', async () => {
	await resumeCase('resume', FEED_A, FEED_A, async () => {});
});

await section('resume from a position of one feed on another feed', async () => {
	await resumeCase('resume elsewhere', FEED_A, FEED_B, async () => {});
});

await section('resume of trades from a position', async () => {
	// every AAPL trade in carol's rounds is carol's (with dave): her
	// reference has them all, fill ids increasing (one shard)
	const refFills = () => refs.carol.reports.filter((e) => e.r.kind === 'trade' && e.r.symbol === 'AAPL').map((e) => e.r.fill_id);
	const fills = (c) => c.msgs.filter((x) => x.m.type === 'trades').flatMap((x) => x.m.trades.map((t) => t.fill_id));
	const known = new Set(refFills()); // delivered before t1 subscribes (the last section waited for its markers)
	const t1 = await connect(FEED_A, 'trades-resume-1');
	const s1 = await t1.request({ op: 'subscribe', channel: 'trades', symbol: 'AAPL' }, ['subscribed']);
	fields('trades resume: subscribed', s1, { type: 'subscribed', channel: 'trades', symbol: 'AAPL' });
	await carolRounds(2);
	const mk1 = await markers();
	await gotMarkers(refs.carol, mk1);
	const want1 = refFills().filter((f) => !known.has(f));
	await waitUntil(() => want1.every((f) => fills(t1).includes(f)) || t1.errors().length > 0, 'trades-resume-1: the trades of two rounds');
	const tm = t1.msgs.filter((x) => x.m.type === 'trades');
	const Pt = tm[tm.length - 1].m.pos;
	const got1 = fills(t1);
	t1.close();
	await carolRounds(3);
	const mk2 = await markers();
	await gotMarkers(refs.carol, mk2);
	const t2 = await connect(FEED_A, 'trades-resume-2');
	const s2 = await t2.request({ op: 'subscribe', channel: 'trades', symbol: 'AAPL', from: Pt }, ['subscribed']);
	fields('trades resume: answered subscribed at the position given', s2, { type: 'subscribed', channel: 'trades', symbol: 'AAPL', pos: Pt });
	const want = refFills().filter((f) => !known.has(f));
	await waitUntil(() => want.every((f) => got1.includes(f) || fills(t2).includes(f)) || t2.errors().length > 0,
		'trades-resume-2: the trades after the position');
	eq('trades resume: before and after the position together, exactly the trades since the first subscribe, once each, in order',
		got1.concat(fills(t2)), want);
	check('trades resume: the resumed client got trades', fills(t2).length > 0, JSON.stringify(t2.msgs.map((x) => x.m)));
	t2.close();
});

await section('resume on a feed whose reader has not read as far as the position', async () => {
	await ctl('deny_xread'); // feed A's live reader can no longer read; its replays still can
	await carolRounds(2);
	const mk1 = await markers();
	await gotMarkers(refs.carol, mk1);
	const P = lastOrdersPos(refs.carol); // from feed B: beyond what feed A has read
	const c = await authed(FEED_A, CAROL, 'ahead');
	const s = await subOrders(c, P);
	fields('ahead: the resume is answered subscribed at the position given', s, { type: 'subscribed', channel: 'orders', pos: P });
	await ctl('allow_xread'); // the reader catches up
	const next = await carolRounds(1); // carol's first orders after P
	const mk2 = await markers();
	await gotMarkers(refs.carol, mk2);
	await gotMarkers(c, mk2);
	sameAsReference('ahead: a resume from a position the feed has not read yet', c.reports, refs.carol.reports, next, mk2);
	c.close();
});

await section('resume across a feed restart', async () => {
	await resumeCase('resume after a feed restart', FEED_A, FEED_A, async () => {
		await ctl('kill_feed feed-a');
		await carolRounds(2); // while the feed is down
		await ctl('start_feed feed-a');
	});
});

await section('resume across a matcher failover', async () => {
	await resumeCase('resume after a matcher failover', FEED_A, FEED_A, async () => {
		const shard = shardOf('AAPL');
		const owner = await ctl(`kill_owner ${shard}`);
		console.log(`note: killed matcher '${owner}', the owner of shard ${shard}, with SIGKILL`);
		await carolRounds(2); // queued until the standby takes the lease over
		await ctl('wait_takeover');
	});
});

// ---- gap and bad positions -----------------------------------------------------------

await section('gap: the streams no longer hold what followed the position', async () => {
	const first = refs.carol.msgs.find((x) => x.m.type === 'orders');
	if (!first) throw new Error('the reference got no carol message');
	const old = parsePos(first.m.pos);
	const shard = shardOf('AAPL');
	// Both feeds have read up to a marker: trimming before it makes no hole
	// in what their readers have still to read, only in the past.
	const W = await authed(FEED_A, CAROL, 'gap-witness');
	await subOrders(W);
	const mk0 = await markers();
	await gotMarkers(W, mk0);
	await gotMarkers(refs.carol, mk0);
	// the position after the messages holding both markers, on each feed:
	// the smaller one (on the trimmed shard) was read by both feeds, and the
	// entry it names stays
	const after = (c) => c.msgs[Math.max(...[...mk0.values()].map((id) =>
		c.reports.find((e) => e.r.kind === 'accepted' && e.r.order_id === id).mi))].m.pos;
	const [fromCut] = [after(W), after(refs.carol)].sort((x, y) => sidCmp(parsePos(x).get(shard), parsePos(y).get(shard)));
	const cut = parsePos(fromCut).get(shard);
	const before = await ctl(`prev_id ${shard} ${cut}`); // the last entry the trim removes
	const trimmed = await ctl(`trim ${shard} ${cut}`);
	console.log(`note: fills:{${shard}} trimmed below ${cut}: ${trimmed} entries`);
	check('gap: the trim removed entries after the old position', Number(trimmed) > 0 && sidCmp(old.get(shard), cut) < 0,
		`trimmed ${trimmed}, old position ${old.get(shard)}, cut ${cut}`);
	const G = await authed(FEED_A, CAROL, 'gap');
	const e = await subOrders(G, first.m.pos);
	fields('gap: orders from an old position is answered error gap', e, { type: 'error', code: 'gap', channel: 'orders' });
	check('gap: no subscribed message came with it', !G.msgs.some((x) => x.m.type === 'subscribed'), G.msgs.map((x) => x.text).join(' | '));
	const un = await G.request({ op: 'unsubscribe', channel: 'orders' }, ['unsubscribed']);
	fields('gap: nothing is subscribed after it', un, { type: 'error', code: 'not_subscribed' });
	const et = await G.request({ op: 'subscribe', channel: 'trades', symbol: 'AAPL', from: `${shard}:${old.get(shard)}` }, ['subscribed']);
	fields('gap: trades from an old position is answered error gap', et, { type: 'error', code: 'gap', channel: 'trades', symbol: 'AAPL' });
	// from the entry left: nothing lost, a normal resume
	const ok = await subOrders(G, fromCut);
	fields('gap: a resume from an entry still there is subscribed', ok, { type: 'subscribed', channel: 'orders', pos: fromCut });
	const mk = await markers();
	await gotMarkers(G, mk);
	await gotMarkers(refs.carol, mk);
	sameAsReference('gap: the resume from the entry left', G.reports, refs.carol.reports, mk, mk);
	// docs/feed.md: a position whose own entry was trimmed is answered gap
	// even when the next entry is still there (Redis 7.0 does not tell which
	// entries a trim removed, so the feed cannot prove nothing after it went):
	// cautious, never silent.
	const fromBefore = [...parsePos(fromCut).entries()].map(([s, id]) => `${s}:${s === shard ? before : id}`).join(',');
	const G2 = await authed(FEED_A, CAROL, 'gap-edge');
	const e2 = await subOrders(G2, fromBefore);
	fields(`gap: from the last entry trimmed (${before}; the next, ${cut}, is there): gap, as documented`, e2,
		{ type: 'error', code: 'gap', channel: 'orders' });
	G2.close();
	check('gap: the clients that were reading live got no gap', W.errors().length === 0 && refs.carol.errors().length === 0,
		JSON.stringify(W.errors().concat(refs.carol.errors())));
	G.close();
	W.close();
});

await section('bad_position', async () => {
	const C = await authed(FEED_A, CAROL, 'bad-position');
	const aapl = shardOf('AAPL');
	const other = [...Array(SHARDS).keys()].find((s) => s !== aapl);
	const now = parsePos(lastOrdersPos(refs.carol));
	const nowText = [...now.entries()].sort((a, b) => a[0] - b[0]).map(([s, id]) => `${s}:${id}`);
	const beyond = nowText.map((p) => (p.startsWith(`${aapl}:`) ? `${aapl}:${Date.now() + 86400000}-0` : p)).join(',');
	const cases = [
		['orders', undefined, 'garbage', 'malformed'],
		['orders', undefined, nowText.slice(0, -1).join(','), 'a shard missing'],
		['orders', undefined, nowText.join(',') + `,${SHARDS}:0-0`, 'a shard the channel does not read'],
		['orders', undefined, nowText.join(',').replace(/^0:/, '0:x'), 'a bad entry id'],
		['orders', undefined, beyond, 'beyond the end of a stream'],
		['orders', undefined, 42, 'not a string'],
		['trades', 'AAPL', `${other}:0-0`, 'another shard than the symbol\'s'],
		['trades', 'AAPL', `${aapl}:0-0,${aapl}:0-0`, 'the shard twice'],
		['trades', 'AAPL', `${aapl}:${Date.now() + 86400000}-0`, 'beyond the end of the stream'],
	];
	for (const [channel, symbol, from, what] of cases) {
		const x = { op: 'subscribe', channel, from };
		if (symbol) x.symbol = symbol;
		const m = await C.request(x, ['subscribed']);
		fields(`bad_position: ${channel} from ${what} (${JSON.stringify(from)})`, m, { type: 'error', code: 'bad_position', channel });
		const un = await C.request({ op: 'unsubscribe', channel, ...(symbol ? { symbol } : {}) }, ['unsubscribed']);
		fields(`bad_position: ${channel} from ${what}: nothing subscribed`, un, { type: 'error', code: 'not_subscribed' });
	}
	check('bad_position: the connection stays open', C.closeCode === null, `closed ${C.closeCode} ${C.closeReason}`);
	C.close();
});

// ---- slow consumer -----------------------------------------------------------------

async function feedMetric(base, name) {
	const { stdout } = await execFileP('curl', ['-s', '--max-time', '30', base + '/metrics']);
	const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'm').exec(stdout);
	return m ? Number(m[1]) : null;
}

await section('slow consumer: closed 4001, the others keep everything', async () => {
	const N = await authed(FEED_A, DAVE, 'dave-normal');
	fields('slow consumer: the normal client subscribed', await subOrders(N), { type: 'subscribed', channel: 'orders' });
	const S = await authed(FEED_A, DAVE, 'dave-slow');
	await subOrders(S);
	S.ws._socket.pause(); // stops reading: the kernel buffers fill, then the feed's queue
	const before = await feedMetric(FEED_A, 'feed_slow_closed_total');
	check('slow consumer: the feed counts slow consumers', before !== null, 'no feed_slow_closed_total in /metrics');
	const floodIds = [];
	let closed = false;
	let flooding = true;
	// The feed gives a closed connection KILL_SECS (5 s) to take its close
	// frame before it drops the socket: the client resumes reading as soon
	// as the feed counts the close, so that it can read up to that frame.
	const watcher = (async () => {
		while (flooding && !closed) {
			if ((await feedMetric(FEED_A, 'feed_slow_closed_total')) > before) {
				closed = true;
				S.ws._socket.resume(); // read what was buffered, then the close
			}
			await sleep(50);
		}
	})();
	// IOC buys with nothing to meet: accepted and cancelled, ~800 bytes each
	const pad = 'x'.repeat(24);
	// at most 30000 orders, ~24 MB of messages: far more than the kernel's
	// socket buffers (a few MB) and the queue bound
	for (let batch = 0; batch < 1200 && !closed && N.closeCode === null && N.errors().length === 0; batch += 2) {
		const bodies = [batch, batch + 1].map((b) => ({
			orders: [...Array(25).keys()].map((i) => lim('AMZN', 'buy', '1.00', 1, { tif: 'IOC', client_order_id: `f${b}-${i}-${pad}` })),
		}));
		const answers = await Promise.all(bodies.map((body) => restOk('POST', '/v1/orders/batch', DAVE, body)));
		for (const a of answers) for (const r of a.results) floodIds.push(r.order_id);
	}
	flooding = false;
	await watcher;
	console.log(`note: ${floodIds.length} IOC orders sent before the feed closed the paused client`);
	check('slow consumer: the feed closed the paused client within the flood', closed, `${floodIds.length} orders sent`);
	S.ws._socket.resume();
	await waitUntil(() => S.closeCode !== null, 'the slow client to see its close');
	eq('slow consumer: closed with code 4001', S.closeCode, 4001);
	eq('slow consumer: the close reason', S.closeReason, 'slow consumer');
	const last = floodIds[floodIds.length - 1];
	const mk = await order(DAVE, lim('AMZN', 'buy', '1.00', 1, { tif: 'IOC', client_order_id: 'flood-end' }));
	await N.waitReport((r) => r.order_id === mk && r.status === 'CANCELLED', `the last order ${mk}`, 180000);
	check('slow consumer: the normal client is still open', N.closeCode === null, `closed ${N.closeCode} ${N.closeReason}`);
	const closedIds = new Set(N.reports.filter((e) => e.r.status === 'CANCELLED').map((e) => e.r.order_id));
	const acceptedIds = new Set(N.reports.filter((e) => e.r.kind === 'accepted').map((e) => e.r.order_id));
	const missing = floodIds.filter((id) => !closedIds.has(id) || !acceptedIds.has(id));
	check(`slow consumer: the normal client got the accepted and the cancel of all ${floodIds.length} orders`, missing.length === 0,
		`${missing.length} missing, e.g. ${missing.slice(0, 5).join(',')} (last sent ${last})`);
	await gotMarkersOf(refs.dave, mk);
	const flood = new Set(floodIds); // sent two batches at a time: the first in the stream is the reference's first
	const firstFlood = refs.dave.reports.find((e) => flood.has(e.r.order_id));
	sameAsReference('slow consumer: the normal client', N.reports, refs.dave.reports,
		new Map([[shardOf('AMZN'), firstFlood ? firstFlood.r.order_id : floodIds[0]]]), new Map([[shardOf('AMZN'), mk]]));
	N.close();
});

async function gotMarkersOf(c, id) {
	await c.waitReport((r) => r.kind === 'accepted' && r.order_id === id, `the order ${id}`, 180000);
}

// ---- 500 clients -------------------------------------------------------------------------

await section('500 concurrent clients on the trades of one symbol', async () => {
	const n = 500;
	const cs = [];
	for (let i = 0; i < n; i += 50) {
		const chunk = [];
		for (let k = i; k < i + 50; k++) chunk.push(connect(FEED_A, `many-${k}`));
		cs.push(...(await Promise.all(chunk)));
	}
	for (const c of cs) c.send({ op: 'subscribe', channel: 'trades', symbol: 'TSLA' });
	await waitUntil(() => cs.every((c) => c.msgs.length > 0), 'every one of 500 clients to be answered', 120000);
	const subscribed = cs.filter((c) => c.msgs[0].m.type === 'subscribed' && c.msgs[0].m.symbol === 'TSLA');
	eq('500 clients: all subscribed', subscribed.length, n);
	// alice's 9.99 bid rests from the book part: bob takes one
	const b = await order(BOB, lim('TSLA', 'sell', '9.99', 1));
	const t = await refs.bob.waitReport((r) => r.kind === 'trade' && r.order_id === b, `bob's trade ${b}`);
	const got = (c) => c.msgs.some((x) => x.m.type === 'trades' && x.m.trades.some((tr) => tr.fill_id === t.report_id));
	await waitUntil(() => cs.every(got) || cs.some((c) => c.closeCode !== null), `the trade ${t.report_id} at all 500 clients`, 120000).catch((e) => console.log(`note: ${e.message}`));
	eq(`500 clients: every one received the trade ${t.report_id}`, cs.filter(got).length, n);
	const tr = cs[0].msgs.find((x) => x.m.type === 'trades');
	fields('500 clients: the trade', tr ? tr.m.trades.find((x) => x.fill_id === t.report_id) : null, { price: '9.99', qty: 1, taker_side: 'sell' });
	eq('500 clients: none was closed', cs.filter((c) => c.closeCode !== null).length, 0);
	for (const c of cs) c.close();
});

// ---- the references, all along -------------------------------------------------------------

await section('the references on feed B', async () => {
	for (const [acct, c] of Object.entries(refs)) {
		check(`reference ${acct}: never closed`, c.closeCode === null, `closed ${c.closeCode} ${c.closeReason}`);
		eq(`reference ${acct}: no error message`, c.errors(), []);
		const keys = c.reports.map(key);
		const dup = keys.filter((k, i) => keys.indexOf(k) !== i);
		check(`reference ${acct}: no report twice (${keys.length} reports)`, dup.length === 0, dup.slice(0, 5).join(' '));
	}
});

await section('positions never go back', async () => {
	for (const c of allClients) {
		let prev = null;
		const bad = [];
		for (const { m } of c.msgs) {
			if (m.type !== 'orders' && m.type !== 'trades') continue;
			const p = parsePos(m.pos);
			if (!p) {
				bad.push(`pos ${JSON.stringify(m.pos)}`);
				continue;
			}
			if (prev) for (const [s, id] of p) if (prev.has(s) && sidCmp(id, prev.get(s)) < 0) bad.push(`shard ${s}: ${id} after ${prev.get(s)}`);
			prev = p;
		}
		if (bad.length) check(`${c.label}: positions never go back`, false, bad.slice(0, 3).join('; '));
	}
	check('positions: checked on every client', true);
	const nonJson = allClients.filter((c) => c.nonJson.length);
	check('every frame of every client was JSON', nonJson.length === 0, nonJson.map((c) => c.label).join(','));
});

for (const c of allClients) c.close();
console.log(`feed_ws.mjs: ${nChecks} checks, ${nFails} failed`);
process.exit(nFails ? 1 : 0);
