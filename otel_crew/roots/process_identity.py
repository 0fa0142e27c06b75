"""Which process a journal entry belongs to, and whether that process is gone.

A process is named by its pid, its start time and its host. A pid alone is
not enough: pids are reused, so a live pid with another start time is another
process, and the one that wrote the entry is gone. Entries of other hosts are
never judged (a state directory on a shared volume): their processes cannot be
seen from here.

Start times: on Linux the boot id and ``/proc/<pid>/stat``'s ``starttime``
(clock ticks since boot); elsewhere a best effort without psutil (``ps`` on
other POSIX systems, ``GetProcessTimes`` on Windows). Where no start time can
be read, only liveness is checked.
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import sys
from dataclasses import dataclass

__all__ = ["ProcessIdentity", "current_process", "is_gone"]


@dataclass(frozen=True)
class ProcessIdentity:
    pid: int
    start: str  # "" when it could not be read
    host: str


_current: ProcessIdentity | None = None


def current_process() -> ProcessIdentity:
    """This process (read once per pid, so a forked child reads its own)."""
    global _current
    if _current is None or _current.pid != os.getpid():
        pid = os.getpid()
        _current = ProcessIdentity(pid, start_time_of(pid) or "", socket.gethostname())
    return _current


def is_gone(process: ProcessIdentity) -> bool:
    """Whether ``process`` (of this host) has ended: its pid is not alive, or
    is alive with another start time (the pid was reused). Another host's
    process is never gone as far as we can tell."""
    if process.host != socket.gethostname():
        return False
    if process.pid == os.getpid():
        return process.start != current_process().start
    if not _alive(process.pid):
        return True
    if not process.start:
        return False
    now = start_time_of(process.pid)
    return now is not None and now != process.start


def start_time_of(pid: int) -> str | None:
    """An opaque start time of ``pid``, equal for the same process, or None."""
    try:
        if sys.platform.startswith("linux"):
            return _linux_start(pid)
        if sys.platform == "win32":
            return _windows_start(pid)
        return _ps_start(pid)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def _alive(pid: int) -> bool:
    if sys.platform.startswith("linux"):
        return _linux_state(pid) not in (None, "Z", "X")  # a zombie has ended; only its entry is left
    if sys.platform == "win32":
        return _windows_start(pid) is not None  # os.kill on Windows would terminate it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _linux_stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            text = stat.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces.
    return text[text.rindex(")") + 2 :].split()


def _linux_state(pid: int) -> str | None:
    fields = _linux_stat_fields(pid)
    return fields[0] if fields else None


def _linux_start(pid: int) -> str | None:
    fields = _linux_stat_fields(pid)
    if fields is None:
        return None
    with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
        boot_id = boot.read().strip()
    return f"{boot_id}/{fields[19]}"  # field 22, starttime


def _ps_start(pid: int) -> str | None:
    result = subprocess.run(
        ["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, timeout=5, check=False
    )
    started = result.stdout.strip()
    return started or None


def _windows_start(pid: int) -> str | None:
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined,unused-ignore]
    query_limited_information = 0x1000
    handle = kernel32.OpenProcess(query_limited_information, False, pid)
    if not handle:
        return None
    try:
        exit_code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(exit_code)) or exit_code.value != 259:  # STILL_ACTIVE
            return None
        times = [ctypes.c_ulonglong() for _ in range(4)]
        if not kernel32.GetProcessTimes(handle, *(ctypes.byref(value) for value in times)):
            return None
        return str(times[0].value)  # creation time
    finally:
        kernel32.CloseHandle(handle)
