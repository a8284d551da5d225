"""Finding or building helm and kubectl: the operator tools of the chart's tests and of
the README's "try the chart" steps (the sidecar itself runs neither).

Like the control-plane binaries, each is built once from the Go module proxy
(``build-<tool>.sh``: helm from ``helm.sh/helm/v3``, kubectl from ``k8s.io/kubectl``)
into its own cache directory, ``~/.cache/interlink-k8s-sidecar/bin/<tool>-<version>/``,
and reused; ``$HELM_BIN`` / ``$KUBECTL_BIN`` point at ready binaries instead.
``python -m tests.localcluster.tools`` builds both ahead of time and links them into
the virtualenv's ``bin/`` (next to this interpreter), so ``.venv/bin/helm`` and
``.venv/bin/kubectl`` work.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.localcluster.binaries import K8S_VERSION, cache_root, run_build_script


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    version: str
    env: str
    """Environment variable naming a ready binary (skips the build)."""
    cold_build: str
    """What a first build costs here, for the progress line."""

    @property
    def script(self) -> Path:
        return Path(__file__).with_name(f"build-{self.name}.sh")


HELM = Tool("helm", "3.22.0", "HELM_BIN", "about 2 min on 2 cores")
# kubectl of the same minor as the control plane (kubectl supports one minor of skew).
KUBECTL = Tool("kubectl", K8S_VERSION, "KUBECTL_BIN", "about 30 s on 2 cores")
TOOLS = (HELM, KUBECTL)


class ToolError(Exception):
    """The tool cannot be had; a one-line reason and what to do."""


def tool_directory(tool: Tool, environ: Mapping[str, str] = os.environ) -> Path:
    """The cache directory of the built tool (separate from the control plane's)."""
    return cache_root(environ) / "bin" / f"{tool.name}-{tool.version}"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def ensure_tool(
    tool: Tool,
    *,
    progress: Callable[[str], None] = print,
    environ: Mapping[str, str] = os.environ,
) -> Path:
    """A ready binary: ``$<TOOL>_BIN``, the cache, or a fresh build."""
    if environ.get(tool.env):
        given = Path(environ[tool.env])
        if not _executable(given):
            raise ToolError(
                f"{tool.env}={given} is not an executable file: point it at a {tool.name} "
                f"binary, or unset it to build {tool.name}"
            )
        return given
    binary = tool_directory(tool, environ) / tool.name
    if _executable(binary):
        return binary
    if shutil.which("go", path=environ.get("PATH")) is None:
        raise ToolError(
            f"{tool.name} is not built and 'go' is not on PATH: install Go >= 1.26, or set "
            f"{tool.env} to a {tool.name} binary"
        )
    _build(tool, binary.parent, progress=progress, environ=environ)
    if not _executable(binary):
        raise ToolError(f"the {tool.name} build finished but {binary} is missing")
    return binary


def _build(
    tool: Tool, directory: Path, *, progress: Callable[[str], None], environ: Mapping[str, str]
) -> None:
    log_path = cache_root(environ) / f"{tool.name}-build.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    progress(
        f"building {tool.name} {tool.version} into {directory} "
        f"(cold: {tool.cold_build}; log: {log_path})"
    )
    started = time.monotonic()
    code, last = run_build_script(
        [str(tool.script), tool.version, str(directory), str(cache_root(environ) / "work")],
        log_path=log_path,
        marker=f"[{tool.name} build]",
        progress=progress,
        environ=environ,
    )
    if code != 0:
        raise ToolError(
            f"{tool.name} build failed (exit {code}): {last}; see {log_path}, fix the cause "
            f"and retry, or set {tool.env} to a {tool.name} binary"
        )
    progress(f"{tool.name} built in {time.monotonic() - started:.0f} s")


def main() -> int:
    links = Path(sys.executable).parent
    for tool in TOOLS:
        try:
            binary = ensure_tool(tool, progress=lambda line: print(line, flush=True))
        except ToolError as exc:
            print(f"{tool.name}: {exc}", file=sys.stderr)
            return 1
        link = links / tool.name
        if link.is_symlink() or not link.exists():
            link.unlink(missing_ok=True)
            link.symlink_to(binary)
        print(f"{tool.name}: {binary} (linked as {link})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
