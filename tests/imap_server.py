"""A real Dovecot IMAP server for the tests: its own config, certificate, users and mail in
a temporary folder, on a loopback port with TLS only; started and stopped by the test."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import free_port
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None
    )


def require_dovecot() -> str:
    found = dovecot_binary()
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("dovecot is missing (scripts/ensure-dovecot.sh installs it)")
        pytest.skip("dovecot is not installed (run scripts/ensure-dovecot.sh)")
    return found


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


class Dovecot:
    def __init__(self, folder: Path, user: str, password: str) -> None:
        self.binary = require_dovecot()
        self.folder = folder
        self.port = free_port()
        self.user = user
        self.cert, key = self_signed(folder)
        me = pwd.getpwuid(os.getuid())
        # Dovecot never reads mail as root: as root, the mail belongs to its own user.
        owner = pwd.getpwnam("dovecot") if me.pw_uid == 0 else me
        self.owner = owner
        folder.chmod(0o711)  # its processes may pass through, not list
        self.mail = folder / "mail" / user
        for sub in (
            "run",
            "state",
            "home",
            "home/" + user,
            "mail",
            "mail/" + user,
            f"mail/{user}/cur",
            f"mail/{user}/new",
            f"mail/{user}/tmp",
        ):
            (folder / sub).mkdir()
            if sub.startswith(("mail", "home")):
                os.chown(folder / sub, owner.pw_uid, owner.pw_gid)
        (folder / "passwd").write_text(f"{user}:{{PLAIN}}{password}::::::\n")
        self.config = folder / "dovecot.conf"
        self.config.write_text(f"""\
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{self.cert}
ssl_key = <{key}
disable_plaintext_auth = yes
auth_mechanisms = plain
{self._users(me)}
first_valid_uid = {owner.pw_uid}
first_valid_gid = {owner.pw_gid}
mail_location = maildir:{folder}/mail/%u
passdb {{
  driver = passwd-file
  args = {folder}/passwd
}}
userdb {{
  driver = static
  args = uid={owner.pw_uid} gid={owner.pw_gid} home={folder}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {self.port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
""")
        self.process: subprocess.Popen | None = None

    @staticmethod
    def _users(me: pwd.struct_passwd) -> str:
        """Run as whoever runs the tests; as root, the login processes must be the
        package's unprivileged users (Dovecot refuses to run them as root)."""
        if me.pw_uid != 0:
            return (
                f"default_login_user = {me.pw_name}\n"
                f"default_internal_user = {me.pw_name}\n"
                f"default_internal_group = {me.pw_name}"
            )
        # The auth processes read the password file in the test's private folder.
        return (
            "default_login_user = dovenull\ndefault_internal_user = dovecot\n"
            "service auth {\n  user = root\n}\nservice auth-worker {\n  user = root\n}"
        )

    def deliver(self, name: str, data: bytes) -> None:
        path = self.mail / "new" / f"{name}.test"
        path.write_bytes(data)
        os.chown(path, self.owner.pw_uid, self.owner.pw_gid)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self._log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"dovecot did not start: {self._log()}")

    def _log(self) -> str:
        out = self.process.stdout.read().decode(errors="replace") if self.process else ""
        log = self.folder / "dovecot.log"
        return out + (log.read_text(errors="replace") if log.exists() else "")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
