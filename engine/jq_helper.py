"""The helper process that runs jq programs which might not finish.

libjq runs in C and cannot be interrupted, so a program that could loop runs in a
persistent child process under a wall-clock timeout; the child is killed and restarted
when it overruns, and starts with an empty environment in ``/``.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import select
import subprocess
import sys
import threading
import time
from typing import Any

from engine.errors import ExpressionError

_HELPER_MEMORY_BYTES = 1 << 30
_HELPER_SCRIPT = f"""
import json, resource, signal, sys
import jq
resource.setrlimit(resource.RLIMIT_AS, ({_HELPER_MEMORY_BYTES}, {_HELPER_MEMORY_BYTES}))
programs = {{}}
print("ready", flush=True)
for line in sys.stdin:
    text, payload, first, alarm = json.loads(line)
    signal.alarm(alarm)  # dies by SIGALRM should its parent be gone and the program loop
    try:
        if text not in programs:
            if len(programs) > 256:
                programs.clear()
            programs[text] = jq.compile(text)
        results = []
        for value in programs[text].input_text(payload):
            results.append(value)
            if first:
                break
        reply = [True, results]
    except Exception as exc:
        reply = [False, str(exc)]
    signal.alarm(0)
    print(json.dumps(reply), flush=True)
"""


class Helper:
    """One persistent child process running the programs that might not finish."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = 0  # the process that started _proc; a forked child starts its own
        self._buffer = b""

    def run(self, text: str, payload: str, first: bool, timeout: float, source: str) -> list[Any]:
        request = json.dumps([text, payload, first, math.ceil(timeout) + 5]) + "\n"
        with self._lock:
            proc = self._started()
            try:
                assert proc.stdin is not None
                proc.stdin.write(request.encode())
                proc.stdin.flush()
                line = self._read_line(time.monotonic() + timeout)
            except OSError:
                line = b""
            if not line:
                self.stop()
                if line is None:
                    raise ExpressionError(f"expression timed out after {float(timeout)}s", source)
                raise ExpressionError("expression evaluation crashed (out of memory?)", source)
        ok, value = json.loads(line)
        if not ok:
            raise ExpressionError(value, source)
        return list(value)

    def _started(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._pid == os.getpid() and self._proc.poll() is None:
            return self._proc
        # An empty environment and / as working directory: nothing to read even if the
        # prelude were bypassed.
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-c", _HELPER_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={},
            cwd="/",
        )
        self._pid, self._buffer = os.getpid(), b""
        if self._read_line(time.monotonic() + 30) != b"ready":
            self.stop()
            raise ExpressionError("could not start the expression helper process")
        return self._proc

    def _read_line(self, deadline: float) -> bytes | None:
        """The next line, b"" if the child died, None once the deadline passes."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b""
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def stop(self) -> None:
        """Kill the child process, if any; the next run starts a new one."""
        proc, self._proc = self._proc, None
        if proc is not None and self._pid == os.getpid():
            proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()

    def _forget_after_fork(self) -> None:
        # The child of a fork shares the parent's pipes: drop them, never kill its helper.
        self._lock = threading.Lock()
        proc, self._proc, self._buffer = self._proc, None, b""
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()


HELPER = Helper()
os.register_at_fork(after_in_child=HELPER._forget_after_fork)
atexit.register(HELPER.stop)
