"""Property-based fuzzing of the plugin API at the HTTP boundary (issue 11).

Thousands of bodies per route, sent to the real sidecar process against the real
control plane: valid interLink bodies mutated (wrong types at any JSON path, missing and
extra fields, odd and huge strings, unicode, numbers out of range, deep nesting), and
raw garbage. Each route runs twice, with a fixed seed (hypothesis derandomised: it
generates the same way every run) and a random one (its seed printed on failure). Properties:

* never a 500, and no 5xx with the generic "internal error" line;
* every 4xx is one line of UTF-8 text naming the problem (a 422 names a JSON path or
  what the remote API server refused);
* nothing is created remotely for a refused body (no remote object carries its uid) and
  a refused ``/delete`` leaves the journal file byte for byte as it was;
* the process is alive at the end and its log holds no traceback and no ERROR line.

Bodies that are valid do create pods: each is deleted at once with ``/delete``, and at
the end nothing labelled with any uid the test used is left remotely. An anchor pod in
the fuzz namespace keeps it from being deleted and recreated between creates, and gives
``/status`` and ``/getLogs`` a pod that exists. ``FUZZ_SCALE`` (default 1) multiplies
the number of bodies; ``FUZZ_PROBLEMS=<n>`` prints the n most frequent refusals.
"""

from __future__ import annotations

import asyncio
import copy
import http.client
import json
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sidecar.core import naming
from tests import podshapes
from tests.deadlines import scaled
from tests.fixtures.sidecar_process import SidecarProcess, launch
from tests.integration.plugin_client import call, log_request, poll
from tests.localcluster import LocalCluster

pytestmark = pytest.mark.controlplane

NAMESPACE = "fuzz"
# Stand-ins replaced in the serialised body just before it is sent: every body gets a
# fresh pod uid (so fixed-seed runs never collide with earlier pods), and the anchor
# placeholder becomes the uid of the pod that exists.
FRESH_UID = "00000000-0000-4000-8000-00000000f022"
ANCHOR_UID = "00000000-0000-4000-8000-0000000a0c40"
SCALE = float(os.environ.get("FUZZ_SCALE", "1"))
# The least-privilege pass (SIDECAR_TEST_RBAC) repeats the integration suite: a smaller
# budget there still checks that RBAC refusals are answered in kind.
BUDGET = 0.3 if os.environ.get("SIDECAR_TEST_RBAC") else 1.0
GENERIC_500 = "internal error in the plugin"
INDEX = re.compile(r"\[\d+\]")
ERROR_LINE = re.compile(r"^\S+ (ERROR|CRITICAL) ", re.MULTILINE)
PLURALS = ("pods", "configmaps", "secrets", "persistentvolumeclaims")


def examples(fixed: int, mode: str) -> int:
    count = fixed if mode == "fixed" else fixed * 2 // 3
    return max(10, int(count * SCALE * BUDGET))


# --- talking to the sidecar ------------------------------------------------------------


class Plugin:
    """One keep-alive HTTP/1.1 connection to the plugin API, as interLink holds one."""

    def __init__(self, sidecar: SidecarProcess) -> None:
        self.host, port = sidecar.tcp_url.removeprefix("http://").split(":")
        self.port = int(port)
        self.conn: http.client.HTTPConnection | None = None

    def send(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                self.conn.request(
                    method,
                    path,
                    body=body,
                    headers={
                        "Content-Type": "application/json",
                        "InterLink-Http-Session": "Fuzz#1",
                    },
                )
                response = self.conn.getresponse()
                data = response.read()
                if response.will_close:
                    self.close()
                return response.status, data
            except (ConnectionError, http.client.HTTPException):
                # The server closed a kept-alive connection (after a 413 it must): again.
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class Tally:
    """What each route answered, for the summary and the cross-request checks."""

    codes: dict[str, Counter[int]] = field(default_factory=dict)
    created: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)

    problems: Counter[str] = field(default_factory=Counter)
    """Refusals by route and what they named (the JSON path, indexes folded)."""
    remote_failures: list[str] = field(default_factory=list)
    """What the first 5xx answers said (the remote side failed: allowed, but explained)."""

    def count(self, label: str, code: int, data: bytes = b"") -> None:
        self.codes.setdefault(label, Counter())[code] += 1
        if code >= 500 and len(self.remote_failures) < 5:
            self.remote_failures.append(f"{label} {code}: {data[:500].decode('utf-8', 'replace')}")
        if code != 200:
            named = INDEX.sub("[]", data.decode("utf-8", "replace").split(": ")[0])[:90]
            self.problems[f"{label.split()[0]} {code} {named}"] += 1


