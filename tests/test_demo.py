"""The README's main command, `make demo`, end to end on the bundled sample data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_demo_runs_end_to_end_and_leaves_mail_and_preview(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_DEMO_DIR"] = str(out)
    done = subprocess.run(
        [sys.executable, "-m", "newsletter.demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert str(out / "received-mail") in done.stdout

    # One edition with a variant for each language the sample subscribers read.
    previews = sorted((out / "editions").glob("edition-*.html"))
    assert [p.name for p in previews] == [
        "edition-1.en.html",
        "edition-1.html",
        "edition-1.sv.html",
    ]
    assert all(p.with_suffix(".txt").exists() for p in previews)
    mails = sorted((out / "received-mail").glob("*.eml"))

    status = subprocess.run(
        [sys.executable, "-m", "newsletter", "status", "1", "--json"],
        cwd=out,
        env={**env, "NEWSLETTER_CONFIG": str(out / "newsletter.toml")},
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(status.stdout)
    assert report["pending"] == 0 and report["sent"] == len(mails) > 0

    first = message_from_bytes(mails[0].read_bytes(), policy=policy.default)
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Yhteisövaikuttavuus" in str(first["Subject"])
    html = first.get_body(("html",)).get_content()
    assert "%%" not in html and 'lang="fi"' in html
    # The demo ends by one-click unsubscribing the first recipient through `newsletter serve`.
    assert "-> HTTP 200" in done.stdout
