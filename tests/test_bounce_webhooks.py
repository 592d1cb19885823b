"""Provider webhooks on a real `newsletter serve`: Amazon SES through SNS (signed the way
SNS signs, with a certificate and key made here and configured as the SNS certificate) and
Postmark (basic auth); payloads in the providers' documented formats."""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from send_helpers import add_people, make_edition, make_topic
from web_helpers import Client, LiveServer, web_settings

from newsletter import links
from newsletter.audience import subscribers
from newsletter.delivery import bounces
from newsletter.delivery.bounces.webhooks import sns_string_to_sign
from newsletter.store.db import token_key
from newsletter.web import ratelimit

TOPIC_ARN = "arn:aws:sns:eu-north-1:123456789012:ses-bounces"


def make_signing_pair(folder: Path, name: str) -> tuple[rsa.RSAPrivateKey, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.eu-north-1.amazonaws.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    path = folder / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, path


def sns(
    key: rsa.RSAPrivateKey,
    message: dict | str,
    *,
    kind: str = "Notification",
    version: str = "1",
    **extra: str,
) -> dict:
    body = {
        "Type": kind,
        "MessageId": str(uuid.uuid4()),
        "TopicArn": TOPIC_ARN,
        "Message": message if isinstance(message, str) else json.dumps(message),
        "Timestamp": "2026-12-01T08:00:00.000Z",
        "SignatureVersion": version,
        "SigningCertURL": "https://sns.eu-north-1.amazonaws.com/SimpleNotificationService-x.pem",
        "UnsubscribeURL": "https://sns.eu-north-1.amazonaws.com/?Action=Unsubscribe",
        **extra,
    }
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(sns_string_to_sign(body), padding.PKCS1v15(), algorithm)
    body["Signature"] = base64.b64encode(signature).decode()
    return body


def ses_bounce(
    verp: str, recipient: str, message_id: str, *, kind: str = "Permanent", status: str = "5.1.1"
) -> dict:
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": kind,
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": recipient,
                    "action": "failed",
                    "status": status,
                    "diagnosticCode": f"smtp; 550 {status} <{recipient}> user unknown",
                },
            ],
            "timestamp": "2026-12-01T07:59:59.000Z",
            "feedbackId": f"0100019{uuid.uuid4().hex}-000000",
            "reportingMTA": "dsn; a8-50.smtp-out.amazonses.com",
        },
        "mail": {
            "timestamp": "2026-12-01T07:59:58.000Z",
            "source": verp,
            "sourceArn": "arn:aws:ses:eu-north-1:123456789012:identity/example.fi",
            "sendingAccountId": "123456789012",
            "messageId": "0100019abcdef-12345678-aaaa-bbbb-cccc-ddddeeeeffff-000000",
            "destination": [recipient],
            "headersTruncated": False,
            "headers": [{"name": "Message-ID", "value": message_id}],
            "commonHeaders": {
                "from": ["uutiskirje@example.fi"],
                "to": [recipient],
                "messageId": message_id,
                "subject": "Uutiskirje",
            },
        },
    }


def ses_complaint(verp: str, recipient: str, message_id: str) -> dict:
    return {
        "notificationType": "Complaint",
        "complaint": {
            "userAgent": "Yahoo!-Mail-Feedback/2.0",
            "complainedRecipients": [{"emailAddress": recipient}],
            "complaintFeedbackType": "abuse",
            "arrivalDate": "2026-12-01T08:10:00.000Z",
            "timestamp": "2026-12-01T08:10:01.000Z",
            "feedbackId": f"0100019{uuid.uuid4().hex}-000000",
        },
        "mail": {"source": verp, "commonHeaders": {"messageId": message_id}, "headers": []},
    }


