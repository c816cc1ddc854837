"""Real HTTP servers on localhost for the tests that read stores remotely.

`serve` serves a folder as it is. `serve_faults` serves it through a
`FaultPlan`: per-request latency, and faults matched by path (an HTTP status,
a hang, a truncated body, a reset connection, a body trickling in byte by
byte), each applied a bounded number of times per path, so tests can say
"every chunk fails once with 503". Every wait of the server is bounded and
ends when the server stops, so no test leaves a thread behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import functools
import http.server
import socket
import socketserver
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from napari_omezarr_x.storage import configure_remote, remote_settings

#: Longest a hang or a trickle lasts (the server's own bound; tests stop it sooner).
MAX_HOLD = 20.0
FAULTS = ("hang", "truncate", "reset", "trickle")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Static files without request logging on stderr."""

    listable = True
    #: When a list, the path of every request is appended to it (thread-safe append).
    requests: list[str] | None = None

    def do_GET(self) -> None:
        """Serve a file, recording the request when asked to."""
        if self.requests is not None:
            self.requests.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""

    def list_directory(self, path: str):  # type: ignore[override]
        """Folder listings only when asked for: object stores have none."""
        if self.listable:
            return super().list_directory(path)
        self.send_error(404, "no listing")
        return None


class _Server(http.server.ThreadingHTTPServer):
    # Python's default listen backlog of 5 drops connections when a client opens
    # many at once (the reader fetches documents side by side), which no real
    # server does: the dropped ones wait a second for the retransmission.
    request_queue_size = 128
    daemon_threads = True

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup (slow on some machines)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


@contextlib.contextmanager
def serve(
    folder: Path,
    *,
    listable: bool = True,
    handler: type[QuietHandler] = QuietHandler,
    requests: list[str] | None = None,
) -> Iterator[str]:
    """Serve `folder` on a free localhost port; yield the base URL.

    `requests`, when given, receives the path of every GET request.
    """
    attrs = {"listable": listable, "requests": requests}
    handler_class = type(handler.__name__, (handler,), attrs)
    server = _Server(("127.0.0.1", 0), functools.partial(handler_class, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@dataclasses.dataclass
class Fault:
    """`action` (an HTTP status or one of FAULTS) for paths matching `pattern`.

    Applied to the first `times` requests of each matching path (None: all).
    """

    pattern: str
    action: int | str
    times: int | None = 1


class FaultPlan:
    """What the fault server does, and what it saw (thread-safe)."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        self.log: list[tuple[str, str, float]] = []  # path, what was done, time
        self.inflight = 0
        self.max_inflight = 0
        self.stop = threading.Event()
        self._applied: Counter[tuple[int, str]] = Counter()

    def add(self, pattern: str, action: int | str, times: int | None = 1) -> FaultPlan:
        """Add a fault; returns the plan for chaining."""
        if isinstance(action, str) and action not in FAULTS:
            raise ValueError(f"unknown fault {action!r}")
        self.faults.append(Fault(pattern, action, times))
        return self

    def pick(self, path: str) -> int | str | None:
        with self.lock:
            for index, fault in enumerate(self.faults):
                if fnmatch.fnmatch(path, fault.pattern):
                    done = self._applied[(index, path)]
                    if fault.times is None or done < fault.times:
                        self._applied[(index, path)] += 1
                        return fault.action
        return None

    def requests(self, pattern: str = "*") -> list[str]:
        """Paths requested so far that match `pattern`, in order."""
        with self.lock:
            return [p for p, _, _ in self.log if fnmatch.fnmatch(p, pattern)]


class FaultHandler(QuietHandler):
    """Static files, slowed down and broken as the class's `plan` says."""

    plan: FaultPlan

    def do_GET(self) -> None:
        plan = self.plan
        path = self.path.split("?", 1)[0]
        action = plan.pick(path)
        with plan.lock:
            plan.log.append((path, str(action or "ok"), time.monotonic()))
            plan.inflight += 1
            plan.max_inflight = max(plan.max_inflight, plan.inflight)
        try:
            if plan.delay:
                plan.stop.wait(plan.delay)
            if action is None:
                super().do_GET()
            elif isinstance(action, int):
                self.send_response(action)
                if action in (429, 503):
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                getattr(self, f"_{action}")(Path(self.translate_path(path)))
        finally:
            with plan.lock:
                plan.inflight -= 1

    def _start(self, file: Path) -> bytes:
        """Send a 200 with the file's full length; return the body to send."""
        body = file.read_bytes() if file.is_file() else b"x" * 64
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return body

    def _hang(self, file: Path) -> None:
        self.plan.stop.wait(MAX_HOLD)
        self.close_connection = True

    def _truncate(self, file: Path) -> None:
        body = self._start(file)
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True

    def _reset(self, file: Path) -> None:
        # SO_LINGER 0: closing sends a TCP reset instead of a clean end.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _trickle(self, file: Path) -> None:
        body = self._start(file)
        ends = time.monotonic() + MAX_HOLD
        for byte in body:
            if self.plan.stop.wait(0.05) or time.monotonic() > ends:
                break
            try:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            except OSError:
                break
        self.close_connection = True


@contextlib.contextmanager
def serve_faults(folder: Path, *, listable: bool = False) -> Iterator[tuple[str, FaultPlan]]:
    """Serve `folder` through a fresh FaultPlan; yield (base URL, plan)."""
    plan = FaultPlan()
    handler = type("PlannedHandler", (FaultHandler,), {"plan": plan})
    with serve(folder, listable=listable, handler=handler) as url:
        try:
            yield url, plan
        finally:
            plan.stop.set()  # ends hangs and trickles before the server shuts down


@contextlib.contextmanager
def remote_options(**changes: Any) -> Iterator[None]:
    """Remote settings changed for the stores opened inside the block (tests keep them short)."""
    before = remote_settings()
    configure_remote(**changes)
    try:
        yield
    finally:
        configure_remote(**dataclasses.asdict(before))
