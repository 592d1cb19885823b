"""Inputs a command cannot use get one true line: what is wrong with them."""

from __future__ import annotations

import mailbox
import os
from pathlib import Path

import pytest

PLAIN = b"From: kalle@example.fi\nSubject: Kiitos uutiskirjeesta\n\nHyva lehti!\n"


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("/dev/null", "not a regular file (a device, pipe or socket)"),
        ("folder", "is a folder"),
        ("missing.csv", "no such file"),
    ],
)
def test_subscribers_import_says_what_the_path_is(cli, workdir, given: str, says: str) -> None:
    (workdir / "folder").mkdir()
    result = cli("subscribers", "import", given)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"error: {given}: {says}" + _rest(says)]
    assert "Traceback" not in result.output


def _rest(says: str) -> str:
    return {
        "is a folder": ": give the CSV file inside it",
        "no such file": "",
    }.get(says, ": save the list to a CSV file and import that")


def test_subscribers_import_from_a_pipe_is_refused(cli, workdir) -> None:
    os.mkfifo(workdir / "pipe.csv")  # nothing writes to it: reading would hang
    result = cli("subscribers", "import", "pipe.csv")
    assert result.exit_code == 1 and "not a regular file" in result.stderr


def test_bounces_import_gives_the_reason_for_a_message_that_is_not_a_report(
    cli, workdir: Path
) -> None:
    box = mailbox.Maildir(str(workdir / "Maildir"))
    garbage = box.add(b"\x00\x01 not a mail at all\n")
    plain = box.add(PLAIN)
    out = cli.ok("bounces", "import", str(workdir / "Maildir")).stdout
    lines = {line.split(": ", 2)[1]: line for line in out.splitlines() if "not a report" in line}
    why = "neither a delivery status notification nor a complaint report"
    assert lines[garbage] == f"  not a report: {garbage}: {why}"
    assert lines[plain] == f"  not a report: {plain}: {why} (subject: Kiitos uutiskirjeesta)"
