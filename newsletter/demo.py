"""The main job end to end on the bundled sample data: ``make demo``.

Runs the real commands a staff member would type, against a fresh folder ``demo-output/``,
and delivers the edition over real SMTP to a catch-all server on loopback that this script
starts and stops itself. Nothing leaves the machine.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from email import message_from_bytes, policy
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample"
OUT = Path(os.environ.get("NEWSLETTER_DEMO_DIR", "demo-output")).resolve()
TOPIC = "Yhteisövaikuttavuus"

CONFIG = """\
# Written by the demo: a local catch-all SMTP server stands in for the mail provider.
database = "subscribers.db"
base_url = "http://127.0.0.1:{web_port}"
default_lang = "fi"

[organisation]
name = "Demosäätiö"
address = "Demokatu 1, 00100 Helsinki"
website = "https://www.example.fi"
email = "info@example.fi"

[mail]
from = "Demosäätiö <uutiskirje@example.fi>"
reply_to = "info@example.fi"

[smtp]
host = "127.0.0.1"
port = {port}
security = "none"

[send]
rate = 50
concurrency = 2
batch_size = 20
"""


class CatchAll:
    """aiosmtpd handler that stores every accepted message as an .eml file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            name = f"{self.count:04d}-{envelope.rcpt_tos[0].replace('@', '_at_')}.eml"
        (self.folder / name).write_bytes(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env() -> dict[str, str]:
    env = {**os.environ, "NEWSLETTER_CONFIG": str(OUT / "newsletter.toml")}
    env["NEWSLETTER_SECRET"] = env.get("NEWSLETTER_SECRET") or "demo-secret-change-me"
    return env


def _run(*args: str) -> None:
    print(f"\n$ newsletter {shlex.join(args)}", flush=True)
    result = subprocess.run([sys.executable, "-m", "newsletter", *args], cwd=OUT, env=_env())
    if result.returncode != 0:
        sys.exit(f"demo stopped: `newsletter {shlex.join(args)}` exited {result.returncode}")


def _one_click_unsubscribe(mail_dir: Path, web_port: int) -> None:
    """Do what a mailbox provider does with RFC 8058: POST to the List-Unsubscribe URL."""
    first = sorted(mail_dir.glob("*.eml"))[0]
    received = message_from_bytes(first.read_bytes(), policy=policy.default)
    url = str(received["List-Unsubscribe"]).split(",")[0].strip().strip("<>")
    print(f"\n$ newsletter serve --port {web_port}   # in the background", flush=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--port", str(web_port)],
        cwd=OUT,
        env=_env(),
    )
    try:
        _wait_for_port(web_port)
        print(f"one-click unsubscribe for {received['To']}: POST {url}")
        request = urllib.request.Request(url, data=b"List-Unsubscribe=One-Click", method="POST")
        with urllib.request.urlopen(request, timeout=10) as reply:
            print(f"  -> HTTP {reply.status}")
    finally:
        server.terminate()
        server.wait(timeout=10)


def _wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    sys.exit(f"demo stopped: the web service did not start on port {port}")


def main() -> None:
    from aiosmtpd.controller import Controller

    if OUT.exists():
        shutil.rmtree(OUT)
    mail_dir = OUT / "received-mail"
    mail_dir.mkdir(parents=True)
    port, web_port = _free_port(), _free_port()
    config = CONFIG.format(port=port, web_port=web_port)
    (OUT / "newsletter.toml").write_text(config, encoding="utf-8")

    handler = CatchAll(mail_dir)
    server = Controller(handler, hostname="127.0.0.1", port=port)
    server.start()
    print(f"catch-all SMTP server listening on 127.0.0.1:{port}")
    try:
        _run("articles", "import", str(SAMPLE / "articles.xml"))
        _run("articles", "list", "--topic", TOPIC)
        _run(
            "subscribers",
            "import",
            str(SAMPLE / "subscribers.csv"),
            "--topic",
            TOPIC,
            "--confirmed",
        )
        _run("topics", "list")
        _run(
            "topics", "contact-add", TOPIC, "--name", "Maija Esimerkki",
            "--title", "Erityisasiantuntija", "--title-en", "Senior Specialist",
            "--email", "maija.esimerkki@example.fi", "--phone", "040 123 4567",
        )  # fmt: skip
        _run("build", "--topic", TOPIC, "--since", "2025-06-01", "--out", "editions")
        # The demo's organisation is init's example, which `send` refuses without --force
        # (`newsletter check 1` lists why).
        _run("send", "1", "--yes", "--force")
        _run("status", "1")
        _one_click_unsubscribe(mail_dir, web_port)
        _run("topics", "list")
    finally:
        server.stop()
        print("catch-all SMTP server stopped")

    # The main (default-language) variant; edition-1.sv.html and .en.html are beside it.
    editions = sorted((OUT / "editions").glob("edition-*[0-9].html"))
    print("\nDone.")
    print(f"  HTML preview:     {editions[0] if editions else '(none)'}")
    print(f"  plain-text part:  {editions[0].with_suffix('.txt') if editions else '(none)'}")
    print(f"  received mail:    {mail_dir} ({handler.count} messages, .eml)")
    print(f"  database:         {OUT / 'subscribers.db'}")


if __name__ == "__main__":
    main()
