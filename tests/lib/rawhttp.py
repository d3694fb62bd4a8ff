#!/usr/bin/env python3
"""Sends one raw HTTP request and reports the answer (for framing tests).

    rawhttp.py PORT REQUEST

REQUEST is a Python-escaped string (\\r, \\n, \\x00 ... are decoded), sent as
is to 127.0.0.1:PORT, so a test can write requests curl refuses to send: two
Content-Length headers, a NUL inside a header, Content-Length together with
Transfer-Encoding, no Host. Prints two lines:

    <status> <open|closed>
    <body>

status is "none" when the server answered nothing; "closed" means the server
closed the connection after its answer (read returned end of file within 3 s),
"open" that it kept it (keep-alive). Exit status 0 whenever it could connect.
"""
import codecs
import socket
import sys


def read_answer(sock):
    """Reads one HTTP/1.x response; returns (status, body, rest-was-eof)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return "none", data.decode("latin-1"), True
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ")[1] if " " in lines[0] else "none"
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return status, body.decode("latin-1"), True
        body += chunk
    return status, body[:length].decode("latin-1"), False


def main():
    port = int(sys.argv[1])
    request = codecs.decode(sys.argv[2], "unicode_escape").encode("latin-1")
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sock.sendall(request)
    except OSError:
        pass  # the server may close before reading everything
    try:
        status, body, eof = read_answer(sock)
    except (ConnectionResetError, socket.timeout):
        status, body, eof = "none", "", True
    if not eof:
        sock.settimeout(3)
        try:
            eof = sock.recv(1) == b""
        except socket.timeout:
            eof = False
        except ConnectionResetError:
            eof = True
    print(status, "closed" if eof else "open")
    print(body.replace("\n", " "))
    sock.close()


if __name__ == "__main__":
    main()
