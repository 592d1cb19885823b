"""Run every benchmark: ``python -m bench`` (or ``make bench``)."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path


def main() -> None:
    folder = Path(__file__).parent
    for info in sorted(pkgutil.iter_modules([str(folder)]), key=lambda m: m.name):
        if not info.name.startswith("bench_"):
            continue
        print(f"\n=== {info.name} ===", flush=True)
        module = importlib.import_module(f"bench.{info.name}")
        module.main()


if __name__ == "__main__":
    main()
