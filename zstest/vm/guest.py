"""launch_guest: boot a kernel with the image under QEMU, watch its console, talk SSH.

    with launch_guest(GuestSpec(kernel, image, console_log=..., workdir=...)) as guest:
        guest.run("uname -r")

Leaving the block tears the guest down whatever happened (exception, Ctrl-C,
SIGTERM turned into KeyboardInterrupt): poweroff over SSH, then QMP quit,
then SIGKILL. QEMU also gets PDEATHSIG so it dies with the launching thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence

from ..errors import BadInput, BootFailed, PrereqMissing
from ..arch import DEFAULT_ARCH, ArchSpec, arch_spec
from ..image import Image
from ..proc import which
from ..splats import Splat, kind_words, split_timestamp
from .accel import AccelChoice, probe_accel
from .child import die_with_parent
from .console import ConsoleMonitor
from .qemu import find_firmware, free_port, kernel_cmdline, qemu_argv
from .qmp import QMPClient, QMPError
from .ssh import (ClientKey, GuestCommandFailed, GuestCommandTimeout, GuestLost, KernelCrashed,
                  SSHResult, SSHSession, new_client_key)

TAIL_LINES = 40

# How long a dropped SSH connection may take to come back before the guest counts as lost.
RECONNECT_S = 15.0
log = logging.getLogger("zstest.vm")
# The kernel's verdict when the OOM killer (global or a memory cgroup's) ends a process.
OOM_KILL = re.compile(r"(?:Memory cgroup out of memory|Out of memory): Killed process \d+ \([^)]*\).*")
# How long the OOM report may take to reach the console after the command ended.
OOM_REPORT_WAIT_S = 2.0
PORT_IN_USE = re.compile(r"Could not set up host forwarding rule|hostfwd", re.I)
# What Guest.run keeps in memory of a command's stdout and of its stderr: their last bytes.
OUTPUT_TAIL_BYTES = 8 << 20


@dataclass
class GuestSpec:
    kernel: Path
    image: Image
    memory_mb: int = 1024
    cpus: int = 2
    cmdline_extra: str = ""
    dimm_mb: Optional[int] = None        # a pc-dimm, onlined movable (memory hot-unplug tests)
    accel: str = "auto"                  # auto | kvm | tcg
    console_log: Optional[Path] = None   # default: workdir/console.log
    workdir: Optional[Path] = None       # default: a temporary directory
    boot_timeout: float = 120.0
    ignore_splats: Sequence[str] = ()    # regexes matched against splat titles
    firmware: str = "auto"               # auto (qboot if installed) | seabios | a -bios path
    qemu_extra: List[str] = field(default_factory=list)
    console_append: str = ""             # a fresh guest after a crash: append to console_log
                                         # after this banner line instead of starting it anew
    vmcore: Optional[Path] = None        # on a panic, guest memory goes here (ELF, for crash)
    arch: str = DEFAULT_ARCH             # the kernel's arch record (build.json's arch.name)
    page_size: int = 4096                # the kernel's page size (build.json's arch.page_size)

    @property
    def arch_spec(self) -> ArchSpec:
        return arch_spec(self.arch)


class Guest:
    def __init__(self, spec: GuestSpec, workdir: Path, console: ConsoleMonitor,
                 accel: AccelChoice):
        self.spec = spec
        self.workdir = workdir
        self.console = console
        self.accel = accel
        self.ssh_port = 0
        self.boot_to_ssh_s: Optional[float] = None
        self.timings: dict = {}           # seconds from QEMU start: first console byte, marker, SSH
        self.qemu_argv: List[str] = []
        self.child = None                  # the pexpect spawn of QEMU
        # isalive() reaps with waitpid(): two threads asking at once make pexpect raise
        # "Did someone else call waitpid()" in the loser, so every question goes through here
        self._reap_lock = threading.Lock()
        self.ssh: Optional[SSHSession] = None
        self._qmp: Optional[QMPClient] = None
        self.qmp_socket: Optional[Path] = None
        self.reconnects = 0                # SSH connections that dropped and came back

    # ---- state
    @property
    def pid(self) -> Optional[int]:
        return self.child.pid if self.child is not None else None

    @property
    def qemu_alive(self) -> bool:
        if self.child is None:
            return False
        import pexpect
        with self._reap_lock:
            try:
                return self.child.isalive()
            except pexpect.ExceptionPexpect:     # "no child process": reaped, so not alive
                return False

    def _lost_reason(self) -> Optional[str]:
        if self.console.panicked:
            return f"the guest kernel panicked ({self.console.panic_line})"
        if self.console.fatal is not None:
            kind, title, _ = self.console.fatal
            return f"the guest kernel logged {kind_words(kind)}: {title}"
        if not self.qemu_alive:
            return "QEMU exited"
        return None

    @property
    def tainted(self) -> bool:
        """The kernel logged a fatal report: no more work should go to this guest."""
        return self.console.panicked or self.console.fatal is not None

    def _lost(self, what: str) -> GuestLost:
        reason = self._lost_reason() or ("the guest does not answer over SSH (hung?)"
                                         if self.ssh is not None and self.ssh.alive
                                         else "the SSH connection dropped")
        # give the console thread a moment to log the rest of a panic or an oops's trace
        self.console.closed.wait(1.0)
        if self.console.fatal is not None or self.console.panicked:
            kind, title, _ = self.console.fatal or ("panic", self.console.panic_line, 0.0)
            return KernelCrashed(f"{what}: {reason}.", kind, title,
                                 console_tail=console_tail(self.console),
                                 panicked=self.console.panicked)
        return GuestLost(f"{what}: {reason}.", console_tail=console_tail(self.console),
                         panicked=self.console.panicked)

    # ---- commands
    def run(self, command: str, timeout: float = 60, check: bool = False,
            input: Optional[bytes] = None,
            on_output: Optional[Callable[[str, bytes], None]] = None) -> SSHResult:
        """Run a shell command in the guest; GuestCommandTimeout/GuestLost on trouble.

        The result keeps the last OUTPUT_TAIL_BYTES of stdout and of stderr; on_output(name,
        chunk) ("stdout" / "stderr") gets every chunk as it arrives, e.g. for a log file.
        """
        if self.ssh is None or self._lost_reason():
            raise self._lost(f"cannot run `{command}`")
        start = time.monotonic()
        console_mark = self.console.mark()
        try:
            chan = self._open_session(command, timeout)
            self._exec(chan, command, timeout)
            if input is not None:
                chan.settimeout(max(timeout, 1.0))
                chan.sendall(input)
            chan.shutdown_write()
        except (GuestLost, GuestCommandTimeout):
            raise
        except Exception as exc:  # paramiko raises several unrelated types here
            raise self._lost(f"cannot run `{command}` ({type(exc).__name__}: {exc})") from None
        out, err = _Tail(OUTPUT_TAIL_BYTES), _Tail(OUTPUT_TAIL_BYTES)

        def sink(tail: "_Tail", name: str) -> Callable[[bytes], None]:
            def take(chunk: bytes) -> None:
                tail.add(chunk)
                if on_output is not None:
                    on_output(name, chunk)
            return take
        try:
            status = self._pump(chan, command, start, timeout, sink(out, "stdout"),
                                sink(err, "stderr"), lambda: (out.text(), err.text()))
        finally:
            chan.close()
        result = SSHResult(status, out.text(), err.text(), time.monotonic() - start,
                           dropped_bytes=out.dropped + err.dropped)
        if status == -1 or status >= 128:
            result.oom_kill = self._oom_kill_since(console_mark)
            if result.oom_kill:
                # in stderr too, so every failure message built from it says why
                result.stderr += f"\nzstest: killed by the kernel's OOM killer: {result.oom_kill}\n"
        if check and status != 0:
            raise GuestCommandFailed(command, result)
        return result

    def _pump(self, chan, command: str, start: float, timeout: float,
              on_stdout: Callable[[bytes], None], on_stderr: Callable[[bytes], None],
              so_far: Callable[[], tuple]) -> int:
        """The command's output to on_stdout/on_stderr until it exits (by start + timeout);
        its exit status. GuestCommandTimeout carries so_far() (stdout, stderr)."""
        while True:
            progressed = False
            while chan.recv_ready():
                on_stdout(chan.recv(65536))
                progressed = True
            while chan.recv_stderr_ready():
                on_stderr(chan.recv_stderr(65536))
                progressed = True
            if chan.exit_status_ready() and not chan.recv_ready() \
                    and not chan.recv_stderr_ready():
                break
            if self._lost_reason() or not self.ssh.alive or chan.closed:
                if not chan.exit_status_ready():
                    raise self._lost(f"the guest command `{command}` was cut short")
            if time.monotonic() - start > timeout:
                raise GuestCommandTimeout(command, timeout, *so_far())
            if not progressed:
                time.sleep(0.01)
        status = chan.recv_exit_status()
        if status == -1:
            # no exit status: killed by a signal, or the session died with sshd/the guest
            end = time.monotonic() + 1.0
            while self.ssh.alive and not self._lost_reason() and time.monotonic() < end:
                time.sleep(0.05)
            if not self.ssh.alive or self._lost_reason():
                raise self._lost(f"the guest command `{command}` was cut short")
        return status

    def _oom_kill_since(self, mark: int) -> str:
        """The OOM killer's "Killed process" line logged since mark, or ""."""
        found = self.console.wait_for(OOM_KILL, timeout=OOM_REPORT_WAIT_S, since=mark)
        return found.group(0).strip() if found else ""

    def _open_session(self, command: str, timeout: float):
        """A channel for the next command; one reconnect when the connection dropped before it.

        The command has not started yet, so retrying it on a fresh connection is safe. A dead
        sshd (or guest) fails the reconnect and is reported as a lost guest.
        """
        try:
            if not self.ssh.alive:
                raise EOFError("the SSH connection is closed")
            return self.ssh.client.get_transport().open_session(timeout=min(10.0, timeout))
        except Exception as exc:  # paramiko raises several unrelated types here
            if self._lost_reason() or self.ssh.alive:
                raise   # a live connection that cannot open a channel: the guest is hung
            first = f"{type(exc).__name__}: {exc}"
        log.warning("SSH connection to the guest dropped (%s); reconnecting", first)
        self.ssh.close()
        try:
            self.ssh.connect(time.monotonic() + RECONNECT_S, stop=self._lost_reason)
        except BootFailed as exc:
            raise GuestLost(f"cannot run `{command}`: the SSH connection dropped ({first}) and "
                            f"a new one failed ({exc.message}).",
                            console_tail=console_tail(self.console),
                            panicked=self.console.panicked) from None
        self.reconnects += 1
        return self.ssh.client.get_transport().open_session(timeout=min(10.0, timeout))

    def _exec(self, chan, command: str, timeout: float) -> None:
        """chan.exec_command, which waits for the guest's answer without a timeout: bound it."""
        done = threading.Event()
        failure: list = []

        def send():
            try:
                chan.exec_command(command)
            except Exception as exc:  # reported below, in the caller's thread
                failure.append(exc)
            finally:
                done.set()
        threading.Thread(target=send, name="zstest-ssh-exec", daemon=True).start()
        start = time.monotonic()
        while not done.wait(0.05):
            if self._lost_reason():
                raise self._lost(f"cannot run `{command}`")
            if time.monotonic() - start > min(timeout, 30.0):
                chan.close()
                raise GuestLost(f"the guest did not accept the command `{command}` within "
                                f"{min(timeout, 30.0):g} s (hung?).",
                                console_tail=console_tail(self.console))
        if failure:
            raise failure[0]

    def put(self, local: Path, remote: str, timeout: float = 120) -> None:
        data = Path(local).read_bytes()
        r = self.run(f"cat > {_quote(remote)}", timeout=timeout, input=data)
        if r.exit_status != 0:
            raise GuestCommandFailed(f"put {local} {remote}", r)

    def get(self, remote: str, local: Path, timeout: float = 120) -> None:
        """Copy a guest file to local, streamed to disk (binary-safe), all of it within timeout."""
        command = f"cat {_quote(remote)}"
        if self.ssh is None or self._lost_reason():
            raise self._lost(f"cannot get {remote}")
        start = time.monotonic()
        try:
            chan = self._open_session(command, timeout)
            self._exec(chan, command, timeout)
            chan.shutdown_write()
        except (GuestLost, GuestCommandTimeout):
            raise
        except Exception as exc:  # paramiko raises several unrelated types here
            raise self._lost(f"cannot get {remote} ({type(exc).__name__}: {exc})") from None
        local = Path(local)
        part = local.with_name(local.name + ".part")
        err = _Tail(64 << 10)
        try:
            with open(part, "wb") as fh:
                status = self._pump(chan, command, start, timeout, fh.write, err.add,
                                    lambda: ("", err.text()))
            if status != 0:
                raise GuestCommandFailed(f"get {remote}", SSHResult(
                    status, "", err.text(), time.monotonic() - start))
            os.replace(part, local)
        finally:
            chan.close()
            part.unlink(missing_ok=True)

    def qmp(self, command: str, **args):
        if self._qmp is None:
            self._qmp = QMPClient(self.qmp_socket).connect()
        return self._qmp.execute(command, **args)

    # ---- teardown
    def shutdown(self) -> None:
        """poweroff over SSH, then QMP quit, then SIGKILL; returns when QEMU is gone."""
        try:
            if self.spec.vmcore and self.console.panicked and self.qemu_alive:
                from .vmcore import dump_vmcore   # before quit: the panicked memory is the evidence
                self.vmcore_written = dump_vmcore(self.qmp_socket, Path(self.spec.vmcore))
            # a crashed kernel may never finish a poweroff: QMP quit at once
            if self.ssh is not None and self.ssh.alive and self.qemu_alive and not self.tainted:
                def poweroff():
                    try:
                        chan = self.ssh.client.get_transport().open_session(timeout=2)
                        chan.exec_command("poweroff -f")
                    except Exception:
                        pass   # the guest may be gone already; QMP and SIGKILL follow
                # in a thread: exec_command has no timeout of its own
                threading.Thread(target=poweroff, name="zstest-poweroff", daemon=True).start()
                self._wait_exit(3.0)
            if self.qemu_alive:
                try:
                    QMPClient(self.qmp_socket, timeout=2).connect(1.0).execute("quit")
                except (QMPError, OSError, ValueError):
                    pass
                self._wait_exit(2.0)
        finally:
            try:
                if self.ssh is not None:
                    self.ssh.close()
                if self._qmp is not None:
                    self._qmp.close()
            finally:
                self._kill()
                self.console.join()

    def _wait_exit(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while self.qemu_alive and time.monotonic() < end:
            time.sleep(0.05)

    def _kill(self) -> None:
        if self.child is None:
            return
        if self.qemu_alive:
            try:
                os.kill(self.child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        with self._reap_lock:
            try:
                self.child.wait()
            except Exception:
                pass
            try:
                self.child.close(force=True)
            except Exception:
                pass


def _where_is_pid1(guest: Guest, boot_timeout: float):
    """Where the kernel's PID 1 is, from the task list an NMI or SysRq-T made it print
    (vm/stuck.py), or None."""
    from .stuck import ask_where_pid1_is
    hang = ask_where_pid1_is(guest)
    if hang is None:
        log.info("boot: the guest listed no tasks (NMI, SysRq-T) after %g s", boot_timeout)
    return hang


def _boot_hang_splat(guest: Guest, hang, boot_timeout: float) -> Splat:
    """A boot_hang splat (fatal: the kernel's own evidence) from PID 1's task-list entry."""
    where = hang.culprit or "?"
    state = {"S": "sleeps", "D": "waits, uninterruptibly,", "R": "runs"}.get(hang.state,
                                                                         f"is (state {hang.state})")
    title = (f"PID 1 still {state} in {where} after {boot_timeout:g} s"
             + (f" (initcall {hang.initcall})" if hang.initcall and hang.initcall != where else "")
             + ": the initcalls never finished")
    line_no = guest.console.line_no_at(hang.mark) + hang.line_no - 1
    t, _ = split_timestamp(hang.text.split("\n", 1)[0])
    return Splat(kind="boot_hang", title=title, text=hang.text, line_no=line_no, t=t,
                 wall=time.monotonic(), fatal=True)


def console_tail(console: ConsoleMonitor, lines: int = TAIL_LINES) -> str:
    """The console's last lines, with the panic line first if it scrolled out of them."""
    tail = console.tail(lines)
    if console.panicked and console.panic_line not in tail:
        tail = f"{console.panic_line}\n[...]\n{tail}"
    return tail


class _Tail:
    """The last `limit` bytes of a stream; the bytes before them are counted, not kept."""

    def __init__(self, limit: int):
        self.limit, self.data, self.dropped = limit, bytearray(), 0

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        extra = len(self.data) - self.limit
        if extra > 0:
            del self.data[:extra]
            self.dropped += extra

    def text(self) -> str:
        return _text(self.data)


def _text(data: bytearray) -> str:
    return bytes(data).decode("utf-8", errors="replace")


def _quote(path: str) -> str:
    return "'" + path.replace("'", "'\\''") + "'"


def _check_inputs(spec: GuestSpec) -> str:
    kernel = Path(spec.kernel)
    if not kernel.is_file():
        raise BadInput(f"kernel image {kernel} does not exist.")
    if not Path(spec.image.path).is_file():
        raise BadInput(f"guest image {spec.image.path} does not exist.")
    firmware = find_firmware(spec.firmware, spec.arch_spec)
    if firmware is not None and not firmware.is_file():
        raise BadInput(f"firmware {firmware} does not exist.")
    if spec.accel not in ("auto", "kvm", "tcg"):
        raise BadInput(f"accelerator must be auto, kvm or tcg (got {spec.accel!r}).")
    arch = spec.arch_spec
    qemu = which(arch.qemu_binary)
    if qemu is None:
        raise PrereqMissing(f"{arch.qemu_binary} is missing: "
                            f"`apt-get install {arch.qemu_package}`.")
    return qemu


@contextlib.contextmanager
def launch_guest(spec: GuestSpec) -> Iterator[Guest]:
    """Boot the guest and yield it once SSH works; BootFailed (exit 5) if it does not."""
    qemu = _check_inputs(spec)
    workdir = Path(spec.workdir) if spec.workdir else Path(tempfile.mkdtemp(prefix="zstest-guest-"))
    workdir.mkdir(parents=True, exist_ok=True)
    # QEMU makes the QMP socket here with the umask's mode: whoever reaches it drives QEMU
    os.chmod(workdir, 0o700)
    console_log = Path(spec.console_log) if spec.console_log else workdir / "console.log"
    if spec.accel == "auto":
        accel = probe_accel(spec.kernel, arch=spec.arch_spec)
    else:
        accel = AccelChoice(spec.accel, "asked for")
    if spec.console_append and console_log.is_file():
        guest_log_start = console_log.stat().st_size
    else:
        guest_log_start = 0
    console = ConsoleMonitor(console_log, ignore=spec.ignore_splats,
                             append=bool(spec.console_append), banner=spec.console_append)
    guest = Guest(spec, workdir, console, accel)
    # unix socket paths are limited to 108 bytes: use a short private dir when needed
    sock_dir = None
    qmp_socket = workdir / "qmp.sock"
    if len(str(qmp_socket)) > 100:
        sock_dir = Path(tempfile.mkdtemp(prefix="zstest-qmp-"))
        qmp_socket = sock_dir / "qmp.sock"
    guest.qmp_socket = qmp_socket
    try:
        client_key = new_client_key()
        _boot(guest, qemu, client_key, guest_log_start)
        yield guest
    finally:
        try:
            guest.shutdown()
        finally:
            # a temporary workdir is kept: its console.log is the evidence
            if sock_dir is not None:
                shutil.rmtree(sock_dir, ignore_errors=True)


def _boot(guest: Guest, qemu: str, client_key: ClientKey, log_start: int = 0) -> None:
    import pexpect
    spec, console = guest.spec, guest.console
    found = None
    # --vmcore: panic=0 (the last one wins) halts instead of rebooting, so QEMU stays to dump
    cmdline = kernel_cmdline(client_key.public_line, spec.image.ready_marker,
                             dimm=bool(spec.dimm_mb),
                             extra=spec.cmdline_extra + (" panic=0" if spec.vmcore else ""),
                             accel=guest.accel.name, arch=spec.arch_spec)
    # the arch's floor: an i386 guest gets more RAM than lowmem, so zspages land in highmem;
    # a 64K-page guest several 512 MB pageblocks
    memory_mb = max(spec.memory_mb, spec.arch_spec.memory_floor_mb(spec.page_size))
    for attempt in range(5):
        port = free_port()
        argv = qemu_argv(qemu, Path(spec.kernel), Path(spec.image.path), cmdline,
                         guest.accel.name, port, guest.qmp_socket, memory_mb, spec.cpus,
                         spec.dimm_mb, spec.qemu_extra,
                         firmware=find_firmware(spec.firmware, spec.arch_spec),
                         arch=spec.arch_spec)
        guest.qemu_argv, guest.ssh_port = argv, port
        mark = console.mark()
        start = time.monotonic()
        guest.child = pexpect.spawn(argv[0], argv[1:], cwd=str(guest.workdir), echo=False,
                                    preexec_fn=die_with_parent, dimensions=(50, 200))
        console.start(guest.child)
        deadline = start + spec.boot_timeout
        marker = re.compile(re.escape(spec.image.ready_marker) + r"( sshd up|-FAILED: .*)")
        found = console.wait_for(marker, timeout=spec.boot_timeout, since=mark,
                                 stop=lambda: console.panicked or not guest.qemu_alive)
        if found is None and not guest.qemu_alive and PORT_IN_USE.search(console.text(mark)) \
                and not console.text(mark).count("Linux version"):
            guest._kill()
            console.join()
            # the failed attempt only holds QEMU's complaint about the port: drop it
            if spec.console_append:
                os.truncate(console.log_path, log_start)
            console = guest.console = ConsoleMonitor(console.log_path, ignore=spec.ignore_splats,
                                                     append=bool(spec.console_append),
                                                     banner=spec.console_append)
            continue   # another process took the port between probe and bind
        break
    if found is not None and "-FAILED: " in found.group(0):
        raise BootFailed(f"the guest did not boot: its init says {found.group(0).strip()!r}; "
                         f"console log: {console.log_path}", detail=console_tail(console))
    if found is None:
        tail = None
        if console.panicked:
            console.closed.wait(2.0)
            why = f"the kernel panicked during boot ({console.panic_line})"
        elif not guest.qemu_alive:
            console.closed.wait(2.0)
            why = "QEMU exited before the guest was ready"
        else:
            why = (f"the guest printed no ready marker within {spec.boot_timeout:g} s "
                   f"(sshd never started?)")
            tail = console_tail(console)    # what the boot printed, before the task dump
            hang = _where_is_pid1(guest, spec.boot_timeout)
            if hang is not None and hang.in_initcall:
                splat = _boot_hang_splat(guest, hang, spec.boot_timeout)
                raise BootFailed(f"the guest did not boot: the kernel hung in its own init: "
                                 f"{splat.title}; console log: {console.log_path}",
                                 detail=hang.text, splat=splat.to_dict())
            if hang is not None:
                why += f"; PID 1 ({hang.comm}, state {hang.state}) was in {hang.culprit}"
        raise BootFailed(f"the guest did not boot: {why}; console log: {console.log_path}",
                         detail=tail if tail is not None else console_tail(console))
    ready_at = time.monotonic()
    guest.ssh = SSHSession(guest.ssh_port, spec.image.host_key_pub, client_key)
    try:
        guest.ssh.connect(deadline, stop=guest._lost_reason)
    except BootFailed as exc:
        raise BootFailed(f"the guest booted but SSH failed: {exc.message}; console log: "
                         f"{console.log_path}", detail=console_tail(console)) from None
    guest.boot_to_ssh_s = time.monotonic() - start
    guest.timings = {"first_console_byte_s": (console.first_byte_wall or start) - start,
                     "ready_marker_s": ready_at - start, "ssh_login_s": guest.boot_to_ssh_s}