@dataclass
class Fuzz:
    sidecar: SidecarProcess
    cluster: LocalCluster
    plugin: Plugin
    journal: Path
    anchor: dict[str, Any]
    tally: Tally


def uid_of(pod: Any) -> str | None:
    meta = pod.get("metadata") if isinstance(pod, dict) else None
    uid = meta.get("uid") if isinstance(meta, dict) else None
    return uid if isinstance(uid, str) else None


def check_answer(route: str, code: int, data: bytes) -> str:
    """The properties every answer has; returns the text."""
    text = data.decode("utf-8")  # strict: errors are valid UTF-8
    assert code != 500, f"{route}: 500: {text[:2000]}"
    if code >= 500:
        assert GENERIC_500 not in text, f"{route}: {code} is the generic error: {text}"
    if 400 <= code < 500:
        assert text.endswith("\n") and text.count("\n") == 1, f"{route} {code}: {text!r}"
        assert len(text.strip()) > 3, f"{route} {code}: {text!r}"
        if code == 422:
            assert ": " in text, f"{route}: a 422 names what is wrong: {text!r}"
    return text


def journal_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def pending(path: Path) -> Any:
    """The journal's deletes not finished yet (empty when there is no journal)."""
    raw = journal_bytes(path)
    return json.loads(raw).get("pending") if raw else {}


def remote_uids(cluster: LocalCluster) -> dict[str, list[str]]:
    """Pod uid label -> our remote objects carrying it, all namespaces."""
    selector = f"{naming.OFFLOADING_LABEL}={naming.OFFLOADING_VALUE}"
    found: dict[str, list[str]] = {}
    for plural in PLURALS:
        listing = cluster.request("GET", f"/api/v1/{plural}?labelSelector={selector}")
        for item in listing.get("items", []):
            meta = item["metadata"]
            uid = (meta.get("labels") or {}).get(naming.POD_UID_LABEL, "")
            found.setdefault(uid, []).append(f"{plural}/{meta['namespace']}/{meta['name']}")
    return found


# --- the fixture: one sidecar, an anchor pod, and the clean-up --------------------------


def anchor_body(uid: str) -> dict[str, Any]:
    pod = podshapes.pod(
        uid, f"anchor-{uid[:8]}", {"containers": [podshapes.container("main")]}, namespace=NAMESPACE
    )
    return podshapes.body(pod)


@pytest.fixture(scope="module")
def fuzz(
    control_plane: LocalCluster,
    tmp_path_factory: pytest.TempPathFactory,
    pytestconfig: pytest.Config,
) -> Iterator[Fuzz]:
    directory = tmp_path_factory.mktemp("fuzz")
    state = directory / "state"
    sidecar = launch(directory, control_plane, name="fuzz", state_dir=state)
    plugin = Plugin(sidecar)
    tally = Tally()
    try:
        sidecar.wait_until_ready()
        anchor = anchor_body(str(uuid.uuid4()))
        asyncio.run(_start_anchor(sidecar, anchor))
        yield Fuzz(sidecar, control_plane, plugin, state / "pending-deletes.json", anchor, tally)
        assert sidecar.process.poll() is None, f"the sidecar died:\n{sidecar.log()[-5000:]}"
        asyncio.run(_delete_everything(sidecar, control_plane, anchor, tally))
    finally:
        plugin.close()
        if sidecar.process.poll() is None:
            sidecar.process.kill()
            sidecar.process.wait()
        _report(pytestconfig, tally)