@pytest.fixture
def world(db, settings, tmp_path: Path):
    topic = make_topic(db)
    people = add_people(db, topic, 4)
    edition = make_edition(db, [topic])
    db.execute("UPDATE editions SET status = 'sent', sent_at = '2026-12-01T08:00:00+00:00'")
    key = token_key(db, settings.secret)
    ids = [subscribers.find(db, p)["id"] for p in people]
    verp = {
        p: links.envelope_sender(
            settings.with_overrides(bounce_address="bounces@example.fi"), key, i, edition
        )
        for p, i in zip(people, ids, strict=True)
    }
    signing, certificate = make_signing_pair(tmp_path, "sns")
    configured = web_settings(
        settings,
        ses_certificate=certificate,
        ses_topic_arn=TOPIC_ARN,
        postmark_username="postmark",
        postmark_password="pm-hook-salasana",
    )
    with LiveServer(configured) as server:
        yield {
            "db": db,
            "people": people,
            "edition": edition,
            "verp": verp,
            "key": signing,
            "client": Client(server.url),
            "tmp": tmp_path,
        }


def _post(client: Client, path: str, body: dict, **headers: str):
    return client.post(
        path,
        body=json.dumps(body).encode(),
        headers={"Content-Type": "text/plain; charset=UTF-8", **headers},
    )


def test_ses_bounce_and_complaint_signed_as_sns_signs(world) -> None:
    db, people, client = world["db"], world["people"], world["client"]
    hard = sns(world["key"], ses_bounce(world["verp"][people[0]], people[0], "<m0@example.fi>"))
    answer = _post(client, "/hooks/ses", hard)
    assert answer.status == 200 and json.loads(answer.body)["hard_bounces"] == 1
    assert subscribers.find(db, people[0])["status"] == "bounced"
    # SNS retries a delivery it thinks failed: the same message counts once.
    again = json.loads(_post(client, "/hooks/ses", hard).body)
    assert again["duplicates"] == 1 and again["hard_bounces"] == 0

    soft = sns(
        world["key"],
        ses_bounce(world["verp"][people[1]], people[1], "<m1@x>", kind="Transient", status="4.2.2"),
        version="2",
    )
    assert json.loads(_post(client, "/hooks/ses", soft).body)["soft_bounces"] == 1
    complaint = sns(world["key"], ses_complaint(world["verp"][people[2]], people[2], "<m2@x>"))
    assert json.loads(_post(client, "/hooks/ses", complaint).body)["complaints"] == 1
    assert subscribers.is_suppressed(db, people[2])
    assert bounces.edition_counts(db, world["edition"]) == {
        "hard_bounces": 1,
        "soft_bounces": 1,
        "complaints": 1,
    }


def test_ses_posts_that_are_not_authentic_change_nothing(world) -> None:
    db, people, client = world["db"], world["people"], world["client"]
    signed = sns(world["key"], ses_bounce(world["verp"][people[3]], people[3], "<m3@x>"))
    tampered = dict(signed, Message=signed["Message"].replace(people[3], people[0]))
    other_key, _ = make_signing_pair(world["tmp"], "attacker")
    forged = sns(other_key, ses_bounce(world["verp"][people[3]], people[3], "<m3@x>"))
    unsigned = {k: v for k, v in signed.items() if k != "Signature"}
    other_topic = sns(
        world["key"],
        ses_bounce(world["verp"][people[3]], people[3], "<m3@x>"),
        TopicArn="arn:aws:sns:eu-north-1:999999999999:other",
    )
    for body in (tampered, forged, unsigned, other_topic):
        answer = _post(client, "/hooks/ses", body)
        assert answer.status in (400, 403), answer.body
    assert _post(client, "/hooks/ses", {"hello": "world"}).status in (400, 403)
    assert client.post("/hooks/ses", body=b"not json").status == 400
    assert db.execute("SELECT COUNT(*) FROM bounce_reports").fetchone()[0] == 0
    assert all(subscribers.find(db, p)["status"] == "active" for p in people)


