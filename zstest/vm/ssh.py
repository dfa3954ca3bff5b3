"""SSH to the guest with paramiko: pinned host key, per-run client key.

The host key comes with the image (generated per image); anything else is
refused (RejectPolicy: an unknown key is never added). The client key is a fresh
Ed25519 key per run, given to the guest on the kernel command line.
"""

from __future__ import annotations

import io
import socket
import time
from dataclasses import dataclass
from typing import Callable, Optional

import paramiko

from ..errors import EXIT_TEST_FAILED, BootFailed, ZstestError


@dataclass
class SSHResult:
    exit_status: int
    stdout: str
    stderr: str
    duration_s: float
    oom_kill: str = ""        # the kernel's "Killed process" line when the OOM killer ended it
    dropped_bytes: int = 0    # output before the kept tails (Guest.run's on_output saw it)

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class GuestCommandTimeout(ZstestError):
    """A command in the guest did not finish in time; carries what it printed."""
    exit_code = EXIT_TEST_FAILED

    def __init__(self, command: str, timeout: float, stdout: str, stderr: str):
        super().__init__(f"the guest command `{command}` did not finish within {timeout:g} s.",
                         detail=(stdout + stderr)[-4000:])
        self.command, self.timeout, self.stdout, self.stderr = command, timeout, stdout, stderr


class GuestCommandFailed(ZstestError):
    exit_code = EXIT_TEST_FAILED

    def __init__(self, command: str, result: SSHResult):
        super().__init__(f"the guest command `{command}` exited with {result.exit_status}.",
                         detail=(result.stdout + result.stderr)[-4000:])
        self.command, self.result = command, result


class GuestLost(BootFailed):
    """The SSH connection dropped or the guest died; carries the console tail."""

    def __init__(self, message: str, console_tail: str = "", panicked: bool = False):
        super().__init__(message, detail=console_tail)
        self.console_tail = console_tail
        self.panicked = panicked


class KernelCrashed(GuestLost):
    """The guest kernel logged a fatal report (oops, BUG, soft lockup...): the kernel is to
    blame, so it is a failed test (exit 1), and no more work goes to that guest."""
    exit_code = EXIT_TEST_FAILED

    def __init__(self, message: str, kind: str, title: str, console_tail: str = "",
                 panicked: bool = False):
        super().__init__(message, console_tail=console_tail, panicked=panicked)
        self.kind, self.title = kind, title


@dataclass
class ClientKey:
    key: paramiko.PKey
    public_line: str          # "ssh-ed25519 AAAA..."


def new_client_key() -> ClientKey:
    """A fresh Ed25519 key (paramiko cannot generate one itself; cryptography can)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
    return ClientKey(paramiko.Ed25519Key.from_private_key(io.StringIO(pem)), public.strip())


class SSHSession:
    def __init__(self, port: int, host_key_pub: str, client_key: ClientKey,
                 host: str = "127.0.0.1", user: str = "root"):
        self.host, self.port, self.user = host, port, user
        self.host_key_pub = host_key_pub
        self.client_key = client_key
        self.client: Optional[paramiko.SSHClient] = None

    def _new_client(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        key_type, key_b64 = self.host_key_pub.split()[:2]
        pinned = paramiko.PKey.from_type_string(key_type, __import__("base64").b64decode(key_b64))
        client.get_host_keys().add(f"[{self.host}]:{self.port}", key_type, pinned)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        return client

    def connect(self, deadline: float, stop: Callable[[], Optional[str]]) -> None:
        """Retry until connected or the monotonic deadline; stop() returns a reason to give up."""
        last = "no attempt made"
        while True:
            why = stop()
            if why:
                raise BootFailed(why)
            left = deadline - time.monotonic()
            if left <= 0:
                raise BootFailed(f"SSH to the guest did not succeed before the deadline ({last}).")
            client = self._new_client()
            try:
                client.connect(self.host, self.port, username=self.user, pkey=self.client_key.key,
                               timeout=min(5.0, max(left, 0.5)), banner_timeout=min(10.0, left + 1),
                               auth_timeout=min(10.0, left + 1), allow_agent=False,
                               look_for_keys=False)
                client.get_transport().set_keepalive(5)
                self.client = client
                return
            except paramiko.BadHostKeyException as exc:
                client.close()
                raise BootFailed(f"the guest's SSH host key changed: it offered "
                                 f"{exc.key.get_name()} {exc.key.fingerprint}, the image pins "
                                 f"{exc.expected_key.fingerprint}; refusing to connect")
            except (paramiko.SSHException, socket.error, EOFError) as exc:
                client.close()
                last = f"{type(exc).__name__}: {exc}"
                time.sleep(0.1)

    @property
    def alive(self) -> bool:
        t = self.client.get_transport() if self.client else None
        return bool(t and t.is_active())

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
