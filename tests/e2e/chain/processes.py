"""Child processes of the end-to-end tier (sidecar, interLink API servers, virtual
kubelets): started with their output in a log file, stopped by pid.

Each child gets its own session (a Ctrl-C reaches pytest, which then stops the children
in order) and SIGKILL from the kernel if the thread that forked it dies first
(PR_SET_PDEATHSIG, as LocalCluster's children), so a killed test run leaves nothing
behind. Start children from the main thread (session fixtures do): the signal follows
the forking *thread*.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1
STOP_SECONDS = 10.0


def die_with_parent() -> None:  # pragma: no cover - runs in the child
    """preexec_fn: SIGKILL this child when the forking thread dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file ('' when it does not exist)."""
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class Child:
    """One process with its log file. ``stop()`` is safe to call twice."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str],
        cwd: Path,
    ) -> None:
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=dict(env),
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 30) -> str:
        return tail(self.log_path, lines)

    def describe(self, lines: int = 30) -> str:
        """Name, pid, state and the log's tail: what a failure message shows."""
        code = self.process.poll()
        state = "running" if code is None else f"exited with status {code}"
        return (
            f"--- {self.name} (pid {self.pid}, {state}, log {self.log_path}):\n{self.tail(lines)}"
        )

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """SIGTERM, up to ``timeout`` seconds, then SIGKILL; always reaps the process."""
        stop_process(self.process, timeout)


def stop_process(process: subprocess.Popen[Any], timeout: float = STOP_SECONDS) -> None:
    """SIGTERM ``process`` (by pid), wait up to ``timeout`` s, then SIGKILL."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)