def _report(pytestconfig: pytest.Config, tally: Tally) -> None:
    """Bodies per route and what they got, printed past pytest's output capture."""
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        for label, codes in sorted(tally.codes.items()):
            spread = ", ".join(f"{code}: {n}" for code, n in sorted(codes.items()))
            reporter.write_line(f"[fuzz] {label}: {sum(codes.values())} bodies ({spread})")
        if os.environ.get("FUZZ_PROBLEMS"):  # what the refusals named, most frequent first
            for problem, n in tally.problems.most_common(int(os.environ["FUZZ_PROBLEMS"])):
                reporter.write_line(f"[fuzz]   {n:5d} {problem}")
        for failure in tally.remote_failures:
            reporter.write_line(f"[fuzz]   {failure.strip()}")
        total = sum(sum(codes.values()) for codes in tally.codes.values())
        reporter.write_line(f"[fuzz] {total} bodies in all")


async def _start_anchor(sidecar: SidecarProcess, body: dict[str, Any]) -> None:
    code, answer = await call(sidecar, "POST", "/create", body)
    assert code == 200, answer

    async def states() -> list[str]:
        _, raw = await call(sidecar, "GET", "/status", [body["pod"]])
        return [next(iter(c["state"])) for c in json.loads(raw)[0]["containers"]]

    await poll("the anchor pod to run", states, lambda s: s == ["running"], timeout=60)


async def _delete_everything(
    sidecar: SidecarProcess, cluster: LocalCluster, anchor: dict[str, Any], tally: Tally
) -> None:
    code, answer = await call(sidecar, "POST", "/delete", anchor["pod"])
    assert code == 200, answer
    ours = tally.created | tally.refused | {anchor["pod"]["metadata"]["uid"]}

    async def left() -> dict[str, list[str]]:
        return {uid: objs for uid, objs in remote_uids(cluster).items() if uid in ours}

    await poll(
        "every pod the fuzz created to be deleted", left, lambda found: not found, timeout=90
    )


# --- mutation strategies -----------------------------------------------------------------

# Big and deep values stay small tokens in the generated body (hypothesis prints and
# copies it; the test process's own json would recurse 1,000 deep) and are expanded in
# the serialised text: "__DEEP_<n>__" nests n objects/lists, "__HUGE_<n>__" is n bytes.
_TOKEN = re.compile(r'"__(DEEP|HUGE)_(\d+)__"')


def _expand(match: re.Match[str]) -> str:
    size = int(match.group(2))
    if match.group(1) == "HUGE":
        return '"' + "u" * size + '"'
    opening = "".join('{"d":' if level % 2 else "[" for level in range(size))
    closing = "".join("}" if level % 2 else "]" for level in reversed(range(size)))
    return opening + '"leaf"' + closing


ODD_STRINGS = [
    "",
    " ",
    ".",
    "..",
    "-",
    "a" * 64,
    "a" * 254,
    "__HUGE_70000__",
    "UPPER",
    "kube-system",
    "default",
    "a/b",
    "a\nb",
    "\x00",
    "\u202e\u0645\u0631\u062d\u0628\u0627",
    "\U0001f600" * 10,
    "\udcff",
    "é",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-01:00",
    "10000-01-01T00:00:00Z",
    "2026-13-45T99:99:99Z",
    "metadata.name",
    "${HOME}",
    "'; DROP TABLE pods; --",
]
ODD_NUMBERS = [0, -1, 1, 2**31, 2**31 - 1, -(2**31), 2**63 - 1, 2**63, -(2**63), 10**20, 10**300]


wrong_values = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(ODD_NUMBERS),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(ODD_STRINGS),
    st.text(max_size=12),
    st.lists(st.one_of(st.integers(), st.text(max_size=4)), max_size=3),
    st.dictionaries(st.text(max_size=6), st.one_of(st.integers(), st.text(max_size=4)), max_size=3),
    st.integers(30, 120).map(lambda depth: f"__DEEP_{depth}__"),
    st.sampled_from(["__DEEP_1000__", "__DEEP_100000__", "__HUGE_1000000__"]),
)
extra_keys = st.one_of(
    st.sampled_from(["bogus", "metadata", "spec", "name", "uid", "é", "", "a.b/c", "$ref"]),
    st.text(max_size=8),
)

