"""What a user does on the LOCAL cluster, done with the real ``kubectl`` (built by the
set-up, ``.venv/bin/kubectl``): apply a manifest, read a pod, delete it, read its logs
(follow included). Every call has a timeout; ``wait_pod`` polls with a deadline.

The admin kubeconfig is passed by path (KUBECONFIG), so no credential is on a command
line.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.chain.processes import die_with_parent, stop_process
from tests.e2e.deadlines import DeadlineExceeded, seconds, wait_for

Pod = dict[str, Any]
COMMAND_SECONDS = 60.0


class KubectlError(AssertionError):
    """kubectl exited non-zero; the message has its argv (no secret) and stderr."""


class Kubectl:
    def __init__(
        self,
        binary: Path,
        kubeconfig: Path,
        *,
        namespace: str = "default",
        context: Callable[[], str] = lambda: "",
    ) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.context = context
        """Extra text for failure messages (the chain's logs)."""

    def _env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("KUBECTL_")} | {
            "KUBECONFIG": str(self.kubeconfig)
        }

    def argv(self, *args: str) -> list[str]:
        return [str(self.binary), f"--namespace={self.namespace}", *args]

    def run(
        self,
        *args: str,
        stdin: str | None = None,
        timeout: float = COMMAND_SECONDS,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        argv = self.argv(*args)
        try:
            done = subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                env=self._env(),
                timeout=seconds(timeout),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise KubectlError(
                f"{' '.join(argv[1:])} timed out after {seconds(timeout):.0f} s\n{self.context()}"
            ) from exc
        if check and done.returncode != 0:
            raise KubectlError(
                f"kubectl {' '.join(argv[1:])} exited {done.returncode}: {done.stderr.strip()}"
                f"\n{self.context()}"
            )
        return done

    # --- pods ----------------------------------------------------------------------------

    def apply(self, manifest: dict[str, Any]) -> None:
        self.run("apply", "-f", "-", stdin=yaml.safe_dump(manifest))

    def get_pod(self, name: str) -> Pod | None:
        """The pod as ``kubectl get -o json`` shows it, or None when it does not exist."""
        done = self.run("get", "pod", name, "-o", "json", "--ignore-not-found")
        return json.loads(done.stdout) if done.stdout.strip() else None

    def existing(self, names: Sequence[str]) -> list[str]:
        """Those of the pods ``names`` that exist (deleting ones included)."""
        if not names:
            return []
        done = self.run("get", "pod", *names, "--ignore-not-found", "-o", "name")
        return [line.removeprefix("pod/") for line in done.stdout.split()]

    def delete_pod(self, name: str, *flags: str, timeout: float = 120) -> None:
        """``kubectl delete pod name flags...`` (by default kubectl waits until it is gone)."""
        self.run("delete", "pod", name, *flags, timeout=timeout)

    def wait_pod(
        self, name: str, what: str, done: Callable[[Pod | None], bool], *, timeout: float = 90
    ) -> Pod | None:
        """Poll the pod until ``done(pod)`` holds (pod None: it does not exist)."""
        return wait_for(
            f"pod {name}: {what}",
            lambda: self.get_pod(name),
            done,
            timeout=timeout,
            interval=1.0,
            context=self.context,
        )

    def logs(self, name: str, *flags: str, timeout: float = COMMAND_SECONDS) -> str:
        return self.run("logs", name, *flags, timeout=timeout).stdout

    def follow(self, name: str, *flags: str) -> LogFollow:
        """``kubectl logs -f name flags...`` running in the background."""
        return LogFollow(self.argv("logs", "-f", name, *flags), self._env(), self.context)


class LogFollow:
    """A running ``kubectl logs -f``: its lines arrive in a queue read by a thread."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], context: Callable[[], str]):
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._context = context
        self.process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            preexec_fn=die_with_parent,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for_line(self, predicate: Callable[[str], bool], *, timeout: float) -> str:
        """The first line (so far or arriving) that satisfies ``predicate``."""
        deadline = time.monotonic() + seconds(timeout)
        for line in self.lines:
            if predicate(line):
                return line
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                item = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if item is None:
                stderr = self.process.stderr.read() if self.process.stderr else ""
                raise AssertionError(
                    f"kubectl logs -f ended (status {self.process.wait()}) without the line; "
                    f"lines: {self.lines!r}; stderr: {stderr.strip()}\n{self._context()}"
                )
            self.lines.append(item)
            if predicate(item):
                return item
        raise DeadlineExceeded(
            f"no matching line from kubectl logs -f within {seconds(timeout):.0f} s; "
            f"lines: {self.lines!r}\n{self._context()}"
        )

    def stop(self) -> None:
        stop_process(self.process, timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        self._reader.join(timeout=5)

    def __enter__(self) -> LogFollow:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
