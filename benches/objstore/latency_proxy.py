#!/usr/bin/env python3
"""A TCP proxy that adds a fixed delay before forwarding each request, for benchmarks that need an
object store's latency (tens of milliseconds on S3) in front of a local server that answers in one
or two. Every chunk a client sends after a pause (a new HTTP request on a kept-alive connection) is
held DELAY_MS before it is forwarded; responses pass straight through.

With COUNT_FILE, it also counts the bytes the upstream sends to clients (response heads and bodies)
and keeps the running total in that file, rewritten every 50 ms: a byte count that holds for any
client, whatever its own counters say (benches/objstore/mosaic.py compares downloads this way).

Usage: latency_proxy.py LISTEN_PORT UPSTREAM_HOST:PORT DELAY_MS [COUNT_FILE]   (runs until killed)
"""

import os
import socket
import sys
import threading
import time

downloaded = 0
downloaded_lock = threading.Lock()


def pipe(src, dst, delay, count=False):
    global downloaded
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            if delay:
                time.sleep(delay)
            if count:
                with downloaded_lock:
                    downloaded += len(data)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def keep_count(path):
    while True:
        with downloaded_lock:
            total = downloaded
        with open(path + ".tmp", "w") as f:
            f.write(str(total))
        os.replace(path + ".tmp", path)
        time.sleep(0.05)


def main():
    port, upstream, delay_ms = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    count_file = sys.argv[4] if len(sys.argv) > 4 else None
    if count_file:
        threading.Thread(target=keep_count, args=(count_file,), daemon=True).start()
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
        threading.Thread(
            target=pipe, args=(server, client, 0, count_file is not None), daemon=True
        ).start()


if __name__ == "__main__":
    main()
