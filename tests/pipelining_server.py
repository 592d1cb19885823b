"""A small SMTP server on loopback that offers PIPELINING (RFC 2920) and injects faults.

aiosmtpd does not offer PIPELINING, and Postfix's smtp-sink turns it off as soon as it is
told to refuse anything, so the pipelining tests use this one. With ``hold_replies`` (the
default) it answers MAIL and RCPT only once the group's DATA (or RSET/QUIT/NOOP) has
arrived, as RFC 2920 lets a server do: a client that waited for each reply would stall,
so every delivery through it proves the client pipelined. ``rcpt_reply`` decides per
recipient: a reply line, ``"drop"`` (close the connection, group unanswered) or None (250).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Received:
    sender: str
    recipient: str
    data: bytes  # as the client meant it: dot-stuffing undone, final CRLF.CRLF removed


@dataclass
class PipeliningServer:
    offer_pipelining: bool = True
    hold_replies: bool = True
    accept_data_without_recipients: bool = False  # answer 354 even when every RCPT failed
    mail_reply: Callable[[str], str | None] = lambda address: None
    rcpt_reply: Callable[[str], str | None] = lambda address: None
    data_reply: Callable[[str], str | None] = lambda address: None
    messages: list[Received] = field(default_factory=list)
    commands_waiting: list[int] = field(default_factory=list)  # per MAIL: lines queued behind it
    behind_dot: list[bytes] = field(default_factory=list)  # per final dot: what came with it
    sessions: int = 0
    host: str = "127.0.0.1"
    port: int = 0

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._session, self.host, 0))
        self.port = server.sockets[0].getsockname()[1]
        self._server = server
        ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sessions += 1
        try:
            await _Session(self, reader, writer).run()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


class _Dropped(Exception):
    pass


class _Session:
    def __init__(
        self, server: PipeliningServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.pending: list[bytes] = []  # replies held until the group ends
        self.sender = ""
        self.recipients: list[str] = []

    def reply(self, line: str, *, now: bool = False) -> None:
        self.pending.append(line.encode() + b"\r\n")
        if now or not self.server.hold_replies:
            self.flush()

    def flush(self) -> None:
        self.writer.write(b"".join(self.pending))
        self.pending.clear()

    async def run(self) -> None:
        self.reply("220 pipe.test ESMTP", now=True)
        while line := await self.reader.readline():
            verb, _, argument = line.decode().strip().partition(" ")
            try:
                if not await self.command(verb.upper(), argument):
                    break
            except _Dropped:
                return
            await self.writer.drain()

    async def command(self, verb: str, argument: str) -> bool:
        if verb in ("EHLO", "HELO"):
            extensions = ["250-pipe.test", "250-8BITMIME"]
            if self.server.offer_pipelining:
                extensions.append("250-PIPELINING")
            self.reply("\r\n".join([*extensions, "250 SMTPUTF8"]), now=True)
        elif verb == "MAIL":
            # Lines the client wrote before it could have seen this reply.
            self.server.commands_waiting.append(self.reader._buffer.count(b"\n"))
            answer = self.server.mail_reply(_address(argument))
            self.sender, self.recipients = ("", []) if answer else (_address(argument), [])
            self.reply(answer or "250 2.1.0 ok")
        elif verb == "RCPT" and not self.sender:
            self.reply("503 5.5.1 MAIL first")
        elif verb == "RCPT":
            self.rcpt(_address(argument))
        elif verb == "DATA":
            await self.data()
        elif verb == "QUIT":
            self.reply("221 2.0.0 bye", now=True)
            return False
        else:  # RSET, NOOP
            self.sender, self.recipients = "", []
            self.reply("250 2.0.0 ok", now=True)
        return True

    def rcpt(self, address: str) -> None:
        answer = self.server.rcpt_reply(address)
        if answer == "drop":
            self.writer.close()
            raise _Dropped
        if answer is None:
            self.recipients.append(address)
            answer = "250 2.1.5 ok"
        self.reply(answer)

    async def data(self) -> None:
        if not self.recipients and not (self.sender and self.server.accept_data_without_recipients):
            self.reply("554 5.5.1 no valid recipients", now=True)
            return
        self.reply("354 go ahead", now=True)
        lines = []
        while (line := await self.reader.readline()) != b".\r\n":
            if not line:
                raise _Dropped
            lines.append(line[1:] if line.startswith(b".") else line)
        self.server.behind_dot.append(bytes(self.reader._buffer))
        body = b"".join(lines)
        if not self.recipients:
            self.reply("554 5.5.1 no valid recipients", now=True)
            return
        answer = self.server.data_reply(self.recipients[0])
        if answer == "drop":
            self.writer.close()
            raise _Dropped
        if answer is not None:
            self.reply(answer, now=True)
            return
        for recipient in self.recipients:
            self.server.messages.append(Received(self.sender, recipient, body))
        self.reply("250 2.0.0 queued", now=True)


def _address(argument: str) -> str:
    start, end = argument.find("<"), argument.find(">")
    return argument[start + 1 : end]
