"""The container image, checked without a container engine.

What can be checked from the files: the Dockerfile parses (a small parser of its
instructions, continuations and heredocs below), every COPY source exists and survives
.dockerignore (the same pattern rules as Docker's), the base image is pinned to a full
Python version, the final stage runs as uid 10001 from the wheel only with no build
tools, the image's default config loads, is closed (a unix socket and loopback, no
EXPOSE, nothing the sidecar warns about) and matches VOLUME; and that the build
context the Dockerfile copies builds a wheel with every package and data file, whose
entry point runs, and without the test tooling (tests/, the embedded control plane of
``make run``: its Go build scripts, kwok stages and ``localcluster`` modules).
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from sidecar import insecure, settings
from sidecar.settings import ListenKind

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
NON_ROOT_UID = "10001"

_KEYWORDS = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
    "WORKDIR",
}  # fmt: skip
_HEREDOC = re.compile(r"<<(-?)(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")
_BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|cc|clang|make|cmake|build-essential|cargo|rustc|[\w.+]+-dev|[\w.+]+-devel)\b"
)


class DockerfileError(Exception):
    pass


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str
    line: int
    heredocs: tuple[tuple[str, str], ...] = ()
    """(name, body) of each heredoc the instruction opens, in order."""

    def flags_and_args(self) -> tuple[dict[str, str], list[str]]:
        """Leading ``--flag=value`` options and the remaining arguments (exec or shell form)."""
        rest = self.value
        flags: dict[str, str] = {}
        while match := re.match(r"--([\w-]+)(?:=(\S*))?\s+", rest):
            flags[match.group(1)] = match.group(2) or ""
            rest = rest[match.end() :]
        if rest.startswith("["):
            parsed = json.loads(rest)
            if not isinstance(parsed, list) or not all(isinstance(w, str) for w in parsed):
                raise DockerfileError(f"line {self.line}: bad exec form {rest!r}")
            return flags, parsed
        words = shlex.split(_HEREDOC.sub(r"<<\3", rest))
        return flags, words


@dataclass(frozen=True)
class Stage:
    image: str
    name: str
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions of a Dockerfile: comments and blank lines dropped, ``\\`` continuations
    joined (comment lines inside them skipped, as Docker does), heredoc bodies collected."""
    lines = text.splitlines()
    result: list[Instruction] = []
    index = 0
    while index < len(lines):
        start = index + 1
        logical = lines[index].rstrip()
        index += 1
        if not logical.strip() or logical.lstrip().startswith("#"):
            continue
        while logical.endswith("\\"):
            logical = logical[:-1]
            while index < len(lines) and lines[index].lstrip().startswith("#"):
                index += 1
            if index >= len(lines):
                raise DockerfileError(f"line {start}: continuation runs off the end of the file")
            logical += lines[index].rstrip()
            index += 1
        match = re.match(r"([A-Za-z]+)(?:\s+(.*))?$", logical.strip(), re.DOTALL)
        if match is None or match.group(1).upper() not in _KEYWORDS:
            raise DockerfileError(f"line {start}: not an instruction: {logical.strip()!r}")
        keyword, value = match.group(1).upper(), (match.group(2) or "").strip()
        if not value:
            raise DockerfileError(f"line {start}: {keyword} without arguments")
        heredocs = []
        if keyword in {"RUN", "COPY", "ADD"}:
            for doc in _HEREDOC.finditer(value):
                body = []
                while True:
                    if index >= len(lines):
                        raise DockerfileError(f"line {start}: heredoc {doc.group(3)} not closed")
                    line = lines[index]
                    index += 1
                    if (line.lstrip("\t") if doc.group(1) else line) == doc.group(3):
                        break
                    body.append(line)
                heredocs.append((doc.group(3), "\n".join(body) + "\n"))
        result.append(Instruction(keyword, value, start, tuple(heredocs)))
    return result


