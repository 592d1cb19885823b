"""Confirmation mails leave from a background thread, after the page has been answered.

The sign-up page must look and take the same whether or not an address was known; mailing
inside the request would make the answer slower exactly when a mail goes out. A mail lost
to a crash leaves an unconfirmed sign-up that the person can simply repeat.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Callable

from sqlite_utils import Database

from newsletter.config import Settings
from newsletter.store.db import open_db

log = logging.getLogger("newsletter.web")
Job = tuple[int, str]
Sender = Callable[[Database, Settings, int, str], bool]


def _without_addresses(text: str) -> str:
    # SMTP replies often quote the recipient; logs must not collect addresses.
    return re.sub(r"\S+@\S+", "<address>", text)


class Outbox:
    def __init__(self, settings: Settings, send: Sender) -> None:
        self._settings = settings
        self._send = send
        self._queue: queue.Queue[Job] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, subscriber_id: int, lang: str) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="confirmation-mail", daemon=True
                )
                self._thread.start()
        self._queue.put((subscriber_id, lang))

    def join(self) -> None:
        """Wait until every submitted mail has been tried."""
        self._queue.join()

    def _run(self) -> None:
        db = open_db(self._settings.db)
        while True:
            subscriber_id, lang = self._queue.get()
            try:
                self._send(db, self._settings, subscriber_id, lang)
            except Exception as exc:  # one failed mail must not stop the others
                log.error(
                    "confirmation mail to subscriber %s failed: %s: %s",
                    subscriber_id,
                    type(exc).__name__,
                    _without_addresses(str(exc)),
                )
            finally:
                self._queue.task_done()