Path_ = tuple[str | int, ...]


def _paths(value: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


def _replace(root: Any, path: Path_, new: Any) -> Any:
    if not path:
        return new
    parent = root
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = new
    return root


def _get(root: Any, path: Path_) -> Any:
    for step in path:
        root = root[step]
    return root


@st.composite
def mutated(draw: st.DrawFn, bases: list[Any]) -> Any:
    """A base body with one to three mutations at drawn JSON paths."""
    body = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(1, 3))):
        # Not the root: replacing the whole body is what the garbage test does.
        paths = list(_paths(body))[1:] or [()]
        path = draw(st.sampled_from(paths))
        current = _get(body, path)
        op = draw(st.sampled_from(["set", "set", "drop", "extra", "wrap", "string", "number"]))
        if op == "drop" and path:
            parent = _get(body, path[:-1])
            del parent[path[-1]]
        elif op == "extra" and isinstance(current, dict):
            current[draw(extra_keys)] = draw(wrong_values)
        elif op == "extra" and isinstance(current, list):
            current.append(draw(wrong_values))
        elif op == "wrap":
            wrapped = draw(st.sampled_from(["list", "object", "string"]))
            new = {"list": [current], "object": {"v": current}, "string": json.dumps(current)}
            body = _replace(body, path, new[wrapped])
        elif op == "string" and isinstance(current, str):
            odd = draw(st.one_of(st.sampled_from(ODD_STRINGS), st.text(min_size=1, max_size=8)))
            new_text = draw(st.sampled_from([odd, current + odd, odd + current]))
            body = _replace(body, path, new_text)
        elif op == "number" and isinstance(current, int | float):
            body = _replace(body, path, draw(st.sampled_from(ODD_NUMBERS)))
        else:
            body = _replace(body, path, draw(wrong_values))
    return body


def serialise(body: Any, anchor_uid: str) -> tuple[bytes, Any]:
    """The body as sent (placeholders and tokens replaced) and as the sidecar will read
    it (None when too deep for this process's json: refused whole anyway)."""
    text = json.dumps(body).replace(FRESH_UID, str(uuid.uuid4())).replace(ANCHOR_UID, anchor_uid)
    text = _TOKEN.sub(_expand, text)
    try:
        return text.encode(), json.loads(text)
    except RecursionError:
        return text.encode(), None


# --- base bodies -------------------------------------------------------------------------

SHAPES = [
    "multi-container",
    "init-and-native-sidecar",
    "shared-volumes",
    "env-refs",
    "probes-and-hooks",
    "security-context",
    "tricky-args",
]


def in_namespace(body: dict[str, Any]) -> dict[str, Any]:
    body["pod"]["metadata"]["namespace"] = NAMESPACE
    for entry in body["container"]:
        for key in ("configMaps", "secrets", "projectedvolumemaps"):
            for obj in entry.get(key) or []:
                obj["metadata"]["namespace"] = NAMESPACE
    return body


CREATE_BASES = [in_namespace(podshapes.SHAPES[name](FRESH_UID)) for name in SHAPES]
POD_BASES = [body["pod"] for body in CREATE_BASES[:4]]


def anchor_pod(fuzz: Fuzz) -> dict[str, Any]:
    pod = copy.deepcopy(fuzz.anchor["pod"])
    pod["metadata"]["uid"] = ANCHOR_UID
    return pod


# --- the properties, per route -----------------------------------------------------------

MODES = ["fixed", "random"]


