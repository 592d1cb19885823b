"""Bounce and complaint messages in the shapes real servers send them (written here after
the layouts Postfix, Exim, Gmail and Microsoft 365 use; RFC 3464 and RFC 5965)."""

from __future__ import annotations

import hashlib

from send_helpers import add_people, make_edition, make_topic

from newsletter.audience import subscribers
from newsletter.delivery import pipeline


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def postfix_dsn(verp: str, recipient: str, original_id: str) -> bytes:
    return _crlf(f"""\
Return-Path: <>
Delivered-To: {verp}
Received: by mail.example.fi (Postfix) id 4Hk2Lq1Z9Fz9vBk; Tue,  1 Dec 2026 10:00:05 +0200 (EET)
Date: Tue,  1 Dec 2026 10:00:05 +0200 (EET)
From: MAILER-DAEMON@mail.example.fi (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {verp}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="4Hk2Lq1Z9Fz9vBk.1764576005/mail.example.fi"
Content-Transfer-Encoding: 8bit
Message-Id: <20261201080005.4Hk2Lq1Z9Fz9vBk@mail.example.fi>

This is a MIME-encapsulated message.

--4Hk2Lq1Z9Fz9vBk.1764576005/mail.example.fi
Content-Description: Notification
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

This is the mail system at host mail.example.fi.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

                   The mail system

<{recipient}>: host mx.example.org[192.0.2.25] said: 550 5.1.1
    <{recipient}>: Recipient address rejected: User unknown in virtual mailbox
    table (in reply to RCPT TO command)

--4Hk2Lq1Z9Fz9vBk.1764576005/mail.example.fi
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.example.fi
X-Postfix-Queue-ID: 4Hk2Lq1Z9Fz9vBk
X-Postfix-Sender: rfc822; {verp}
Arrival-Date: Tue,  1 Dec 2026 10:00:04 +0200 (EET)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.org
Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: User
    unknown in virtual mailbox table

--4Hk2Lq1Z9Fz9vBk.1764576005/mail.example.fi
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers
Content-Transfer-Encoding: 8bit

Return-Path: <{verp}>
From: =?utf-8?b?U8Okw6R0acO2?= <uutiskirje@example.fi>
To: {recipient}
Subject: Uutiskirje
Message-ID: {original_id}

--4Hk2Lq1Z9Fz9vBk.1764576005/mail.example.fi--
""")


def exim_dsn(verp: str, recipient: str, original_id: str, *, code: str = "550 5.1.1") -> bytes:
    return _crlf(f"""\
Return-path: <>
Envelope-to: {verp}
Delivery-date: Tue, 01 Dec 2026 10:01:00 +0200
Received: from Debian-exim by relay.example.net with local (Exim 4.96)
\tid 1t5ABC-000123-4x for {verp}; Tue, 01 Dec 2026 10:01:00 +0200
X-Failed-Recipients: {recipient}
Auto-Submitted: auto-replied
From: Mail Delivery System <Mailer-Daemon@relay.example.net>
To: {verp}
Content-Type: multipart/report; report-type=delivery-status; boundary=1764576060-eximdsn-1804289383
MIME-Version: 1.0
Subject: Mail delivery failed: returning message to sender
Message-Id: <E1t5ABC-000123-4x@relay.example.net>
Date: Tue, 01 Dec 2026 10:01:00 +0200

--1764576060-eximdsn-1804289383
Content-type: text/plain; charset=us-ascii

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  {recipient}
    host mx.example.org [192.0.2.25]
    SMTP error from remote mail server after RCPT TO:<{recipient}>:
    {code} User unknown

--1764576060-eximdsn-1804289383
Content-type: message/delivery-status

Reporting-MTA: dns; relay.example.net

Action: failed
Final-Recipient: rfc822;{recipient}
Status: 5.0.0
Remote-MTA: dns; mx.example.org
Diagnostic-Code: smtp; {code} User unknown

--1764576060-eximdsn-1804289383
Content-type: message/rfc822

Return-path: <{verp}>
From: uutiskirje@example.fi
To: {recipient}
Subject: Uutiskirje
Message-ID: {original_id}
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Hei!

--1764576060-eximdsn-1804289383--
""")


