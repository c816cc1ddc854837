"""A real HTTP server on localhost for the tests that read stores remotely."""

from __future__ import annotations

import contextlib
import functools
import http.server
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Static files without request logging on stderr."""

    listable = True

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""

    def list_directory(self, path: str):  # type: ignore[override]
        """Folder listings only when asked for: object stores have none."""
        if self.listable:
            return super().list_directory(path)
        self.send_error(404, "no listing")
        return None


class _Server(http.server.ThreadingHTTPServer):
    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup (slow on some machines)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


@contextlib.contextmanager
def serve(
    folder: Path, *, listable: bool = True, handler: type[QuietHandler] = QuietHandler
) -> Iterator[str]:
    """Serve `folder` on a free localhost port; yield the base URL."""
    handler_class = type(handler.__name__, (handler,), {"listable": listable})
    server = _Server(("127.0.0.1", 0), functools.partial(handler_class, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
