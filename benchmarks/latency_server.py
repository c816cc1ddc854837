"""A static file server on 127.0.0.1 that adds a fixed delay to every request.

It answers byte-range requests (sharded arrays need them) and counts requests and bytes
sent; GET /__stats__ returns those counts and a log of (path, start, end, status) as JSON
(not delayed, not counted). Run as a
script it prints its port on the first line of stdout and serves until killed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class _Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = self.bytes_sent = self.not_found = 0
        self.log: list[tuple[str, float, float, int]] = []  # path, start, end, status


class LatencyHandler(SimpleHTTPRequestHandler):
    """Serves files from ``directory`` after sleeping ``delay`` seconds per request."""

    # Keep connections open between requests, as real web servers and object stores do,
    # and send small writes at once: with keep-alive, Nagle's algorithm held each body
    # back until the client's delayed ACK, 40 ms per response.
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def __init__(self, *args, delay: float, stats: _Stats, **kwargs) -> None:
        self.delay = delay
        self.stats = stats
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args) -> None:
        """Stay quiet: one line per request would swamp the benchmark output."""

    def do_GET(self) -> None:
        if self.path == "/__stats__":
            self._send_stats()
            return
        began = time.time()
        time.sleep(self.delay)
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            with self.stats.lock:
                self.stats.requests += 1
                self.stats.not_found += 1
                self.stats.log.append((self.path, began, time.time(), 404))
            self.send_error(404)
            return
        with open(path, "rb") as f:
            body = f.read()
        status, body, extra = self._apply_range(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
        with self.stats.lock:
            self.stats.requests += 1
            self.stats.bytes_sent += len(body)
            self.stats.log.append((self.path, began, time.time(), status))

    def do_HEAD(self) -> None:
        time.sleep(self.delay)
        with self.stats.lock:
            self.stats.requests += 1
        super().do_HEAD()

    def _apply_range(self, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        match = _RANGE.match(self.headers.get("Range", ""))
        if not match:
            return 200, body, {}
        first, last = match.groups()
        size = len(body)
        if first == "":
            start, stop = max(size - int(last), 0), size
        else:
            start = int(first)
            stop = size if last == "" else min(int(last) + 1, size)
        return 206, body[start:stop], {"Content-Range": f"bytes {start}-{stop - 1}/{size}"}

    def _send_stats(self) -> None:
        with self.stats.lock:
            payload = json.dumps(
                {
                    "requests": self.stats.requests,
                    "bytes_sent": self.stats.bytes_sent,
                    "not_found": self.stats.not_found,
                    "log": self.stats.log,
                }
            ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    # socketserver's default listen backlog of 5 drops connections when a client opens
    # more at once; the kernel retries the dropped ones a second later.
    request_queue_size = 128
    daemon_threads = True


def make_server(directory: str, delay: float, port: int = 0) -> ThreadingHTTPServer:
    """A threading server for ``directory`` on 127.0.0.1 (port 0 picks a free port)."""
    handler = partial(LatencyHandler, delay=delay, stats=_Stats(), directory=directory)
    return _Server(("127.0.0.1", port), handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory")
    parser.add_argument("--delay", type=float, default=0.02, help="seconds added per request")
    args = parser.parse_args()
    server = make_server(args.directory, args.delay)
    print(server.server_address[1], flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
