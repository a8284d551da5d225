"""``python -m tests.localcluster.build``: build (or find) the control-plane binaries, print them.

The test command (tests/bootstrap.sh) runs this before pytest so that a cold build shows
its progress.
"""

from __future__ import annotations

import sys

from tests.localcluster.binaries import LocalClusterError, ensure_binaries


def main() -> int:
    try:
        binaries = ensure_binaries(progress=lambda line: print(line, flush=True))
    except LocalClusterError as exc:
        print(f"local cluster: {exc}", file=sys.stderr)
        return 1
    for field in binaries.__dataclass_fields__:
        print(f"{field}: {getattr(binaries, field)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
