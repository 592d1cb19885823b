"""Files only their owner may read (the settings file, the database and its side files):
created private from the start, never through a planted link, and older ones tightened."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import IO


def ensure_folder(folder: Path) -> None:
    """Create ``folder`` (for the settings file or the database) unless it exists."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        # mkdir says "File exists" when a file stands where a folder should be.
        raise NotADirectoryError(errno.ENOTDIR, f"{folder} is not a folder") from None


PRIVATE_MODE = 0o600


def open_private(path: Path) -> IO[str]:
    """A new text file only its owner can read (0600 whatever the umask); FileExistsError
    when something is already there (never follows a planted link)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, PRIVATE_MODE)
    os.fchmod(fd, PRIVATE_MODE)  # the umask can only take bits away; this is explicit
    return os.fdopen(fd, "w", encoding="utf-8", newline="")


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def make_private(path: Path) -> None:
    """Take group and world bits off an existing file of ours (an older version's 0644)."""
    try:
        info = path.stat()
        if info.st_mode & 0o077 and info.st_uid == os.getuid():
            path.chmod(info.st_mode & 0o700)
    except OSError:
        pass  # not ours or gone: the open that follows reports real problems
