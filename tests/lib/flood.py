#!/usr/bin/env python3
"""Connection abuse against ingest, with a normal client measuring service.

    flood.py flood PORT SECONDS PER_ADDR ADDR[,ADDR...]
    flood.py slow PORT ADDR SECONDS
    flood.py perip PORT ADDR COUNT

flood: from each ADDR (loopback aliases such as 127.0.0.2, bound before
connect so that a per-address cap does not touch 127.0.0.1) keeps PER_ADDR
connections open for SECONDS: half slowloris (a request whose headers never
end, one byte per second), half idle (nothing sent). A connection the server
closes is reopened one second later. Meanwhile two normal clients on
127.0.0.1 POST orders: one opens a connection per request, one reuses a
keep-alive connection; a request not answered within 5 s (a generous bound
for one order on loopback) counts as an error, like a refused connection. One more slowloris and one idle connection from
127.0.0.9 record whether the server closed them. Prints key=value lines:

    normal_requests=N normal_202=N normal_other=N normal_errors=N
    flood_opened=N flood_closed_by_server=N
    probe_slow_closed=0|1 probe_idle_closed=0|1

slow: opens one slowloris and one idle connection from ADDR and waits up to
SECONDS for the server to close them; prints slow_closed=0|1, idle_closed=0|1.

perip: opens COUNT idle connections from ADDR at once, waits 0.5 s and prints
perip_open=N (how many the server kept) and perip_closed=N.

Only the standard library; exit status 0 unless the arguments are wrong.
"""
import errno
import http.client
import selectors
import socket
import sys
import threading
import time

ORDER = b'{"symbol":"AAPL","side":"buy","type":"limit","price":"10.00","qty":1}'
HEADERS = {"Authorization": "Bearer dev-key-alice", "Content-Type": "application/json"}
# Headers that never end: after the prefix, one 'a' per second forever.
SLOW_PREFIX = b"POST /v1/orders HTTP/1.1\r\nHost: ingest\r\nX-Slow: "


class Conn:
    def __init__(self, addr, slow):
        self.addr = addr
        self.slow = slow
        self.sock = None
        self.sent = 0          # bytes of the slow request sent
        self.next_send = 0.0   # when the slow one sends its next byte
        self.reopen_at = 0.0   # when a closed one is reopened
        self.closed_by_server = False


def open_conn(sel, c, port, stats):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.bind((c.addr, 0))
        s.connect_ex(("127.0.0.1", port))
    except OSError:
        s.close()
        c.reopen_at = time.monotonic() + 1
        return
    c.sock = s
    c.sent = 0
    c.next_send = time.monotonic()
    sel.register(s, selectors.EVENT_READ, c)
    stats["flood_opened"] += 1


def close_conn(sel, c, stats):
    sel.unregister(c.sock)
    c.sock.close()
    c.sock = None
    c.closed_by_server = True
    c.reopen_at = time.monotonic() + 1
    stats["flood_closed_by_server"] += 1


def run_flood(port, seconds, conns, stats, stop):
    sel = selectors.DefaultSelector()
    for c in conns:
        open_conn(sel, c, port, stats)
    while not stop.is_set():
        for key, _ in sel.select(timeout=0.1):
            c = key.data
            try:
                data = c.sock.recv(4096)
            except OSError:
                data = b""
            if not data:
                close_conn(sel, c, stats)
        now = time.monotonic()
        for c in conns:
            if c.sock is None:
                if now >= c.reopen_at and c.addr not in ("127.0.0.9", "127.0.0.10"):
                    open_conn(sel, c, port, stats)
                continue
            if c.slow and now >= c.next_send:
                byte = SLOW_PREFIX[c.sent:c.sent + 1] or b"a"
                try:
                    c.sock.send(byte)
                    c.sent += 1
                except BlockingIOError:
                    pass
                except OSError as e:
                    if e.errno not in (errno.ENOTCONN,):
                        close_conn(sel, c, stats)
                        continue
                c.next_send = now + 1
    for c in conns:
        if c.sock is not None:
            sel.unregister(c.sock)
            c.sock.close()


def normal_client(port, keepalive, stats, lock, stop):
    conn = None
    while not stop.is_set():
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("POST", "/v1/orders", body=ORDER, headers=HEADERS)
            resp = conn.getresponse()
            resp.read()
            with lock:
                stats["normal_requests"] += 1
                stats["normal_202" if resp.status == 202 else "normal_other"] += 1
            if not keepalive or resp.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as e:
            with lock:
                stats["normal_requests"] += 1
                stats["normal_errors"] += 1
                if stats["normal_errors"] <= 5:
                    print("normal client error (keepalive=%s): %r" % (keepalive, e), file=sys.stderr)
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.05)
        time.sleep(0.005)
    if conn is not None:
        conn.close()


def flood(port, seconds, per_addr, addrs):
    stats = {k: 0 for k in ("normal_requests", "normal_202", "normal_other", "normal_errors",
                            "flood_opened", "flood_closed_by_server")}
    conns = [Conn(a, i % 2 == 0) for a in addrs for i in range(per_addr)]
    probes = [Conn("127.0.0.9", True), Conn("127.0.0.9", False)]
    stop = threading.Event()
    lock = threading.Lock()
    flooder = threading.Thread(target=run_flood, args=(port, seconds, probes + conns, stats, stop))
    flooder.start()
    time.sleep(2)  # let the flood fill the connection table first
    clients = [threading.Thread(target=normal_client, args=(port, ka, stats, lock, stop))
               for ka in (False, True)]
    for t in clients:
        t.start()
    time.sleep(max(seconds - 2, 1))
    stop.set()
    for t in clients + [flooder]:
        t.join()
    for k, v in stats.items():
        print("%s=%d" % (k, v))
    print("probe_slow_closed=%d" % probes[0].closed_by_server)
    print("probe_idle_closed=%d" % probes[1].closed_by_server)


def slow(port, addr, seconds):
    stats = {"flood_opened": 0, "flood_closed_by_server": 0}
    conns = [Conn(addr, True), Conn(addr, False)]
    stop = threading.Event()
    t = threading.Thread(target=run_flood, args=(port, seconds, conns, stats, stop))
    t.start()
    end = time.monotonic() + seconds
    while time.monotonic() < end and not all(c.closed_by_server for c in conns):
        time.sleep(0.1)
    stop.set()
    t.join()
    print("slow_closed=%d" % conns[0].closed_by_server)
    print("idle_closed=%d" % conns[1].closed_by_server)


def perip(port, addr, count):
    socks = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((addr, 0))
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            s.close()
            continue
        s.setblocking(False)
        socks.append(s)
    time.sleep(0.5)
    still = 0
    for s in socks:
        try:
            still += s.recv(1) != b""  # data would be odd; count it as open
        except BlockingIOError:
            still += 1
        except OSError:
            pass
        s.close()
    print("perip_open=%d" % still)
    print("perip_closed=%d" % (count - still))


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "flood":
        flood(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5].split(","))
    elif len(sys.argv) == 5 and sys.argv[1] == "slow":
        slow(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]))
    elif len(sys.argv) == 5 and sys.argv[1] == "perip":
        perip(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
