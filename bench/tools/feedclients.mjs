// WebSocket clients of the feed for bench/feed.sh: N connections, match -> client latency per message.
//
//   node bench/tools/feedclients.mjs --url ws://127.0.0.1:P/ws --clients N
//        --symbols AAPL,MSFT,... [--orders K --keys dev-key-alice,dev-key-bob] [--threads T]
//
// Opens N connections to the feed (the `ws` package of tests/js, installed by
// ops/install-deps.sh), spread over T worker threads (default 2: one Node.js
// thread cannot read 1,000 sockets' messages without becoming the latency it
// measures). K of them authenticate with the keys in turn and subscribe to
// `orders`; the others subscribe to `trades` of one symbol each, round robin
// over the symbols. Once every connection is subscribed it prints
//   feedclients: ready N
// and measures until SIGTERM, then prints (and exits 0):
//   feedclients: messages M latency_ms p50 X p99 X p999 X max X
//   feedclients: trades per subscriber: AAPL 812 812 MSFT 790 790 ...   (min max per symbol)
//   feedclients: orders per subscriber: alice 3011 3011 ...               (min max per account)
//   feedclients: closed C errors E disorder D
//
// A message's latency is the wall clock when the client got it
// (performance.timeOrigin + performance.now(), µs resolution), taken first
// thing in the handler, minus the ms part of the fills entry id in its `pos`
// (the Redis clock when the matcher published the entry). The id has ms
// resolution, so this over-states by 0-1 ms. For `orders` the entry is the
// shard part of `pos` that moved since the previous message. `disorder`
// counts messages whose entry is not after the previous one of its
// subscription (a duplicate or a reordering); `closed`, connections the feed
// closed after they were subscribed; `errors`, error messages received.
// Only the head of a message is decoded (its type and pos), as a client that
// routes messages would; the rest is not parsed.

import { createRequire } from 'node:module';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';

// Why 10 µs x 1,000,000: exact to 10 µs up to 10 s, 4 MB per thread.
const BUCKET_US = 10;
const BUCKETS = 1000000;
// Why 64: handshakes in flight per thread; a burst of 1,000 SYNs at once
// could overflow the listen backlog and cost seconds of SYN retries.
const CONNECTING_MAX = 64;
// The head of a message holds its type and pos: 64 bytes of type and
// symbol, 1024 shards' "S:ms-seq," at most ~41 bytes each would be more,
// hence a fallback to the whole text when pos does not end in the head.
const HEAD_BYTES = 512;

function parseArgs(argv) {
    const o = { clients: 100, orders: 0, keys: '', symbols: '', url: '', threads: 2 };
    for (let i = 2; i + 1 < argv.length; i += 2) {
        const k = argv[i].replace(/^--/, '');
        if (!(k in o)) throw new Error(`feedclients: unknown option '${argv[i]}'`);
        o[k] = typeof o[k] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
    }
    o.symbols = o.symbols.split(',').filter(Boolean);
    o.keys = o.keys.split(',').filter(Boolean);
    if (!o.url || !o.symbols.length || !(o.clients >= 1) || o.orders > o.clients ||
        (o.orders > 0 && !o.keys.length) || !(o.threads >= 1)) {
        throw new Error('usage: feedclients.mjs --url WS_URL --clients N --symbols A,B ' +
            '[--orders K --keys KEY,KEY] [--threads T]');
    }
    return o;
}

// ---- a worker thread: its share of the connections --------------------------

