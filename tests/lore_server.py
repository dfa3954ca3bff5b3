"""A public-inbox-like server on 127.0.0.1 for the msgid tests: /all/<msgid>/t.mbox.gz."""

from __future__ import annotations

import gzip
import http.server
import threading
import time
from typing import Callable, Dict, List


class LocalLore:
    """Serves gzipped thread mboxes by message-id; records the paths asked for."""

    def __init__(self) -> None:
        threads: Dict[str, bytes] = {}
        raw: Dict[str, Callable] = {}
        requests: List[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                requests.append(self.path)
                if self.path in raw:
                    raw[self.path](self)
                    return
                payload = threads.get(self.path)
                if payload is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/gzip")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.threads, self.raw, self.requests = threads, raw, requests
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/all"

    def serve(self, msgid: str, mbox: bytes) -> None:
        self.threads[f"/all/{msgid}/t.mbox.gz"] = gzip.compress(mbox)

    def serve_raw(self, msgid: str, answer: Callable) -> None:
        """answer(handler) writes the reply itself: a stall, a trickle, a gzip bomb."""
        self.raw[f"/all/{msgid}/t.mbox.gz"] = answer

    def serve_bytes(self, msgid: str, answer: bytes, pause_s: float = 0.0,
                    chunk: int = 1 << 16) -> None:
        """answer as it is on the wire, no HTTP framing of ours (garbage, a bad status line,
        broken chunks); pause_s between chunks of `chunk` bytes makes it a trickle."""
        def write(handler):
            handler.close_connection = True
            try:
                for i in range(0, len(answer), chunk):
                    handler.wfile.write(answer[i:i + chunk])
                    handler.wfile.flush()
                    if pause_s:
                        time.sleep(pause_s)
            except (BrokenPipeError, ConnectionResetError):
                pass        # zstest hung up (its deadline, a parse error): expected
        self.serve_raw(msgid, write)

    def __enter__(self) -> "LocalLore":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
