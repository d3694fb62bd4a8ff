// WebSocket clients of the feed for bench/feed.sh: N connections, match -> client latency per message.
//
//   node bench/tools/feedclients.mjs --url ws://127.0.0.1:P/ws --clients N
//        --symbols AAPL,MSFT,... [--orders K --keys dev-key-alice,dev-key-bob] [--threads T]
//
// Opens N connections to the feed (the `ws` package of tests/js, installed by
// ops/install-deps.sh), spread over T worker threads (default 2: one Node.js
// thread reading 1,000 sockets would become the latency it measures). K of
// them authenticate with the keys in turn and subscribe to `orders`; the
// others subscribe to `trades` of one symbol each, round robin over the
// symbols. Once every connection is subscribed it prints
//   feedclients: ready N
// and measures until SIGTERM, then prints (and exits 0):
//   feedclients: all: messages M latency_ms p50 X p99 X p999 X max X
//   feedclients: trades: messages M bytes_mean B latency_ms p50 X p99 X p999 X max X
//   feedclients: orders: messages M bytes_mean B latency_ms p50 X p99 X p999 X max X untimed U
//   feedclients: trades per open subscriber: AAPL 812 812 MSFT 790 790 ... (trades received, min max per symbol)
//   feedclients: orders per open subscriber: alice 3011 3011 ...           (reports received, min max per account)
//   feedclients: event loop delay ms (per thread) p99 X X max X X
//   feedclients: closed C trades Ct orders Co errors E disorder D
//   feedclients: close: <code> <reason>: <kind> xK after A..B s (median M s, after P..Q messages)
//
// A message's latency is the wall clock when the client got it
// (performance.timeOrigin + performance.now(), µs resolution), taken first
// thing in the handler, minus the ms part of the fills entry id in its `pos`
// (the Redis clock when the matcher published the entry). The id has ms
// resolution, so this over-states by 0-1 ms. For `orders` the entry is the
// shard of `pos` that moved since the previous message; when several moved
// (entries that did not concern the account came between) which one the
// message is from is unknown and it is counted `untimed`. `disorder` counts
// messages whose position did not move forward (a duplicate or a
// reordering); `closed`, connections the feed closed once subscribed (the
// close lines say when, from the start of the measurement); `errors`, error
// messages received. The per-subscriber counts are those of the
// connections still open at the end. Only the head of a message is decoded (its type and
// pos), as a client that routes messages would, and the UTF-8 validation
// of the ws package is skipped (the feed writes only JSON it built): the
// clients share the machine with what they measure, so they do as little
// as a client can.

import { createRequire } from 'node:module';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

// Why 10 µs x 1,000,000: exact to 10 µs up to 10 s, 4 MB per histogram.
const BUCKET_US = 10;
const BUCKETS = 1000000;
// Why 64: handshakes in flight per thread; a burst of 1,000 SYNs at once
// could overflow the listen backlog and cost seconds of SYN retries.
const CONNECTING_MAX = 64;
// The head of a message holds its type and pos ('{"type":"orders","pos":"'
// and ~25 bytes per shard); a pos that does not end in it (hundreds of
// shards) is read from the whole text.
const HEAD_BYTES = 512;
const KINDS = ['trades', 'orders'];

function parseArgs(argv) {
    const o = { clients: 100, orders: 0, keys: '', symbols: '', url: '', threads: 2 };
    for (let i = 2; i + 1 < argv.length; i += 2) {
        const k = argv[i].replace(/^--/, '');
        if (!(k in o)) throw new Error(`feedclients: unknown option '${argv[i]}'`);
        o[k] = typeof o[k] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
    }
    o.symbols = o.symbols.split(',').filter(Boolean);
    o.keys = o.keys.split(',').filter(Boolean);
    if (!o.url || !o.symbols.length || !(o.clients >= 1) || !(o.orders >= 0) || o.orders > o.clients ||
        (o.orders > 0 && !o.keys.length) || !(o.threads >= 1)) {
        throw new Error('usage: feedclients.mjs --url WS_URL --clients N --symbols A,B ' +
            '[--orders K --keys KEY,KEY] [--threads T]');
    }
    return o;
}