function runWorker({ opt, ids, wsPath }) {
    const WebSocket = createRequire(wsPath)('ws');
    const hist = new Uint32Array(BUCKETS);
    const originUs = performance.timeOrigin * 1000;
    let messages = 0, untimed = 0, maxUs = 0, closed = 0, errors = 0, disorder = 0, ready = 0, measuring = false;
    const errorSamples = [];
    const conns = [];

    // Parses "S:ms-seq,S:ms-seq" into [[shard, ms, seq], ...].
    const parsePos = (p) => p.split(',').map((part) => {
        const m = /^(\d+):(\d+)-(\d+)$/.exec(part);
        if (!m) throw new Error(`feedclients: bad pos part '${part}'`);
        return [Number(m[1]), Number(m[2]), Number(m[3])];
    });
    const after = (a, b) => a[1] > b[1] || (a[1] === b[1] && a[2] > b[2]);

    function onData(c, data) {
        const nowUs = originUs + performance.now() * 1000;
        // '{"type":"trades",' or '{"type":"orders",': the 11th byte tells
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
        // the entry this message comes from: trades name one shard; orders
        // name all of them, and the one that moved is the entry's
        // name all of them, and the one that moved is the entry's. Several
        // move when entries that did not concern the account came between:
        // which one this message is from is then unknown (not timed).
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
        c.count++;
        if (!measuring) return;
        if (moved > 1) {
            untimed++;
            return;
        }
        messages++;
        let us = nowUs - entry[1] * 1000;
        if (us < 0) us = 0;
        if (us > maxUs) maxUs = us;
        const b = Math.floor(us / BUCKET_US);
        hist[b < BUCKETS ? b : BUCKETS - 1]++;
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
                i, ws: null, last: new Map(), count: 0, subscribed: false, account: '',
                kind: i < opt.orders ? 'orders' : 'trades',
                key: i < opt.orders ? opt.keys[i % opt.keys.length] : null,
                symbol: opt.symbols[(i - opt.orders) % opt.symbols.length],
            };
            conns.push(c);
            connecting++;
            const ws = new WebSocket(opt.url, { perMessageDeflate: false });
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
                closed++;
                if (errorSamples.length < 5) errorSamples.push(`close ${code} ${reason}`);
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
            measuring = true;
            return;
        }
        // 'stop': counts per subscription, then the histogram (moved, not copied)
        const per = conns.map((c) => ({ kind: c.kind, name: c.kind === 'orders' ? c.account : c.symbol, count: c.count }));
        parentPort.postMessage({ done: { messages, untimed, maxUs, closed, errors, disorder, errorSamples, per, hist } },
            [hist.buffer]);
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
                if (++done === threads) summary(opt, results);
            }
        });
        workers.push(w);
    }
    process.on('SIGTERM', () => {
        for (const w of workers) w.postMessage('stop');
    });
    process.on('SIGINT', () => process.exit(130));
}

function summary(opt, results) {
    const hist = new Uint32Array(BUCKETS);
    let messages = 0, untimed = 0, maxUs = 0, closed = 0, errors = 0, disorder = 0;
    const samples = [];
    const counts = { trades: new Map(), orders: new Map() };
    for (const r of results) {
        for (let b = 0; b < BUCKETS; b++) hist[b] += r.hist[b];
        messages += r.messages;
        untimed += r.untimed;
        maxUs = Math.max(maxUs, r.maxUs);
        closed += r.closed;
        errors += r.errors;
        disorder += r.disorder;
        samples.push(...r.errorSamples);
        for (const p of r.per) {
            const m = counts[p.kind];
            const mm = m.get(p.name) || [Infinity, -Infinity];
            m.set(p.name, [Math.min(mm[0], p.count), Math.max(mm[1], p.count)]);
        }
    }
    const f = (x) => x.toFixed(2);
    console.log(`feedclients: messages ${messages} latency_ms p50 ${f(pct(hist, messages, 0.5))} ` +
        `p99 ${f(pct(hist, messages, 0.99))} p999 ${f(pct(hist, messages, 0.999))} max ${f(maxUs / 1000)} ` +
        `untimed ${untimed}`);
    const line = (m) => [...m].map(([k, [lo, hi]]) => `${k} ${lo} ${hi}`).join(' ');
    console.log(`feedclients: trades per subscriber: ${line(counts.trades)}`);
    console.log(`feedclients: orders per subscriber: ${line(counts.orders)}`);
    console.log(`feedclients: closed ${closed} errors ${errors} disorder ${disorder}`);
    for (const s of samples.slice(0, 5)) console.log(`feedclients: sample: ${s}`);
    process.exit(0);
}

if (isMainThread) runMain();
else runWorker(workerData);
