#!/usr/bin/env python3
"""Smoke test of a sample server: smoke_test.py echo|http PROGRAM.

Starts PROGRAM, reads its 'listening on HOST:PORT' line, exchanges data with
it over a few connections, sends SIGTERM and expects exit status 0.
"""
import signal
import socket
import subprocess
import sys


def check_echo(addr):
    conns = [socket.create_connection(addr, timeout=10) for _ in range(5)]
    for i, c in enumerate(conns):
        for size in (1, 64, 100000):
            payload = bytes((i + j) % 256 for j in range(size))
            c.sendall(payload)
            got = b""
            while len(got) < size:
                chunk = c.recv(size - len(got))
                if not chunk:
                    raise SystemExit("echo: connection closed early")
                got += chunk
            if got != payload:
                raise SystemExit("echo: wrong bytes back")
    for c in conns:
        c.close()


def read_response(c, pending):
    while b"\r\n\r\n" not in pending:
        chunk = c.recv(4096)
        if not chunk:
            raise SystemExit("http: connection closed early")
        pending += chunk
    head, rest = pending.split(b"\r\n\r\n", 1)
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(rest) < length:
        rest += c.recv(4096)
    if not head.startswith(b"HTTP/1.1 200") or rest[:length] != b"Hello, world!\n":
        raise SystemExit(f"http: bad response {head!r} {rest!r}")
    return rest[length:]


def check_http(addr):
    c = socket.create_connection(addr, timeout=10)
    pending = b""
    for _ in range(3):  # keep-alive: three requests on one connection
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        pending = read_response(c, pending)
    c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    pending = read_response(c, pending)
    pending = read_response(c, pending)
    if c.recv(1) != b"":
        raise SystemExit("http: Connection: close did not close")
    c.close()


def main():
    kind, program = sys.argv[1], sys.argv[2]
    server = subprocess.Popen([program], stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise SystemExit(f"first line was {line!r}")
        host, port = line[len("listening on "):].rsplit(":", 1)
        addr = (host.strip("[]"), int(port))
        (check_echo if kind == "echo" else check_http)(addr)
        server.send_signal(signal.SIGTERM)
        status = server.wait(timeout=10)
        if status != 0:
            raise SystemExit(f"exit status {status} after SIGTERM")
    finally:
        if server.poll() is None:
            server.kill()
    print("ok")


if __name__ == "__main__":
    main()