def split_stages(instructions: list[Instruction]) -> list[Stage]:
    stages: list[Stage] = []
    current: list[Instruction] = []
    head: tuple[str, str] | None = None
    for instruction in instructions:
        if instruction.keyword == "FROM":
            if head is not None:
                stages.append(Stage(head[0], head[1], tuple(current)))
            _, words = instruction.flags_and_args()
            if len(words) == 3 and words[1].upper() == "AS":
                head = (words[0], words[2])
            elif len(words) == 1:
                head = (words[0], "")
            else:
                raise DockerfileError(f"line {instruction.line}: FROM image [AS name]")
            current = []
        elif head is None:
            if instruction.keyword != "ARG":
                raise DockerfileError(f"line {instruction.line}: only ARG may come before FROM")
        else:
            current.append(instruction)
    if head is None:
        raise DockerfileError("no FROM")
    stages.append(Stage(head[0], head[1], tuple(current)))
    return stages


# --- .dockerignore, with the rules of Docker's patternmatcher ---------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "^", 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern[i + 1 : i + 2] == "*":
                i += 1
                if pattern[i + 1 : i + 2] == "/":
                    i += 1
                if i + 1 >= len(pattern):
                    out += ".*" if out == "^" else "(/.*)?"
                else:
                    out += "(.*/)?"
            else:
                out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(out + "$")


@cache
def _ignore_patterns() -> tuple[tuple[bool, re.Pattern[str]], ...]:
    patterns = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
        cleaned = re.sub(r"/+", "/", line).strip("/") or "."
        patterns.append((exclusion, _pattern_regex(cleaned)))
    return tuple(patterns)


def ignored(path: str) -> bool:
    """Whether Docker leaves ``path`` (relative, '/'-separated) out of the build context."""
    parents = path.split("/")[:-1]
    matched = False
    for exclusion, regex in _ignore_patterns():
        if exclusion != matched:
            continue
        hit = bool(regex.match(path)) or any(
            regex.match("/".join(parents[: n + 1])) for n in range(len(parents))
        )
        if hit:
            matched = not exclusion
    return matched


# --- fixtures -------------------------------------------------------------------------


@cache
def stages() -> list[Stage]:
    return split_stages(parse_dockerfile(DOCKERFILE.read_text()))


