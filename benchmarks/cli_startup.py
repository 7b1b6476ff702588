"""Start-up time of `coldstart --help`: as shipped (the command modules import their
heavy dependencies inside the commands) against the same with every such import done
at start, in fresh interpreters, alternating, medians.

    nice -n 10 python benchmarks/cli_startup.py --runs 5

The "eager" variant imports `coldstart.cli.app` and then every module a command of
`coldstart/cli/` imports inside its function (found with `ast`, so the list follows
the code). Optional extras that are not installed are skipped. Prints one Markdown
table and the load average.
"""

from __future__ import annotations

import argparse
import ast
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def lazy_modules() -> list[str]:
    """Modules imported inside functions of `coldstart/cli/*.py`."""
    found: list[str] = []
    for path in sorted((ROOT / "coldstart" / "cli").glob("*.py")):
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.append(node.module)
                elif isinstance(node, ast.Import):
                    found.extend(alias.name for alias in node.names)
    return sorted(set(found))


def timed(code: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    help_call = (
        "import sys\nfrom coldstart.cli import main\nsys.argv = ['coldstart', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
    )
    eager = "import importlib\n" + "".join(
        f"try:\n    importlib.import_module({m!r})\nexcept ImportError:\n    pass\n"
        for m in lazy_modules()
    )
    variants = {"as shipped": help_call, "eager imports": eager + help_call}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.runs):
        for name, code in variants.items():
            times[name].append(timed(code))
    base = statistics.median(times["as shipped"])
    print(f"load average at the end: {os.getloadavg()}")
    print("| variant | median s | runs | x as shipped |")
    print("|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {len(values)} | {median / base:.1f}x |")


if __name__ == "__main__":
    main()
