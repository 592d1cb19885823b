"""Run every benchmark: ``python -m bench`` (or ``make bench``).

Each benchmark runs in a fresh interpreter: peak-memory figures come from ``ru_maxrss``,
which a child inherits from the process that forked it, so one benchmark's memory must not
leak into the next one's measurements.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path


def main() -> None:
    folder = Path(__file__).parent
    failed = []
    for info in sorted(pkgutil.iter_modules([str(folder)]), key=lambda m: m.name):
        if not info.name.startswith("bench_"):
            continue
        print(f"\n=== {info.name} ===", flush=True)
        code = f"import bench.{info.name} as b; b.main()"
        done = subprocess.run([sys.executable, "-c", code], cwd=folder.parent)
        if done.returncode != 0:
            failed.append(info.name)
    if failed:
        sys.exit(f"benchmarks that failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