// Latency and size figures of one kind of message.
function newStats() {
    return { hist: new Uint32Array(BUCKETS), timed: 0, untimed: 0, maxUs: 0, messages: 0, bytes: 0 };
}

// ---- a worker thread: its share of the connections --------------------------

function runWorker({ opt, ids, wsPath }) {
    const WebSocket = createRequire(wsPath)('ws');
    const originUs = performance.timeOrigin * 1000;
    const stats = { trades: newStats(), orders: newStats() };
    let errors = 0, disorder = 0, ready = 0, startUs = 0;
    const errorSamples = [];
    const closes = []; // {kind, code, reason, afterS, count}
    const conns = [];
    // how late this thread's event loop runs what is ready: when it is
    // late, the clients (not the feed) delay the messages
    const loopDelay = monitorEventLoopDelay({ resolution: 1 });

    // Parses "S:ms-seq,S:ms-seq" into [[shard, ms, seq], ...].
    const parsePos = (p) => p.split(',').map((part) => {
        const m = /^(\d+):(\d+)-(\d+)$/.exec(part);
        if (!m) throw new Error(`feedclients: bad pos part '${part}'`);
        return [Number(m[1]), Number(m[2]), Number(m[3])];
    });
    const after = (a, b) => a[1] > b[1] || (a[1] === b[1] && a[2] > b[2]);

    // What a message holds, item for item (the feed puts the trades or
    // reports of several fills entries in one message when it is busy):
    // every trade has one "fill_id", every report one "report_id".
    const FILL_ID = Buffer.from('"fill_id"'), REPORT_ID = Buffer.from('"report_id"');
    function items(data, key) {
        let n = 0;
        for (let at = data.indexOf(key); at >= 0; at = data.indexOf(key, at + key.length)) n++;
        return n;
    }

    function onData(c, data) {
        const nowUs = originUs + performance.now() * 1000;
        // '{"type":"trades",' or '{"type":"orders",': byte 9 starts the type
        const live = data.length > 20 && data[0] === 0x7b && (data[9] === 0x74 || data[9] === 0x6f) &&
            (data.toString('latin1', 9, 16) === 'trades"' || data.toString('latin1', 9, 16) === 'orders"');
        if (!live) return onControl(c, JSON.parse(data.toString('utf8')));
        let head = data.toString('latin1', 0, Math.min(data.length, HEAD_BYTES));
        let at = head.indexOf('"pos":"');
        let end = at < 0 ? -1 : head.indexOf('"', at + 7);
        if (end < 0) {
            head = data.toString('latin1');
            at = head.indexOf('"pos":"');
            end = head.indexOf('"', at + 7);
        }
        const pos = parsePos(head.slice(at + 7, end));
        // the entry this message comes from: a trades pos names one shard,
        // an orders pos all of them, and the one that moved is the entry's
        let entry = null, moved = 0;
        for (const p of pos) {
            const prev = c.last.get(p[0]);
            if (!prev || after(p, prev)) {
                moved++;
                entry = p;
            } else if (p[1] !== prev[1] || p[2] !== prev[2]) {
                disorder++; // went back
            }
            c.last.set(p[0], p);
        }
        if (!moved) {
            disorder++; // nothing moved: a duplicate
            return;
        }
        c.count += items(data, c.kind === 'trades' ? FILL_ID : REPORT_ID);
        if (!startUs) return;
        const s = stats[c.kind];
        s.messages++;
        s.bytes += data.length;
        if (moved > 1) {
            s.untimed++;
            return;
        }
        s.timed++;
        let us = nowUs - entry[1] * 1000;
        if (us < 0) us = 0;
        if (us > s.maxUs) s.maxUs = us;
        const b = Math.floor(us / BUCKET_US);
        s.hist[b < BUCKETS ? b : BUCKETS - 1]++;
    }

    function onControl(c, m) {
        if (m.type === 'authed') {
            c.account = m.account;
            c.ws.send(JSON.stringify({ op: 'subscribe', channel: 'orders' }));
        } else if (m.type === 'subscribed') {
            for (const p of parsePos(m.pos)) c.last.set(p[0], p);
            c.subscribed = true;
            if (++ready === conns.length) parentPort.postMessage({ ready });
        } else if (m.type === 'error') {
            errors++;
            if (errorSamples.length < 5) errorSamples.push(JSON.stringify(m));
        }
    }

    let next = 0, connecting = 0;
    function connectMore() {
        while (connecting < CONNECTING_MAX && next < ids.length) {
            const i = ids[next++];
            const c = {
                i, ws: null, last: new Map(), count: 0, subscribed: false, closed: false, account: '',
                kind: i < opt.orders ? 'orders' : 'trades',
                key: i < opt.orders ? opt.keys[i % opt.keys.length] : null,
                symbol: opt.symbols[(i - opt.orders) % opt.symbols.length],
            };
            conns.push(c);
            connecting++;
            const ws = new WebSocket(opt.url, { perMessageDeflate: false, skipUTF8Validation: true });
            c.ws = ws;
            ws.on('open', () => {
                connecting--;
                if (c.kind === 'orders') ws.send(JSON.stringify({ op: 'auth', key: c.key }));
                else ws.send(JSON.stringify({ op: 'subscribe', channel: 'trades', symbol: c.symbol }));
                connectMore();
            });
            ws.on('message', (data) => onData(c, data));
            ws.on('close', (code, reason) => {
                if (!c.subscribed) {
                    console.error(`feedclients: connection ${i} closed before it subscribed: ${code} ${reason}`);
                    process.exit(1);
                }
                const nowUs = originUs + performance.now() * 1000;
                c.closed = true;
                closes.push({
                    kind: c.kind, code, reason: String(reason), count: c.count,
                    afterS: startUs ? (nowUs - startUs) / 1e6 : 0,
                });
            });
            ws.on('error', (e) => {
                if (!c.subscribed) {
                    console.error(`feedclients: connection ${i}: ${e.message}`);
                    process.exit(1);
                }
            });
        }
    }

    parentPort.on('message', (m) => {
        if (m === 'start') {
            startUs = originUs + performance.now() * 1000;
            loopDelay.enable();
            return;
        }
        loopDelay.disable();
        // 'stop': counts per subscription, then the histograms (moved, not copied)
        const per = conns.filter((c) => !c.closed)
            .map((c) => ({ kind: c.kind, name: c.kind === 'orders' ? c.account : c.symbol, count: c.count }));
        const loop = { p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 };
        parentPort.postMessage({ done: { stats, errors, disorder, errorSamples, closes, per, loop } },
            KINDS.map((k) => stats[k].hist.buffer));
    });
    connectMore();
}

