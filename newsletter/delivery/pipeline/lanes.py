"""The lanes: each carries one SMTP session and the slice of jobs handed to it; all lanes
run in the dispatcher's thread on one ``mail.session.Loop``. Every job gets exactly one
result back, whatever happens.

A lane goes on with its next message at once, but holds back that message's final dot
until the dispatcher has written the result of the one before (``proceed``): without its
dot no server accepts a message. So each lane has at most one accepted message whose result
is not yet in the database, which bounds the second copies a hard kill can cause to the
number of lanes, while the rendering, the envelope and the body of the next message overlap
the wait, and one write covers the results of all lanes. When the server pipelines, the
envelope of the message after goes in the same write as the released dot.
"""

from __future__ import annotations

import time
from collections import deque

from newsletter import links
from newsletter.config import Settings
from newsletter.delivery.pipeline.jobs import Job, Result
from newsletter.delivery.pipeline.planning import EditionMessages
from newsletter.mail import message, smtp
from newsletter.mail.session import Event, Loop, Session


def render_for(
    template: message.EditionMessage,
    settings: Settings,
    key: bytes,
    email: str,
    name: str,
    subscriber_id: int,
    topic_id: int,
    *,
    stuffed: bool = False,
) -> tuple[bytes, str]:
    """The edition addressed to one person, with their signed unsubscribe and preferences
    links: (bytes of the message, Message-ID); ``stuffed``: as DATA carries it."""
    unsubscribe, preferences, mailto = links.recipient_links(settings, key, subscriber_id, topic_id)
    render = template.render_stuffed if stuffed else template.render
    return render(
        to_email=email,
        to_name=name,
        unsubscribe_url=unsubscribe,
        preferences_url=preferences,
        unsubscribe_mailto=mailto,
    )


class Letters:
    """Each job's message: the edition addressed to the person, with their signed links and
    bounce address, ready for DATA; or the result that says why there is none."""

    def __init__(
        self, settings: Settings, template: EditionMessages, key: bytes, edition_id: int
    ) -> None:
        self.settings = settings
        self.template = template
        self.key = key
        self.edition_id = edition_id

    def prepare(self, job: Job) -> tuple[str, str, bytes, str] | Result:
        """(envelope sender, recipient, message, Message-ID), or the job's result."""
        assert job.subscriber_id is not None
        try:
            data, message_id = render_for(
                self.template.for_lang(job.lang), self.settings, self.key, job.email, job.name,
                job.subscriber_id, job.topic_id, stuffed=True,
            )  # fmt: skip
            recipient = smtp.envelope_address(job.email)
        except smtp.PermanentFailure as exc:
            return Result(job, error=exc)
        except message.AddressError as exc:
            return Result(job, invalid=str(exc))
        except Exception as exc:  # the dispatcher must always get an answer
            return Result(job, crash=exc)
        # VERP: the bounce address names this person and edition (links.envelope_sender).
        sender = links.envelope_sender(self.settings, self.key, job.subscriber_id, self.edition_id)
        return sender, recipient, data, message_id


class Lane:
    """One connection's share of the send: its slice, the job under way, and its number."""

    def __init__(self, number: int, session: Session) -> None:
        self.number = number
        self.session = session
        self.slice: deque[Job] = deque()
        self.job: Job | None = None  # sent or being sent, its result not yet given
        self.message_id = ""
        # The next one, its commands already behind the job's final dot (Session.release).
        self.queued: tuple[Job, str] | None = None
        self.unrecorded = False  # its last result is not written yet: the next dot waits
        # Set before its last result goes out: the dispatcher hands a retired lane nothing.
        self.retired = False

    @property
    def idle(self) -> bool:
        return not self.retired and self.job is None and not self.slice

    def release(self, letters: Letters) -> Result | None:
        """Let the held dot go, with the next message's envelope behind it when the
        session can take it; the next job's result when it has no message (a bad address:
        nothing to queue, and no reason to make its letter again later)."""
        session = self.session
        if self.job is None or not self.slice or not session.can_queue:
            session.release()
            return None
        letter = letters.prepare(self.slice[0])
        if isinstance(letter, Result):
            session.release()
            self.slice.popleft()
            return letter
        sender, recipient, data, message_id = letter
        if session.release((sender, recipient, data)):
            self.queued = (self.slice.popleft(), message_id)
        return None

    def give_back(self) -> Result:
        """The job under way, unsent: its session closes before its dot could go."""
        if self.job is None or self.queued is not None:  # queued only behind a dot that went
            raise RuntimeError("only a job whose dot is held can be given back")
        result, self.job = Result(self.job, skipped=True), None
        return result

    def rest_skipped(self) -> list[Result]:
        """The rest of the slice, handed back unsent (its rows stay pending)."""
        rest = [Result(job, skipped=True) for job in self.slice]
        self.slice.clear()
        return rest

    def next_in_line(self) -> None:
        """The job's result is out: the queued one, if any, is the job now."""
        self.job = None
        if self.queued is not None:  # its session already runs it
            (self.job, self.message_id), self.queued = self.queued, None


