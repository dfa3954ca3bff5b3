"""A minimal QMP client over QEMU's unix socket (device_add, query-*, quit)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path


class QMPError(Exception):
    pass


class QMPClient:
    def __init__(self, path: Path, timeout: float = 10.0):
        self.path = Path(path)
        self.timeout = timeout
        self.sock = None
        self.buf = b""
        self.events = []

    def connect(self, deadline_s: float = 5.0) -> "QMPClient":
        end = time.monotonic() + deadline_s
        while True:
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                sock.connect(str(self.path))
                break
            except OSError:
                sock.close()
                if time.monotonic() > end:
                    raise QMPError(f"QMP socket {self.path} did not accept a connection")
                time.sleep(0.05)
        self.sock = sock
        self._read_message()          # the greeting
        self.execute("qmp_capabilities")
        return self

    def _read_message(self) -> dict:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise QMPError("QMP connection closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)

    def execute(self, command: str, **arguments) -> dict:
        if self.sock is None:
            self.connect()
        msg = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read_message()
            if "event" in reply:
                self.events.append(reply)
                continue
            if "error" in reply:
                err = reply["error"]
                raise QMPError(f"QMP {command} failed: {err.get('class')}: {err.get('desc')}")
            return reply.get("return", {})

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
