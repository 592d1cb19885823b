"""Send throughput into Postfix's C test server ``smtp-sink`` (issue 17), three clients in one
run against the same sink, each in its own process:

- ``smtp-source``, Postfix's C client (what the wire takes at C speed);
- a raw-socket Python client pushing pre-built messages with PIPELINING (what the wire takes
  from Python: no rendering, no database);
- ``newsletter``'s ``pipeline.send`` (rendering, consent checks, the delivery log);
- the same with its results counted instead of written, which splits its CPU into what the
  database costs and the rest (the only run that does not record what it sent).

For 10,000 and 100,000 recipients: msg/s, CPU-s per 1,000 messages (user + system of the
client process) and its peak RSS; for ``send`` also how long until the first result is
written. Postfix is installed from Debian packages when missing (``scripts/ensure-postfix.sh``);
the Postfix daemon is never started. Goal: ``send`` >= 0.8 of ``smtp-source`` msg/s and
<= 0.1 CPU-s per 1,000 messages.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.bench_send import SETTINGS, TEXT, edition_html, make_db
from newsletter import links
from newsletter.delivery import pipeline
from newsletter.mail.message import EditionMessage
from newsletter.mail.message import list_id as make_list_id
from newsletter.mail.smtp import dot_stuffed
from newsletter.store.db import open_db

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 4


def _tool(name: str) -> str:
    found = shutil.which(name) or f"/usr/sbin/{name}"
    if not Path(found).exists():
        subprocess.run(["sh", str(ROOT / "scripts" / "ensure-postfix.sh")], check=True)
    return found


def start_smtp_sink() -> tuple[subprocess.Popen, int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [_tool("smtp-sink"), f"127.0.0.1:{port}", "256"]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "nobody"]  # it refuses to run as root
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process, port
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("smtp-sink did not start")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


# --- the clients ---------------------------------------------------------------------------


def run_smtp_source(port: int, count: int, size: int) -> dict:
    command = [
        _tool("smtp-source"), "-s", str(CONNECTIONS), "-m", str(count), "-l", str(size), "-d",
        "-f", "uutiskirje@example.fi", "-t", "lukija@example.org", f"127.0.0.1:{port}",
    ]  # fmt: skip
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"smtp-source failed: {process.stderr.read().decode()[:200]}")
    cpu = usage.ru_utime + usage.ru_stime
    return {"rate": count / elapsed, "cpu": cpu, "rss": usage.ru_maxrss / 1024, "first": None}


def _raw_child(port: int, count: int, out: multiprocessing.Queue) -> None:
    """A bare-socket client with PIPELINING: MAIL, RCPT and DATA in one write, then the
    three replies; a pool of 500 pre-built, pre-stuffed messages is sent round robin."""
    template = EditionMessage(
        SETTINGS, subject="Vaikuttavuus", html=edition_html(), text=TEXT,
        list_id=make_list_id(SETTINGS, ["vaikuttavuus"]),
    )  # fmt: skip
    key = b"k" * 32
    pool = []
    for number in range(500):
        data, _ = template.render(
            to_email=f"raw{number}@example.org",
            unsubscribe_url=links.unsubscribe_url(SETTINGS, key, number, 1),
        )
        pool.append(dot_stuffed(data) + b".\r\n")

    def replies(stream, wanted: int) -> None:
        while wanted:
            line = stream.readline()
            if line[3:4] != b"-":
                assert line[:1] in b"23", line
                wanted -= 1

    def push(first: int, part: int) -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            stream = sock.makefile("rb")
            replies(stream, 1)
            sock.sendall(b"EHLO bench.example.fi\r\n")
            replies(stream, 1)
            for number in range(first, first + part):
                group = f"MAIL FROM:<uutiskirje@example.fi>\r\nRCPT TO:<raw{number}@example.org>"
                sock.sendall(group.encode() + b"\r\nDATA\r\n")
                replies(stream, 3)
                sock.sendall(pool[number % len(pool)])
                replies(stream, 1)
            sock.sendall(b"QUIT\r\n")

    share = count // CONNECTIONS
    threads = [
        threading.Thread(
            target=push, args=(i * share, share + (count % CONNECTIONS if i == 0 else 0))
        )
        for i in range(CONNECTIONS)
    ]
    cpu, start = _cpu(), time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    out.put({"rate": count / elapsed, "cpu": _cpu() - cpu, "rss": _peak_mb(), "first": None})


def _watch_wal(path: str, peak: list[int], stop: threading.Event) -> None:
    # The WAL must stay bounded through a send (it once grew with it: 956 MB at 100k).
    while not stop.wait(0.1):
        with contextlib.suppress(OSError):
            peak[0] = max(peak[0], os.path.getsize(path + "-wal"))


def _leave_results_unwritten() -> list[int]:
    """For the split of the CPU only: results are counted, not written (what the database
    costs is what this run saves). Never how a send runs."""
    from newsletter.delivery.pipeline import results

    sent = [0]

    def count_only(recorder: results.Recorder, ready: list) -> None:
        done = sum(r.error is None and not r.skipped and not r.invalid for r in ready)
        recorder.report.count_sent(done)
        sent[0] += done

    results.Recorder.write = count_only  # type: ignore[method-assign]
    return sent


def _send_child(
    path: str, port: int, edition: int, write: bool, out: multiprocessing.Queue
) -> None:
    unwritten = None if write else _leave_results_unwritten()
    db = open_db(path)
    settings = SETTINGS.with_overrides(db=Path(path), smtp_port=port)
    first: list[float] = []
    wal, stop = [0], threading.Event()
    threading.Thread(target=_watch_wal, args=(path, wal, stop), daemon=True).start()

    def progress(report: pipeline.SendReport) -> None:
        if not first and report.sent:
            first.append(time.perf_counter())

    cpu, start = _cpu(), time.perf_counter()
    report = pipeline.send(
        db, settings, edition, rate=1_000_000, concurrency=CONNECTIONS, batch_size=500,
        progress=progress,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    stop.set()
    sent = report.sent if unwritten is None else unwritten[0]
    out.put({
        "rate": sent / elapsed, "cpu": _cpu() - cpu, "rss": _peak_mb(),
        "first": first[0] - start if first else None, "sent": sent,
        "wal": wal[0] / 1e6 if write else None,
    })  # fmt: skip


def _in_child(target, *args) -> dict:
    # A fresh interpreter: a forked child would inherit this process's heap and peak RSS.
    spawn = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = spawn.Queue()
    child = spawn.Process(target=target, args=(*args, results))
    child.start()
    figures = results.get(timeout=3600)
    child.join()
    return figures


# --- the run -------------------------------------------------------------------------------


def _line(name: str, count: int, figures: dict, base: dict | None) -> str:
    per_1000 = figures["cpu"] / count * 1000
    text = (
        f"  {name:<13} {figures['rate']:8,.0f} msg/s  {per_1000:6.3f} CPU-s/1000"
        f"  peak RSS {figures['rss']:5.0f} MB"
    )
    if base is not None:
        text += f"  ({figures['rate'] / base['rate']:.2f} of smtp-source)"
    if figures.get("first") is not None:
        text += f"  first result after {figures['first']:.2f} s"
    if figures.get("wal") is not None:
        text += f"  WAL at most {figures['wal']:.0f} MB"
    return text


def bench_into_smtp_sink(count: int) -> None:
    sink, port = start_smtp_sink()
    try:
        with tempfile.TemporaryDirectory() as folder:
            path, spare = Path(folder) / "bench.db", Path(folder) / "unwritten.db"
            edition = make_db(path, count)
            make_db(spare, count)
            size = len(edition_html()) + len(TEXT)
            source = run_smtp_source(port, count, size)
            raw = _in_child(_raw_child, port, count)
            ours = _in_child(_send_child, str(path), port, edition, True)
            unwritten = _in_child(_send_child, str(spare), port, edition, False)
    finally:
        sink.kill()
        sink.wait()
    ratio = ours["rate"] / source["rate"]
    per_1000 = ours["cpu"] / count * 1000
    verdict = "ok" if ratio >= 0.8 and per_1000 <= 0.1 else "BELOW GOAL"
    print(f"(postfix) {count:,} messages of ~54 KB, {CONNECTIONS} connections into smtp-sink:")
    print(_line("smtp-source", count, source, None))
    print(_line("raw socket", count, raw, source))
    print(_line("newsletter", count, ours, source))
    print(_line("  unwritten", count, unwritten, source))
    database = (ours["cpu"] - unwritten["cpu"]) / count * 1000
    print(
        f"  send/raw {ours['rate'] / raw['rate']:.2f}; writing the results costs"
        f" {database:.3f} CPU-s/1000 of the send's; goal send >= 0.8 of smtp-source and"
        f" <= 0.1 CPU-s/1000: {verdict}; load average {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    quick = os.environ.get("BENCH_QUICK") == "1"
    for count in (2_000,) if quick else (10_000, 100_000):
        bench_into_smtp_sink(count)


if __name__ == "__main__":
    sys.exit(main())