class Lanes:
    """All lanes of a send, the renderer they share and the results ready for the dispatcher."""

    def __init__(
        self, settings: Settings, template: EditionMessages, key: bytes, edition_id: int
    ) -> None:
        self.settings = settings
        self.letters = Letters(settings, template, key, edition_id)
        self.loop = Loop()
        self.lanes: list[Lane] = []
        self.ready: list[Result] = []
        self.stopping = False  # nothing new starts; what waits for its dot is dropped

    def hire(self, count: int) -> None:
        for _ in range(count):
            self.lanes.append(Lane(len(self.lanes), Session(self.settings, self.loop)))

    def live(self) -> int:
        return sum(not lane.retired for lane in self.lanes)

    def idle_lane(self) -> Lane | None:
        return next((lane for lane in self.lanes if lane.idle), None)

    def hand(self, lane: Lane, jobs: list[Job]) -> None:
        lane.slice.extend(jobs)
        self._next(lane)

    def poll(self, timeout: float) -> list[Result]:
        """Run the sessions for up to ``timeout`` seconds; the results to write, once a lane
        needs them written (it waits to send a dot, or has nothing else to do)."""
        end = time.monotonic() + timeout
        sessions = [lane.session for lane in self.lanes]
        while not (self.ready and self._write_needed()):
            for event in self.loop.poll(max(0.0, end - time.monotonic()), sessions):
                self._event(event)
            if time.monotonic() >= end:
                if timeout == 0 and not self._write_needed():
                    return []  # nobody waits for these yet: more may join the write
                break  # a whole wait went by: write what there is
        ready, self.ready = self.ready, []
        return ready

    def _write_needed(self) -> bool:
        if self.stopping:
            return True
        return any(
            lane.unrecorded and (lane.job is None or lane.session.state != "busy"
                                 or lane.session.awaiting_dot)
            for lane in self.lanes
        )  # fmt: skip

    def proceed(self, go_on: bool) -> None:
        """After the results are written: each lane's next message may end (its dot goes);
        when the send stops instead, a message still waiting for its dot is dropped."""
        self.stopping = self.stopping or not go_on
        for lane in self.lanes:
            if not lane.unrecorded:
                continue
            lane.unrecorded = False
            if not self.stopping:
                if (unsendable := lane.release(self.letters)) is not None:
                    self.ready.append(unsendable)
                self._next(lane)  # a lane whose next job ended before the write
                continue
            if lane.job is not None:  # its message cannot have been accepted: no dot went
                self._drop(lane, polite=False)
            self.ready += lane.rest_skipped()

    def abort(self) -> None:
        """Cut every session: what is under way ends as stopped (its row stays pending)."""
        self.stopping = True
        for lane in self.lanes:
            lane.session.abort()
        for event in self.loop.poll(0.0, []):
            self._event(event)

    def close(self) -> None:
        for lane in self.lanes:
            lane.session.close()
        self.loop.close()

    # --- inside ---

    def _next(self, lane: Lane) -> None:
        """Start the lane's next job: open the session first when it is closed."""
        if lane.job is not None or not lane.slice:
            return
        if self.stopping:
            self.ready += lane.rest_skipped()
            return
        lane.job = lane.slice.popleft()
        session = lane.session
        if session.state == "closed":
            session.open()  # its ``opened`` event starts the job
        elif session.state == "idle":
            self._start(lane)

    def _start(self, lane: Lane) -> None:
        assert lane.job is not None
        letter = self.letters.prepare(lane.job)
        if isinstance(letter, Result):
            self._give(lane, letter)
            return
        sender, recipient, data, lane.message_id = letter
        lane.session.send(sender, recipient, data, hold=lane.unrecorded)

    def _event(self, event: Event) -> None:
        lane = next(lane for lane in self.lanes if lane.session is event.session)
        if lane.job is None:
            return  # a login finished after its lane was stopped
        if event.opened:
            if event.error is None and self.stopping:
                self._drop(lane, polite=True)
                lane.unrecorded = True
                self.ready += lane.rest_skipped()
            elif event.error is None:
                self._start(lane)
            else:
                self._give(lane, Result(lane.job, error=event.error))
            return
        if event.unsent:
            result = Result(lane.job, skipped=True)
        elif event.error is not None:
            result = Result(lane.job, error=event.error)
        else:
            result = Result(lane.job, reply=event.reply, message_id=lane.message_id)
        self._give(lane, result)

    def _give(self, lane: Lane, result: Result) -> None:
        """Hand one result to the dispatcher; a refused session retires the lane."""
        lane.next_in_line()
        if isinstance(result.error, smtp.ConnectionFailed):
            # This connection is refused: the rest of the slice goes back, one fewer
            # connection carries the send (``Staffing`` decides about a new one).
            lane.retired = True
            self.ready.append(result)
            self.ready += lane.rest_skipped()
            lane.unrecorded = True  # with nothing left to do, the lane waits for the write
            return
        self.ready.append(result)
        lane.unrecorded = True
        self._next(lane)

    def _drop(self, lane: Lane, *, polite: bool) -> None:
        """The send stops: the lane's job goes back unsent (it stays pending), the session
        closes (``polite`` only when no message is under way: a QUIT mid-DATA is text)."""
        lane.session.close(polite=polite)
        self.ready.append(lane.give_back())