def gmail_dsn(to: str, recipient: str, original_id: str) -> bytes:
    """Gmail's bounce, here delivered to a bounce address without a VERP token (a relay
    rewrote the envelope): only the original Message-ID names the message."""
    return _crlf(f"""\
Delivered-To: {to}
Return-Path: <>
From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: {to}
Auto-Submitted: auto-replied
Subject: Delivery Status Notification (Failure)
References: {original_id}
In-Reply-To: {original_id}
X-Failed-Recipients: {recipient}
Message-ID: <6759a0b2.050a0220.3c2f1.1b2cGMR@mx.google.com>
Date: Tue, 01 Dec 2026 00:02:00 -0800 (PST)
MIME-Version: 1.0
Content-Type: multipart/report; boundary="000000000000a1b2c3d4e5f6a7b8"; report-type=delivery-status

--000000000000a1b2c3d4e5f6a7b8
Content-Type: multipart/related; boundary="000000000000a1b2c3d4e5f6a7b9"

--000000000000a1b2c3d4e5f6a7b9
Content-Type: multipart/alternative; boundary="000000000000a1b2c3d4e5f6a7ba"

--000000000000a1b2c3d4e5f6a7ba
Content-Type: text/plain; charset="UTF-8"

** Address not found **

Your message wasn't delivered to {recipient} because the address couldn't be found,
or is unable to receive mail.

--000000000000a1b2c3d4e5f6a7ba
Content-Type: text/html; charset="UTF-8"

<html><body><h2>Address not found</h2><p>Your message wasn't delivered.</p></body></html>

--000000000000a1b2c3d4e5f6a7ba--
--000000000000a1b2c3d4e5f6a7b9--

--000000000000a1b2c3d4e5f6a7b8
Content-Type: message/delivery-status

Reporting-MTA: dns; googlemail.com
Received-From-MTA: dns; uutiskirje@example.fi
Arrival-Date: Tue, 01 Dec 2026 00:01:59 -0800 (PST)
X-Original-Message-ID: {original_id}

Final-Recipient: rfc822; {recipient}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; The email account that you tried to reach does not exist. Please try
 double-checking the recipient's email address for typos or unnecessary spaces.
 For more information, go to https://support.google.com/mail/?p=NoSuchUser

--000000000000a1b2c3d4e5f6a7b8
Content-Type: message/rfc822

From: uutiskirje@example.fi
To: {recipient}
Subject: Uutiskirje
Message-ID: {original_id}

Hei!

--000000000000a1b2c3d4e5f6a7b8--
""")


def microsoft_dsn(verp: str, recipient: str, original_id: str, *, status: str = "5.1.10",
                  action: str = "failed") -> bytes:  # fmt: skip
    diagnostic = {
        "5.1.10": "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP"
        " address lookup",
        "5.2.2": "554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException",
        "4.4.7": "400 4.4.7 Message delayed",
    }[status]
    return _crlf(f"""\
From: Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@contoso.onmicrosoft.com>
To: <{verp}>
Date: Tue, 1 Dec 2026 08:03:00 +0000
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="47b1a2c3-d4e5-4f60-8a9b-0c1d2e3f4a5b"
X-MS-Exchange-Message-Is-Ndr:
Content-Language: en-US
Message-ID: <9a8b7c6d-{status}-{action}@AM6PR01MB1234.eurprd01.prod.exchangelabs.com>
In-Reply-To: {original_id}
Subject: Undeliverable: Uutiskirje
Auto-Submitted: auto-replied
MIME-Version: 1.0

--47b1a2c3-d4e5-4f60-8a9b-0c1d2e3f4a5b
Content-Type: multipart/alternative; differences=Content-Type;
\tboundary="c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"

--c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f
Content-Type: text/plain; charset="us-ascii"

Your message to {recipient} couldn't be delivered.

--c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f
Content-Type: text/html; charset="us-ascii"

<html><body><b>Your message to {recipient} couldn't be delivered.</b></body></html>

--c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f--

--47b1a2c3-d4e5-4f60-8a9b-0c1d2e3f4a5b
Content-Type: message/delivery-status

Reporting-MTA: dns;AM6PR01MB1234.eurprd01.prod.exchangelabs.com
Received-From-MTA: dns;mail.example.fi
Arrival-Date: Tue, 1 Dec 2026 08:02:58 +0000

Final-recipient: RFC822; {recipient}
Action: {action}
Status: {status}
Diagnostic-code: smtp;{diagnostic}
X-Display-Name: Lukija

--47b1a2c3-d4e5-4f60-8a9b-0c1d2e3f4a5b
Content-Type: message/rfc822

Return-Path: {verp}
From: uutiskirje@example.fi
To: {recipient}
Subject: Uutiskirje
Message-ID: {original_id}

Hei!

--47b1a2c3-d4e5-4f60-8a9b-0c1d2e3f4a5b--
""")