def run(
    strategy: st.SearchStrategy[Any], check: Callable[[Any], None], *, count: int, mode: str
) -> None:
    @settings(
        max_examples=count,
        derandomize=mode == "fixed",
        database=None,
        deadline=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(strategy)
    def body_holds(case: Any) -> None:
        check(case)

    body_holds()


def assert_healthy(fuzz: Fuzz) -> None:
    assert fuzz.sidecar.process.poll() is None, f"the sidecar died:\n{fuzz.sidecar.log()[-5000:]}"
    log = fuzz.sidecar.log()
    assert "Traceback" not in log, log[log.index("Traceback") - 2000 :][:6000]
    errors = ERROR_LINE.findall(log)
    assert not errors, [line for line in log.splitlines() if ERROR_LINE.match(line)][:20]
    code, data = fuzz.plugin.send("GET", "/status", b"[]")
    assert code == 200, data


garbage = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.text(max_size=6), children, max_size=4),
        ),
        max_leaves=25,
    ).map(lambda v: json.dumps(v).encode()),
    st.sampled_from(
        [
            b"",
            b" \n\t",
            b"null",
            b"[]",
            b"{}",
            b"[null]",
            b'""',
            b"NaN",
            b"[1e999]",
            b'"\\ud800"',
            b"1" * 5000,
            b"\xef\xbb\xbf{}",
            b"\xff\xfe[\x00]\x00",
            b"[" * 100_000,
            b"[" * 100_000 + b"]" * 100_000,
            b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
            b'{"pod": ' * 70 + b"{}" + b"}" * 70,
        ]
    ),
    # A valid create cut short (never whole: garbage must not create pods).
    st.tuples(st.sampled_from(CREATE_BASES), st.floats(0, 0.999)).map(
        lambda pair: (text := json.dumps(pair[0]).encode())[: int(len(text) * pair[1])]
    ),
)
routes = st.sampled_from(
    [
        ("POST", "/create"),
        ("POST", "/delete"),
        ("GET", "/status"),
        ("POST", "/status"),
        ("GET", "/getLogs"),
        ("POST", "/getLogs"),
    ]
)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", MODES)
def test_garbage_is_refused_in_kind(fuzz: Fuzz, mode: str) -> None:
    """Bytes that are not a body at all: 400 (or 422 for JSON of the wrong shape)."""

    def check(case: tuple[tuple[str, str], bytes]) -> None:
        (method, path), raw = case
        raw = raw.replace(FRESH_UID.encode(), str(uuid.uuid4()).encode())
        before = journal_bytes(fuzz.journal)
        code, data = fuzz.plugin.send(method, path, raw)
        fuzz.tally.count(f"garbage {mode}", code, data)
        check_answer(path, code, data)
        if code != 200:
            assert journal_bytes(fuzz.journal) == before, "a refused body changed the journal"
        elif path == "/create":  # a cut that kept the whole body: a valid create
            created(fuzz, json.loads(raw)["pod"])

    run(st.tuples(routes, garbage), check, count=examples(500, mode), mode=mode)
    assert_healthy(fuzz)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", MODES)
def test_delete_bodies(fuzz: Fuzz, mode: str) -> None:
    """A refused /delete journals nothing: the journal file is unchanged."""

    def check(case: Any) -> None:
        raw, _ = serialise(case, fuzz.anchor["pod"]["metadata"]["uid"])
        before = journal_bytes(fuzz.journal)
        code, data = fuzz.plugin.send("POST", "/delete", raw)
        fuzz.tally.count(f"/delete {mode}", code, data)
        check_answer("/delete", code, data)
        if code != 200:
            assert journal_bytes(fuzz.journal) == before, f"refused ({code}) but journalled"

    # The janitor rewrites the journal when it finishes a deferred delete: wait until
    # it has none, so that every change seen below is the request's own.
    assert not poll_sync("no pending delete", lambda: pending(fuzz.journal), timeout=90)
    # Never the anchor's uid: its delete would end the run's anchor.
    run(mutated(POD_BASES), check, count=examples(700, mode), mode=mode)
    assert_healthy(fuzz)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", MODES)
