"""Provider webhooks on a real `newsletter serve`: Amazon SES through SNS (signed the way
SNS signs, with a certificate and key made here and configured as the SNS certificate) and
Postmark (basic auth); payloads in the providers' documented formats."""

from __future__ import annotations

import base64
import datetime as dt
import json
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