def test_sns_subscription_confirmation_is_verified_and_logged_not_fetched(world) -> None:
    confirm = sns(
        world["key"],
        "You have chosen to subscribe to the topic.",
        kind="SubscriptionConfirmation",
        Token="2336412f37fb6",
        SubscribeURL="https://sns.eu-north-1.amazonaws.com/?Action=ConfirmSubscription",
    )
    answer = _post(world["client"], "/hooks/ses", confirm)
    assert answer.status == 200 and "SubscribeURL" in answer.body
    forged = dict(confirm, SubscribeURL="https://attacker.example/")
    assert _post(world["client"], "/hooks/ses", forged).status == 403


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_postmark_bounce_and_spam_complaint_with_basic_auth(world) -> None:
    db, people, client = world["db"], world["people"], world["client"]
    bounce = {
        "RecordType": "Bounce",
        "MessageStream": "broadcast",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "uutiskirje",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user).",
        "Details": "Test bounce details",
        "Email": people[0],
        "From": "uutiskirje@example.fi",
        "BouncedAt": "2026-12-01T08:00:00Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Uutiskirje",
        "Metadata": {},
    }
    complaint = dict(
        bounce,
        RecordType="SpamComplaint",
        ID=4323372036854775808,
        Type="SpamComplaint",
        TypeCode=512,
        Email=people[1],
    )
    assert _post(client, "/hooks/postmark", bounce).status == 401
    wrong = _basic("postmark", "arvaus")
    assert _post(client, "/hooks/postmark", bounce, Authorization=wrong).status == 401
    assert db.execute("SELECT COUNT(*) FROM bounce_reports").fetchone()[0] == 0

    good = _basic("postmark", "pm-hook-salasana")
    first = json.loads(_post(client, "/hooks/postmark", bounce, Authorization=good).body)
    assert first["hard_bounces"] == 1
    assert (
        json.loads(_post(client, "/hooks/postmark", bounce, Authorization=good).body)["duplicates"]
        == 1
    )
    assert (
        json.loads(_post(client, "/hooks/postmark", complaint, Authorization=good).body)[
            "complaints"
        ]
        == 1
    )
    assert subscribers.find(db, people[0])["status"] == "bounced"
    assert set(
        subscribers.subscription_statuses(db, subscribers.find(db, people[1])["id"]).values()
    ) == {"unsubscribed"}


def test_ses_certificate_without_topic_is_refused_per_request(db, settings, tmp_path) -> None:
    # Every AWS account's topics are signed by the same regional SNS certificate: a
    # stranger's own topic, replayed here, must not unsubscribe anyone.
    topic = make_topic(db)
    people = add_people(db, topic, 2)
    make_edition(db, [topic])
    signing, certificate = make_signing_pair(tmp_path, "sns")
    configured = web_settings(settings, ses_certificate=certificate)  # no ses_topic_arn
    strangers = "arn:aws:sns:eu-north-1:999999999999:attackers-topic"
    with LiveServer(configured) as server:
        client = Client(server.url)
        for arn in (strangers, TOPIC_ARN):
            body = sns(
                signing, ses_complaint("x@attacker.example", people[0], "<a@x>"), TopicArn=arn
            )
            answer = _post(client, "/hooks/ses", body)
            assert answer.status == 403 and json.loads(answer.body) == {"error": "refused"}
    person = subscribers.find(db, people[0])
    assert set(subscribers.subscription_statuses(db, person["id"]).values()) == {"confirmed"}
    assert not subscribers.is_suppressed(db, people[0])


def test_serve_refuses_an_ses_certificate_without_its_topic(cli, tmp_path) -> None:
    _, certificate = make_signing_pair(tmp_path, "sns")
    with socket.socket() as taken:  # were the check missing, serve would stop here instead
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            "NEWSLETTER_BASE_URL": f"http://127.0.0.1:{port}",
            "NEWSLETTER_SES_CERTIFICATE": str(certificate),
        }
        result = cli("serve", "--port", str(port), env=env)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "error: bounces.ses_certificate is set but bounces.ses_topic_arn is not: set it to"
        " the ARN of your SES notification topic (any AWS account's topic is signed by the"
        " same certificate)"
    )