// ---- the main thread: workers, then the summary --------------------------------

function pct(hist, total, q) {
    const want = Math.floor(total * q);
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
        seen += hist[b];
        if (seen > want) return (b * BUCKET_US) / 1000;
    }
    return (BUCKETS * BUCKET_US) / 1000;
}

function runMain() {
    const opt = parseArgs(process.argv);
    const wsPath = new URL('../../tests/js/package.json', import.meta.url).pathname;
    const threads = Math.min(opt.threads, opt.clients);
    const workers = [];
    let ready = 0, done = 0;
    const results = [];
    for (let t = 0; t < threads; t++) {
        const ids = [];
        for (let i = t; i < opt.clients; i += threads) ids.push(i);
        const w = new Worker(new URL(import.meta.url), { workerData: { opt, ids, wsPath } });
        w.on('error', (e) => {
            console.error(`feedclients: thread ${t}: ${e.stack || e}`);
            process.exit(1);
        });
        w.on('message', (m) => {
            if (m.ready !== undefined) {
                ready += m.ready;
                if (ready === opt.clients) {
                    for (const x of workers) x.postMessage('start');
                    console.log(`feedclients: ready ${ready}`);
                }
            } else if (m.done) {
                results.push(m.done);
                if (++done === threads) summary(results);
            }
        });
        workers.push(w);
    }
    process.on('SIGTERM', () => {
        for (const w of workers) w.postMessage('stop');
    });
    process.on('SIGINT', () => process.exit(130));
}