def copy_sources(stage: Stage) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context (not --from, no heredoc)."""
    result = []
    for copy in stage.all("COPY"):
        flags, words = copy.flags_and_args()
        if "from" in flags or copy.heredocs:
            continue
        result.append((words[:-1], words[-1]))
    return result


def context_files(source: str) -> list[str]:
    """Files under ``source`` (a file or a directory of the repository), repo-relative."""
    path = ROOT / source
    if path.is_file():
        return [source]
    return sorted(
        str(f.relative_to(ROOT))
        for f in path.rglob("*")
        if f.is_file() and "__pycache__" not in f.parts
    )


# --- the tests ------------------------------------------------------------------------


def test_dockerfile_parses_into_a_build_and_a_final_stage() -> None:
    parsed = stages()
    assert len(parsed) == 2, [s.name for s in parsed]
    build, final = parsed
    assert build.name == "build"
    assert final.name == ""
    assert DOCKERFILE.read_text().startswith("# syntax=docker/dockerfile:1\n"), (
        "heredocs, COPY --chmod and RUN --mount need the BuildKit Dockerfile frontend"
    )


def test_parser_handles_continuations_heredocs_and_refuses_junk() -> None:
    text = "FROM a AS b\nRUN x \\\n# comment\n  && y\nCOPY <<-EOF /f\n\tbody\n\tEOF\n"
    run, copy = parse_dockerfile(text)[1:]
    assert run.value == "x   && y"
    assert copy.heredocs == (("EOF", "\tbody\n"),)
    with pytest.raises(DockerfileError, match="not an instruction"):
        parse_dockerfile("FROM a\nFROB x\n")
    with pytest.raises(DockerfileError, match="not closed"):
        parse_dockerfile("FROM a\nRUN <<EOF\nx\n")


def test_dockerignore_rules_match_docker_semantics() -> None:
    for kept in ("pyproject.toml", "README.md", "sidecar/app.py", "tunnel/manager.py",
                 "sidecar/py.typed", "metrics/py.typed"):  # fmt: skip
        assert not ignored(kept), kept
    for dropped in (".venv/bin/python", ".git/HEAD", "tests/unit/test_chart.py",
                    "tests/localcluster/build-helm.sh", "tests/localcluster/kwok-stages.yaml",
                    ".mypy_cache/x.json", ".ruff_cache/x", ".pytest_cache/v", "private/config.ini",
                    "sidecar/__pycache__/app.cpython-311.pyc", "build/lib/sidecar/app.py",
                    "interlink_k8s_sidecar.egg-info/PKG-INFO", "chart/values.yaml",
                    "Dockerfile", "remote-kubeconfig.yaml", "id_ed25519"):  # fmt: skip
        assert ignored(dropped), dropped


def test_base_images_are_pinned_to_a_full_python_version() -> None:
    for stage in stages():
        assert re.fullmatch(
            r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", stage.image
        ), f"{stage.image}: pin python:3.11.<patch>-slim-bookworm"
    assert len({stage.image for stage in stages()}) == 1, "build and final on the same base"


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    for stage in stages():
        for sources, _ in copy_sources(stage):
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                files = context_files(source)
                assert files, f"COPY {source}: empty"
                left_out = [f for f in files if ignored(f)]
                assert not left_out, f"COPY {source}: .dockerignore drops {left_out[:5]}"


def test_build_stage_makes_a_wheel_of_the_package() -> None:
    build = stages()[0]
    copied = {s for sources, _ in copy_sources(build) for s in sources}
    assert {"pyproject.toml", "README.md", "sidecar", "tunnel", "metrics"} <= copied
    runs = " ".join(r.value for r in build.all("RUN"))
    assert "pip wheel --no-deps --wheel-dir /wheels ." in runs
    assert "--only-binary=:all:" in runs, "dependencies as binary wheels: no compiler needed"


def test_no_stage_copies_the_tests_into_the_image() -> None:
    # tests/ holds the development tooling (tests/localcluster, fixtures): never shipped.
    for stage in stages():
        for sources, _ in copy_sources(stage):
            for source in sources:
                top = Path(source).parts[0] if Path(source).parts else "."
                assert top not in {".", "tests"}, f"COPY {source}: copies tests/ into the image"
    assert ignored("tests/localcluster/__init__.py"), ".dockerignore must drop tests/"


def test_final_stage_installs_only_the_wheel_and_has_no_build_tools() -> None:
    final = stages()[1]
    assert copy_sources(final) == [], "the final stage gets the package from the wheel only"
    runs = final.all("RUN")
    installs = [r for r in runs if "pip install" in r.value]
    assert len(installs) == 1
    flags, _ = installs[0].flags_and_args()
    assert flags.get("mount") == "type=bind,from=build,source=/wheels,target=/wheels"
    assert "pip install --no-index --find-links=/wheels interlink-k8s-sidecar" in installs[0].value
    assert "pip uninstall --yes pip setuptools wheel" in installs[0].value
    for run in runs:
        for command in re.findall(r"(?:apt-get|apt|apk)\s+(?:install|add)\s+([^&;|]*)", run.value):
            assert not _BUILD_TOOLS.search(command), f"line {run.line}: build tools {command!r}"


def test_final_stage_runs_as_uid_10001_with_the_console_script() -> None:
    final = stages()[1]
    users = final.all("USER")
    assert users, "the final stage needs a USER"
    user = users[-1].value.split(":")
    assert user[0] == NON_ROOT_UID and user[-1] == NON_ROOT_UID, users[-1].value
    assert any(f"--uid {NON_ROOT_UID}" in r.value for r in final.all("RUN"))
    entrypoint = final.all("ENTRYPOINT")[-1].flags_and_args()[1]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == ["interlink-k8s-sidecar"]
    assert scripts["interlink-k8s-sidecar"] == "sidecar.__main__:main"


def test_default_config_is_closed_and_matches_volume(tmp_path: Path) -> None:
    final = stages()[1]
    env = {
        k: v
        for e in final.all("ENV")
        for k, _, v in (w.partition("=") for w in e.flags_and_args()[1])
    }
    (config_copy,) = [c for c in final.all("COPY") if c.heredocs]
    destination = config_copy.flags_and_args()[1][-1]
    assert env["CONFIG_FILE_PATH"] == destination
    path = tmp_path / "config.ini"
    path.write_text(config_copy.heredocs[0][1])
    config = settings.load(path, environ={})

    # Closed by default (README "Security"): the plugin API has no authentication, so
    # the image opens no port; interLink shares the socket's volume.
    (listen,) = config.app.listen
    assert listen.kind is ListenKind.UNIX, "the plugin API on a unix socket"
    assert config.app.socket_mode == 0o660, "interLink's group may connect, nobody else"
    assert insecure.is_loopback(config.app.ops_address)
    assert not final.all("EXPOSE"), "nothing listens outside the container"
    assert insecure.findings(config) == []

    volumes = {v for i in final.all("VOLUME") for v in i.flags_and_args()[1]}
    socket_dir = str(Path(listen.path).parent)
    # The only places the process writes; volumes, so that --read-only works.
    assert {config.app.state_dir, socket_dir} <= volumes
    for directory in (config.app.state_dir, socket_dir):
        assert any(
            f"-o {NON_ROOT_UID} -g {NON_ROOT_UID}" in r.value and directory in r.value
            for r in final.all("RUN")
        ), f"{directory} must exist and belong to the runtime user"


def test_build_context_makes_a_complete_wheel_whose_entry_point_runs(tmp_path: Path) -> None:
    # The build stage's context, exactly: its COPY sources minus .dockerignore.
    context = tmp_path / "context"
    for sources, _ in copy_sources(stages()[0]):
        for source in sources:
            for name in context_files(source):
                if not ignored(name):
                    (context / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / name, context / name)
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "--wheel-dir",
            str(wheels),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("interlink_k8s_sidecar-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(
            archive.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt")
        )
    for package in ("sidecar", "tunnel", "metrics"):
        assert f"{package}/__init__.py" in names
        assert f"{package}/py.typed" in names
    # The test tooling stays out: no Go build script, no kwok stages, no localcluster module.
    assert not [n for n in names if n.endswith(".sh") or "kwok" in n or "localcluster" in n]
    assert not [n for n in names if n.startswith("tests/") or "__pycache__" in n]
    assert "interlink-k8s-sidecar = sidecar.__main__:main" in entry_points

    helped = subprocess.run(
        [sys.executable, "-m", "sidecar", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=tmp_path,
    )
    assert helped.returncode == 0, helped.stderr
    assert "--config" in helped.stdout and "--check-config" in helped.stdout


def _runtime_closure(requirements: list[str]) -> set[str]:
    """Distributions (normalised names) installed for ``requirements``, without extras."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        if name in seen:
            continue
        seen.add(name)
        todo += [Requirement(r) for r in importlib.metadata.requires(req.name) or []]
    return seen


def test_every_runtime_import_is_a_runtime_dependency() -> None:
    # The image installs the wheel without extras: what the code imports must come with it.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = _runtime_closure(project["dependencies"])
    owners = importlib.metadata.packages_distributions()
    missing = set()
    for package in ("sidecar", "tunnel", "metrics"):
        for source in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text())):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in sys.stdlib_module_names or top in {"sidecar", "tunnel", "metrics"}:
                        continue
                    dists = {re.sub(r"[-_.]+", "-", d).lower() for d in owners.get(top, [top])}
                    if not dists & installed:
                        missing.add(f"{top} ({source.relative_to(ROOT)})")
    assert not missing, f"imported but not a runtime dependency: {sorted(missing)}"
