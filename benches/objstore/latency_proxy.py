#!/usr/bin/env python3
"""A TCP proxy that adds a fixed delay before forwarding each request, for benchmarks that need an
object store's latency (tens of milliseconds on S3) in front of a local server that answers in one
or two. Every chunk a client sends after a pause (a new HTTP request on a kept-alive connection) is
held DELAY_MS before it is forwarded; responses pass straight through.

Usage: latency_proxy.py LISTEN_PORT UPSTREAM_HOST:PORT DELAY_MS   (runs until killed)
"""

import socket
import sys
import threading
import time


def pipe(src, dst, delay):
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            if delay:
                time.sleep(delay)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main():
    port, upstream, delay_ms = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    host, upstream_port = upstream.rsplit(":", 1)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(256)
    while True:
        client, _ = listener.accept()
        server = socket.create_connection((host, int(upstream_port)))
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=pipe, args=(client, server, delay_ms / 1000), daemon=True).start()
        threading.Thread(target=pipe, args=(server, client, 0), daemon=True).start()


if __name__ == "__main__":
    main()
