#!/usr/bin/env python3
"""Type-check the library packages with mypy against a baseline that may not grow.

    python .ci/mypy_baseline.py            # fails on any error not in the baseline
    python .ci/mypy_baseline.py --update   # rewrite the baseline (after fixing errors)

mypy's settings (packages, strictness) are in pyproject.toml (`[tool.mypy]`). The
baseline, `.ci/mypy-baseline.txt`, lists the errors found when the check was added,
one per line as `path: message  [code]` (no line numbers, so editing a file does not
move its entries); a repeated error is listed as often as it occurs. An error not
covered by the baseline fails the check; errors fixed since are reported so the
baseline can be shrunk with `--update`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / ".ci" / "mypy-baseline.txt"
ERROR = re.compile(r"^(?P<path>[^:]+):\d+(?::\d+)?: error: (?P<message>.*)$")


def current_errors() -> Counter[str]:
    run = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if run.returncode not in (0, 1):  # 2: mypy itself failed (bad config, crash)
        sys.exit(f"mypy failed to run:\n{run.stdout}{run.stderr}")
    errors: Counter[str] = Counter()
    for line in run.stdout.splitlines():
        match = ERROR.match(line)
        if match:
            errors[f"{match['path']}: {match['message']}"] += 1
    return errors


def main() -> int:
    errors = current_errors()
    if "--update" in sys.argv[1:]:
        BASELINE.write_text("".join(f"{e}\n" for e in sorted(errors.elements())))
        print(f"wrote {BASELINE.relative_to(ROOT)}: {sum(errors.values())} errors")
        return 0
    lines = BASELINE.read_text().splitlines() if BASELINE.exists() else []
    baseline = Counter(line for line in lines if line.strip())
    new = errors - baseline
    fixed = baseline - errors
    print(
        f"mypy: {sum(errors.values())} errors, baseline {sum(baseline.values())}, "
        f"new {sum(new.values())}, fixed {sum(fixed.values())}"
    )
    if fixed:
        print("fixed since the baseline (shrink it with --update):")
        for error in sorted(fixed):
            print(f"  {error}")
    if new:
        print("new type errors (not in .ci/mypy-baseline.txt):")
        for error in sorted(new.elements()):
            print(f"  {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