def test_malformed_posts_get_400_json_and_change_nothing(world) -> None:
    db, people, client = world["db"], world["people"], world["client"]
    good = _basic("postmark", "pm-hook-salasana")
    bounce = {"RecordType": "Bounce", "ID": 7, "Email": people[0], "Type": "HardBounce"}
    for changed in (
        {"Type": ["HardBounce"]},
        {"Email": [people[0]]},
        {"Email": {"address": people[0]}},
        {"ID": {"id": 7}},
        {"ID": True},
        {"RecordType": 1},
        {"Description": ["x"]},
    ):
        answer = _post(client, "/hooks/postmark", {**bounce, **changed}, Authorization=good)
        assert answer.status == 400, (changed, answer.body)
        assert answer.headers["Content-Type"] == "application/json"
        assert json.loads(answer.body) == {"error": "malformed"}
    # Text that is no address is well-formed: it names nobody.
    stranger = {**bounce, "Email": "not an address"}
    answer = _post(client, "/hooks/postmark", stranger, Authorization=good)
    assert answer.status == 200 and json.loads(answer.body)["unmatched"] == 1

    verp = world["verp"][people[1]]
    shapes = []
    for change in (
        lambda n: n.update(mail=[n["mail"]]),
        lambda n: n["bounce"].update(bouncedRecipients=people[1]),
        lambda n: n["bounce"]["bouncedRecipients"][0].update(emailAddress=[people[1]]),
        lambda n: n["mail"].update(headers=[["Message-ID", "<m@x>"]]),
        lambda n: n["mail"].update(commonHeaders="<m@x>"),
        lambda n: n.update(notificationType=["Bounce"]),
    ):
        notification = ses_bounce(verp, people[1], "<m1@example.fi>")
        change(notification)
        shapes.append(sns(world["key"], notification))
    shapes.append(sns(world["key"], "[1, 2]"))  # a Message that is JSON but no object
    for body in shapes:
        answer = _post(client, "/hooks/ses", body)
        assert answer.status == 400, answer.body
        assert json.loads(answer.body) == {"error": "malformed"}
    assert db.execute("SELECT COUNT(*) FROM bounce_reports").fetchone()[0] == 0
    assert all(subscribers.find(db, p)["status"] == "active" for p in people)


def test_failed_webhook_logins_are_limited_per_client_network(world) -> None:
    db, people, client = world["db"], world["people"], world["client"]
    bounce = {"RecordType": "Bounce", "ID": 8, "Email": people[0], "Type": "HardBounce"}
    for attempt in range(10):  # the README's "10 failed logins in an hour"
        wrong = _basic("postmark", f"arvaus-{attempt}")
        assert _post(client, "/hooks/postmark", bounce, Authorization=wrong).status == 401
    # From now on this network's posts are not even checked: the right password too waits.
    good = _basic("postmark", "pm-hook-salasana")
    blocked = _post(client, "/hooks/postmark", bounce, Authorization=good)
    assert blocked.status == 429 and blocked.headers["Retry-After"] == "3600"
    assert "error" in json.loads(blocked.body)
    forged_key, _ = make_signing_pair(world["tmp"], "attacker")
    forged = sns(forged_key, ses_bounce(world["verp"][people[1]], people[1], "<m@x>"))
    assert _post(client, "/hooks/ses", forged).status == 429
    assert db.execute("SELECT COUNT(*) FROM bounce_reports").fetchone()[0] == 0
    assert subscribers.find(db, people[0])["status"] == "active"
    # Sign-ups are limited on their own: the failed logins did not use up their allowance.
    assert ratelimit.allow_ip(db, "127.0.0.1", 1)