function summary(results) {
    const all = newStats();
    const kinds = { trades: newStats(), orders: newStats() };
    let errors = 0, disorder = 0;
    const samples = [], closes = [];
    const counts = { trades: new Map(), orders: new Map() };
    for (const r of results) {
        for (const k of KINDS) {
            const from = r.stats[k];
            for (const to of [kinds[k], all]) {
                for (let b = 0; b < BUCKETS; b++) to.hist[b] += from.hist[b];
                to.timed += from.timed;
                to.untimed += from.untimed;
                to.messages += from.messages;
                to.bytes += from.bytes;
                to.maxUs = Math.max(to.maxUs, from.maxUs);
            }
        }
        errors += r.errors;
        disorder += r.disorder;
        samples.push(...r.errorSamples);
        closes.push(...r.closes);
        for (const p of r.per) {
            const m = counts[p.kind];
            const mm = m.get(p.name) || [Infinity, -Infinity];
            m.set(p.name, [Math.min(mm[0], p.count), Math.max(mm[1], p.count)]);
        }
    }
    const f = (x) => x.toFixed(2);
    const lat = (s) => (s.timed ? `latency_ms p50 ${f(pct(s.hist, s.timed, 0.5))} p99 ${f(pct(s.hist, s.timed, 0.99))} ` +
        `p999 ${f(pct(s.hist, s.timed, 0.999))} max ${f(s.maxUs / 1000)}` : 'latency_ms p50 - p99 - p999 - max -');
    const mean = (s) => (s.messages ? Math.round(s.bytes / s.messages) : 0);
    console.log(`feedclients: all: messages ${all.messages} ${lat(all)}`);
    console.log(`feedclients: trades: messages ${kinds.trades.messages} bytes_mean ${mean(kinds.trades)} ${lat(kinds.trades)}`);
    console.log(`feedclients: orders: messages ${kinds.orders.messages} bytes_mean ${mean(kinds.orders)} ` +
        `${lat(kinds.orders)} untimed ${kinds.orders.untimed}`);
    const line = (m) => [...m].map(([k, [lo, hi]]) => `${k} ${lo} ${hi}`).join(' ');
    console.log(`feedclients: trades per open subscriber: ${line(counts.trades)}`);
    console.log(`feedclients: orders per open subscriber: ${line(counts.orders)}`);
    const lp = results.map((r) => r.loop);
    console.log(`feedclients: event loop delay ms (per thread) p99 ${lp.map((l) => f(l.p99)).join(' ')} ` +
        `max ${lp.map((l) => f(l.max)).join(' ')}`);
    const nk = (k) => closes.filter((c) => c.kind === k).length;
    console.log(`feedclients: closed ${closes.length} trades ${nk('trades')} orders ${nk('orders')} ` +
        `errors ${errors} disorder ${disorder}`);
    // one line per close reason and kind: when (from the start), after how many messages
    const groups = new Map();
    for (const c of closes) {
        const k = `${c.code} ${c.reason}: ${c.kind}`;
        if (!groups.has(k)) groups.set(k, []);
        groups.get(k).push(c);
    }
    for (const [k, g] of groups) {
        const t = g.map((c) => c.afterS).sort((a, b) => a - b);
        const n = g.map((c) => c.count).sort((a, b) => a - b);
        console.log(`feedclients: close: ${k} x${g.length} after ${t[0].toFixed(1)}..${t[t.length - 1].toFixed(1)} s ` +
            `(median ${t[t.length >> 1].toFixed(1)} s, after ${n[0]}..${n[n.length - 1]} messages)`);
    }
    for (const s of samples.slice(0, 5)) console.log(`feedclients: error: ${s}`);
    process.exit(0);
}

if (isMainThread) runMain();
else runWorker(workerData);