def test_status_bodies(fuzz: Fuzz, mode: str) -> None:
    """Lists of pods (one unknown, the anchor, both, none), mutated."""
    anchor = anchor_pod(fuzz)
    bases: list[Any] = [[POD_BASES[0]], [anchor], [POD_BASES[2], anchor], []]

    def check(case: Any) -> None:
        raw, sent = serialise(case, fuzz.anchor["pod"]["metadata"]["uid"])
        method = "GET" if len(raw) % 2 else "POST"
        code, data = fuzz.plugin.send(method, "/status", raw)
        fuzz.tally.count(f"/status {mode}", code, data)
        text = check_answer("/status", code, data)
        if code == 200 and isinstance(sent, list) and sent:
            assert len(json.loads(text)) == len(sent), "one entry per pod"

    run(mutated(bases), check, count=examples(900, mode), mode=mode)
    assert_healthy(fuzz)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", MODES)
def test_log_bodies(fuzz: Fuzz, mode: str) -> None:
    """LogStructs for the anchor's container (it exists) and for an unknown pod."""
    anchor = fuzz.anchor["pod"]
    for_anchor = log_request(anchor, "main") | {"PodUID": ANCHOR_UID}
    unknown = log_request(anchor, "main") | {"PodUID": FRESH_UID}
    options = dict(for_anchor, Opts=for_anchor["Opts"] | {"Tail": 3, "Timestamps": True})

    def check(case: Any) -> None:
        raw, sent = serialise(case, anchor["metadata"]["uid"])
        opts = sent.get("Opts") if isinstance(sent, dict) else None
        if isinstance(opts, dict) and opts.get("Follow") is True:
            # A follow of a running container never ends by itself: not what this
            # test is about (tests/integration/test_logs.py is).
            opts["Follow"] = False
            raw = json.dumps(sent).encode()
        method = "GET" if len(raw) % 2 else "POST"
        code, data = fuzz.plugin.send(method, "/getLogs", raw)
        fuzz.tally.count(f"/getLogs {mode}", code, data)
        if code != 200:
            check_answer("/getLogs", code, data)

    run(mutated([for_anchor, unknown, options]), check, count=examples(700, mode), mode=mode)
    assert_healthy(fuzz)


@pytest.mark.timeout(420)
@pytest.mark.parametrize("mode", MODES)
def test_create_bodies(fuzz: Fuzz, mode: str) -> None:
    """Mutated pod shapes: refused ones create nothing remotely; created ones are
    deleted at once."""

    def check(case: Any) -> None:
        raw, sent = serialise(case, fuzz.anchor["pod"]["metadata"]["uid"])
        pod = sent.get("pod") if isinstance(sent, dict) else None
        uid = uid_of(pod)
        code, data = fuzz.plugin.send("POST", "/create", raw)
        fuzz.tally.count(f"/create {mode}", code, data)
        text = check_answer("/create", code, data)
        if code == 200:
            assert uid is not None and json.loads(text)["PodUID"] == uid
            created(fuzz, pod)
        elif uid is not None:
            fuzz.tally.refused.add(uid)

    run(mutated(CREATE_BASES), check, count=examples(1100, mode), mode=mode)
    assert_healthy(fuzz)
    refused = fuzz.tally.refused - fuzz.tally.created
    # Rolled back before the answer; a rollback that failed is retried by the janitor.
    leaked = poll_sync(
        "no remote object of a refused create",
        lambda: {u: objs for u, objs in remote_uids(fuzz.cluster).items() if u in refused},
        timeout=60,
    )
    assert not leaked, leaked


def created(fuzz: Fuzz, pod: dict[str, Any]) -> None:
    """A pod the fuzz created: deleted at once, and checked gone at the end."""
    uid = uid_of(pod)
    assert uid is not None
    fuzz.tally.created.add(uid)
    code, answer = fuzz.plugin.send("POST", "/delete", json.dumps(pod).encode())
    assert code == 200, answer


def poll_sync(what: str, fetch: Callable[[], Any], *, timeout: float) -> Any:
    deadline = time.monotonic() + scaled(timeout)
    while True:
        value = fetch()
        if not value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)  # polling a condition with a deadline
