"""axe-core in headless Chromium: the npm package is installed by scripts/ensure-axe-core.sh
(``make test`` runs it) into .test-tools/axe; pages get it injected and report violations."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / ".test-tools" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
# Every rule of WCAG 2.x A and AA, plus axe's best practices that apply to a document
# (an email has no landmarks to speak of, so the landmark/region practices are left out).
RUN_OPTIONS = {
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"],
    },
    "rules": {
        "region": {"enabled": False},
        "landmark-one-main": {"enabled": False},
    },
}


def axe_script() -> Path:
    if AXE.is_file():
        return AXE
    if os.environ.get("CI") == "true":
        pytest.fail("axe-core is missing: run `make test` (scripts/ensure-axe-core.sh)")
    pytest.skip("axe-core is missing: run scripts/ensure-axe-core.sh")


def violations(page, options: dict | None = None) -> list[dict]:
    """axe-core's violations on the page as loaded (the context must bypass CSP)."""
    page.add_script_tag(path=str(axe_script()))
    result = page.evaluate("options => axe.run(document, options)", options or RUN_OPTIONS)
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"][:5]],
        }
        for v in result["violations"]
    ]
