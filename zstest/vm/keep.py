"""--keep-vm-on-failure: a failed run's guest stays up for a person, reached with the system's
ssh (a fresh key authorized in the guest, the image's host key pinned in a known_hosts file),
while zstest holds it in the foreground until Ctrl-C or until QEMU exits.

zstest stays the guest's only owner: QEMU dies with it (PDEATHSIG), so no guest outlives the
command that started it.
"""

from __future__ import annotations

import os
import shlex
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List

from ..errors import BootFailed, ZstestError

# How long the guest may take to accept the new key before it counts as unreachable.
AUTHORIZE_TIMEOUT_S = 15.0
KEEP_BANNER = "zstest: guest kept for debugging (--keep-vm-on-failure); the run has ended"


class GuestUnreachable(BootFailed):
    """The guest does not take a command over SSH any more: there is nothing to hand over."""


@dataclass
class KeptGuest:
    guest: object                 # vm.guest.Guest
    key_path: Path                # the private key the printed ssh command uses
    known_hosts: Path             # the image's pinned host key for 127.0.0.1:PORT
    ssh_argv: List[str]

    @property
    def qemu_pid(self) -> int:
        return self.guest.pid

    def remove_key(self) -> None:
        for path in (self.key_path, self.known_hosts):
            try:
                path.unlink()
            except FileNotFoundError:
                pass


def open_for_ssh(guest, keydir: Path) -> KeptGuest:
    """Authorize a fresh key in the guest and write what the system's ssh needs to log in;
    GuestUnreachable when the guest no longer answers (QEMU gone, sshd dead, kernel hung)."""
    if not guest.qemu_alive:
        raise GuestUnreachable("QEMU has exited")
    keydir = Path(keydir)
    keydir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_path, public_line = _write_key(keydir / "id_ed25519")
    known_hosts = keydir / "known_hosts"
    host_key = " ".join(guest.spec.image.host_key_pub.split()[:2])
    known_hosts.write_text(f"[127.0.0.1]:{guest.ssh_port} {host_key}\n")
    command = (f"mkdir -p /root/.ssh && echo {shlex.quote(public_line)} >> "
               f"/root/.ssh/authorized_keys && echo {shlex.quote(KEEP_BANNER)} > /dev/kmsg")
    _run_raw(guest, command, AUTHORIZE_TIMEOUT_S)
    user = getattr(guest.ssh, "user", "root")
    argv = ["ssh", "-i", str(key_path), "-p", str(guest.ssh_port), "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
            f"{user}@127.0.0.1"]
    return KeptGuest(guest=guest, key_path=key_path, known_hosts=known_hosts, ssh_argv=argv)


def hold(kept: KeptGuest, say: Callable[[str], None], poll_s: float = 0.5) -> None:
    """Say how to reach and stop the guest, then wait until QEMU exits (a `poweroff` in the
    guest); Ctrl-C (KeyboardInterrupt) or SIGTERM propagate to the caller, which stops it."""
    say(f"the guest is kept running for debugging; log in with:\n  {shlex.join(kept.ssh_argv)}")
    say(f"to stop it: Ctrl-C here, or `kill -INT {os.getpid()}` (zstest); QEMU (pid "
        f"{kept.qemu_pid}) stops with zstest; a `poweroff` in the guest also ends the wait")
    while kept.guest.qemu_alive:
        time.sleep(poll_s)
    say("QEMU exited: the kept guest is gone")


def _write_key(path: Path):
    """A fresh Ed25519 key in OpenSSH format, readable by its owner only."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return path, f"{public.strip()} zstest-keep"


def _run_raw(guest, command: str, timeout: float) -> None:
    """command on the guest's SSH connection, bypassing Guest.run (which refuses every command
    once the kernel logged a fatal report: an oopsed kernel may still serve a shell)."""
    done: list = []

    def exchange():
        try:
            ssh = guest.ssh
            if ssh is None:
                raise GuestUnreachable("no SSH session")
            if not ssh.alive:
                ssh.close()
                ssh.connect(time.monotonic() + timeout,
                            stop=lambda: None if guest.qemu_alive else "QEMU exited")
            chan = ssh.client.get_transport().open_session(timeout=timeout)
            chan.exec_command(command)
            done.append(chan.recv_exit_status())
        except Exception as exc:  # paramiko raises several unrelated types; reported below
            done.append(exc)
    worker = threading.Thread(target=exchange, name="zstest-keep", daemon=True)
    worker.start()
    worker.join(timeout + 5.0)
    if not done:
        raise GuestUnreachable(f"the guest did not answer over SSH within {timeout:g} s")
    result = done[0]
    if isinstance(result, Exception):
        why = result.message if isinstance(result, ZstestError) else \
            f"{type(result).__name__}: {result}"
        raise GuestUnreachable(f"the guest cannot be reached over SSH ({why})")
    if result != 0:
        raise GuestUnreachable(f"the guest could not authorize a key (exit status {result})")
