"""`zstest shell`: boot a build and hand its guest to a person (a TTY over SSH), to one
command, or to a script on stdin; --gdb opens QEMU's gdb stub, --vmcore dumps a panic."""

from __future__ import annotations

import os
import select
import shutil
import sys
import termios
import time
import tty
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .errors import BadInput

IO_CHUNK = 65536


@dataclass
class ShellRequest:
    build_dir: Path
    out: Path                               # console.log and the VM's work dir
    command: Optional[str] = None           # run this and exit with its status
    gdb: bool = False
    vmcore: Optional[Path] = None
    memory_mb: int = 1024
    cpus: int = 2
    accel: str = "auto"
    boot_timeout: float = 120.0
    cmdline_extra: str = ""
    say: Callable[[str], None] = print      # zstest's own lines (stderr: stdout is the guest's)


def open_shell(req: ShellRequest) -> int:
    """Boot, run the session, tear the guest down; the guest's exit status (1 after a panic)."""
    from .runner import GuestPlan, load_build, prepare_guest
    from .vm.guest import launch_guest
    from .vm.qemu import free_port

    # where the build is now (build.json's own build_dir is where it was built: provenance)
    build_dir = Path(req.build_dir).expanduser().resolve()
    info = load_build(build_dir)
    out = Path(req.out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    qemu_extra, cmdline = [], req.cmdline_extra
    if req.gdb:
        port = free_port()
        qemu_extra = ["-gdb", f"tcp:127.0.0.1:{port}"]
        cmdline = (cmdline + " nokaslr").strip()    # symbols of vmlinux at their link addresses
        vmlinux = info.artifact(info.artifacts.vmlinux, "vmlinux")
        req.say(f"gdb: gdb {vmlinux} -ex 'target remote 127.0.0.1:{port}'")
    vmcore = Path(req.vmcore).expanduser().resolve() if req.vmcore else None
    # the image boot-and-run uses (same inputs: a cache hit), so the shell sees the same guest
    spec = prepare_guest(GuestPlan(build_dir=build_dir, info=info, out=out,
                                   memory_mb=req.memory_mb, cpus=req.cpus, accel=req.accel,
                                   cmdline_extra=cmdline, boot_timeout=req.boot_timeout,
                                   qemu_extra=qemu_extra, vmcore=vmcore))
    req.say(f"booting {info.kernel.version or build_dir.name} (console: {out / 'console.log'})")
    guest = None
    try:
        with launch_guest(spec) as guest:
            req.say(f"guest up in {guest.boot_to_ssh_s:.1f} s ({guest.accel.name}); "
                    f"ssh port 127.0.0.1:{guest.ssh_port}")
            if req.command is not None:
                status = _relay(guest, req.command)
            elif sys.stdin.isatty():
                status = _interactive(guest)
            else:
                # a script on stdin: the guest's sh reads it, as `ssh host sh < script` would
                status = _relay(guest, "sh", stdin_data=sys.stdin.buffer.read())
            if guest.console.panicked:
                _wait_for_panic_end(guest)
                req.say(f"the guest kernel panicked: {guest.console.panic_line}")
                status = 1
    finally:
        if guest is not None and vmcore is not None and guest.console.panicked:
            written = getattr(guest, "vmcore_written", None)
            req.say(f"vmcore: {written}" if written else
                    f"vmcore: not written (see {vmcore.name}.error)")
    return status


def _wait_for_panic_end(guest, seconds: float = 5.0) -> None:
    """Let the panic's last lines (the end trace) reach console.log before the dump and quit."""
    end = time.monotonic() + seconds
    while time.monotonic() < end and "end Kernel panic" not in guest.console.tail(5):
        time.sleep(0.1)


def _relay(guest, command: str, stdin_data: bytes = b"") -> int:
    """command in the guest, its stdin fed from stdin_data (for sh: the script), its output
    streamed to ours; returns its exit status (1 when the kernel panicked under it)."""
    chan = guest.ssh.client.get_transport().open_session(timeout=10)
    guest._exec(chan, command, 30.0)    # exec_command itself waits for the guest's answer unbounded
    if stdin_data:
        chan.sendall(stdin_data)
    chan.shutdown_write()
    out, err = sys.stdout.buffer, sys.stderr.buffer
    while True:
        if guest.console.panicked:
            chan.close()
            return 1
        select.select([chan], [], [], 0.2)
        while chan.recv_ready():
            out.write(chan.recv(IO_CHUNK))
            out.flush()
        while chan.recv_stderr_ready():
            err.write(chan.recv_stderr(IO_CHUNK))
            err.flush()
        if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
            return chan.recv_exit_status()


def _interactive(guest) -> int:
    """A login shell on a pty; our terminal in raw mode (Ctrl-C goes to the guest), restored
    whatever happens."""
    chan = guest.ssh.client.get_transport().open_session(timeout=10)
    cols, rows = shutil.get_terminal_size((80, 24))
    chan.get_pty(term=os.environ.get("TERM", "vt100"), width=cols, height=rows)
    chan.invoke_shell()
    fd_in, fd_out = sys.stdin.fileno(), sys.stdout.fileno()
    saved = termios.tcgetattr(fd_in)
    try:
        tty.setraw(fd_in)
        while not guest.console.panicked:
            ready, _, _ = select.select([chan, fd_in], [], [], 0.2)
            if chan in ready:
                data = chan.recv(IO_CHUNK)
                if not data:
                    break
                os.write(fd_out, data)
            if fd_in in ready:
                data = os.read(fd_in, IO_CHUNK)
                if not data:
                    break
                chan.sendall(data)
            if chan.exit_status_ready() and not chan.recv_ready():
                break
    finally:
        termios.tcsetattr(fd_in, termios.TCSADRAIN, saved)
    if guest.console.panicked:
        return 1
    return chan.recv_exit_status() if chan.exit_status_ready() else 0


def check_request(req: ShellRequest) -> None:
    if req.vmcore is not None and Path(req.vmcore).expanduser().is_dir():
        raise BadInput(f"--vmcore {req.vmcore} is a directory; give a file name.")
