"""``python -m tests.localcluster.realnode clean``: undo what a crashed real node left on
this host (every slot whose run is gone); a start does the same on its own."""

from __future__ import annotations

import sys

from tests.localcluster.realnode.host import clean_leftovers


def main(argv: list[str]) -> int:
    if argv != ["clean"]:
        print("usage: python -m tests.localcluster.realnode clean", file=sys.stderr)
        return 2
    cleaned = clean_leftovers()
    print(f"cleaned slot(s): {cleaned}" if cleaned else "nothing left behind")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