def arf_complaint(verp: str, recipient: str, original_id: str, *, agent: str = "Hotmail FBL",
                  redacted: bool = False) -> bytes:  # fmt: skip
    """An RFC 5965 report as Microsoft's JMRP/SNDS and Yahoo's feedback loop send them;
    Yahoo redacts the recipient, so only the VERP token and Message-ID are left."""
    shown = "redacted@example.org" if redacted else recipient
    return _crlf(f"""\
From: staff@hotmail.com
To: abuse@example.fi
Subject: complaint about message from 192.0.2.1
Date: Tue, 1 Dec 2026 09:00:00 +0000
Message-ID: <fbl-{hashlib.sha256((agent + original_id).encode()).hexdigest()[:16]}@fbl.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
\tboundary="part1_13d.2e68ed54_boundary"

--part1_13d.2e68ed54_boundary
Content-Type: text/plain; charset="US-ASCII"
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP 192.0.2.1 on
Tue, 1 Dec 2026 08:00:00 +0000. For more information about this format please see
http://www.mipassoc.org/arf/.

--part1_13d.2e68ed54_boundary
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: {agent}
Version: 1
Original-Mail-From: <{verp}>
Arrival-Date: Tue, 1 Dec 2026 08:00:00 +0000
Source-IP: 192.0.2.1
Reported-Domain: example.fi

--part1_13d.2e68ed54_boundary
Content-Type: message/rfc822
Content-Disposition: inline

From: uutiskirje@example.fi
To: {shown}
Subject: Uutiskirje
Message-ID: {original_id}

Hei!

--part1_13d.2e68ed54_boundary--
""")


def out_of_office(to: str) -> bytes:
    return _crlf(f"""\
From: Maija <maija@example.org>
To: {to}
Subject: Automaattinen vastaus: Uutiskirje
Auto-Submitted: auto-replied
Message-ID: <ooo-1@example.org>

Olen lomalla 7.12. asti.
""")


def deliver_with_verp(db, settings, smtp_sink):
    """An edition delivered over real SMTP with a VERP bounce address: (settings, edition,
    {address: (envelope sender, Message-ID)})."""
    settings = settings.with_overrides(
        smtp_host=smtp_sink.host, smtp_port=smtp_sink.port, bounce_address="bounces@example.fi"
    )
    topic = make_topic(db)
    other = make_topic(db, "muut", "Muut")
    people = add_people(db, topic, 8)
    subscribers.add(db, people[4], topic_ids=[other], status="confirmed")
    edition = make_edition(db, [topic])
    report = pipeline.send(db, settings, edition)
    assert report.sent == 8
    envelope = {m.rcpt_tos[0]: (m.mail_from, m.message["Message-ID"]) for m in smtp_sink.messages}
    return settings, edition, envelope


def all_shapes(envelope: dict, people: list[str]) -> list[bytes]:
    def verp(i: int) -> str:
        return envelope[people[i]][0]

    def mid(i: int) -> str:
        return envelope[people[i]][1]

    return [
        postfix_dsn(verp(0), people[0], mid(0)),
        exim_dsn(verp(1), people[1], mid(1)),
        gmail_dsn("bounces@example.fi", people[2], mid(2)),  # no token: by Message-ID
        microsoft_dsn(verp(3), people[3], mid(3), status="5.2.2"),  # mailbox full: soft
        microsoft_dsn(verp(5), people[5], mid(5), status="4.4.7", action="delayed"),
        microsoft_dsn(verp(6), people[6], mid(6)),  # 5.1.10: hard
        arf_complaint(verp(4), people[4], mid(4)),  # Microsoft JMRP
        arf_complaint(verp(7), people[7], mid(7), agent="Yahoo!-Mail-Feedback/2.0", redacted=True),
        out_of_office("bounces@example.fi"),
        postfix_dsn("bounces@example.fi", "stranger@example.net", "<nope@example.fi>"),
    ]
