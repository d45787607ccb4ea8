"""A job module for tests/integration/test_zygote.py: says which module object's main() ran."""

import json
import sys

BODY_RUNS = [__name__]  # a second run of this body (runpy as __main__) would make a fresh list


def main() -> int:
    print(json.dumps({"body_runs": BODY_RUNS, "argv": sys.argv[1:], "stdin": sys.stdin.read()}))
    return 3


if __name__ == "__main__":
    sys.exit(main())
