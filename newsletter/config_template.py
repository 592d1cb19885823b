"""The commented `newsletter.toml` that `newsletter init` writes: every key, with example
values to replace (``config.EXAMPLE_VALUES`` lists the ones that must not be mailed)."""

CONFIG_TEMPLATE = """\
# newsletter.toml: settings for the `newsletter` command.
# Every value can be overridden by the environment variable named after it.
# Secrets (smtp.password, secret) belong in the environment, not in this file.

# SQLite database (NEWSLETTER_DB, or --db)
database = "subscribers.db"
# Time zone used for dates in editions and for --since/--until (NEWSLETTER_TIMEZONE)
timezone = "Europe/Helsinki"
# Language of editions and pages when none is known: fi, sv or en (NEWSLETTER_DEFAULT_LANG)
default_lang = "fi"
# Public address of `newsletter serve`; links in emails point here (NEWSLETTER_BASE_URL)
base_url = "https://uutiskirje.example.fi"
# Folder for your own templates, used by `build --template NAME` (NEWSLETTER_TEMPLATES_DIR)
# templates_dir = "my-templates"
# Feed categories that name the kind of article rather than a topic
# (NEWSLETTER_ARTICLE_TYPES, comma-separated)
article_types = ["Blogi", "Uutiset", "Blog", "News", "Nyheter"]
# Key for signed unsubscribe links: set NEWSLETTER_SECRET in the environment.
# Without it a key is generated once and kept in the database.
# secret = ""

[organisation]
name = "Esimerkkisäätiö"          # NEWSLETTER_ORG_NAME
address = "Esimerkkikatu 1, 00100 Helsinki"   # NEWSLETTER_ORG_ADDRESS
website = "https://www.example.fi"            # NEWSLETTER_ORG_WEBSITE
email = "info@example.fi"                     # NEWSLETTER_ORG_EMAIL
# logo = "https://www.example.fi/logo.png"    # NEWSLETTER_LOGO_URL

[mail]
from = "Esimerkkisäätiö <uutiskirje@example.fi>"    # NEWSLETTER_FROM
reply_to = "info@example.fi"                        # NEWSLETTER_REPLY_TO
# Address for mailto: unsubscribe requests (default: unsubscribe@ the From domain)
# unsubscribe_mailto = "unsubscribe@example.fi"     # NEWSLETTER_UNSUBSCRIBE_MAILTO
# Envelope sender for bounces: bounces+<token>@example.fi names recipient and edition
# bounce_address = "bounces@example.fi"             # NEWSLETTER_BOUNCE_ADDRESS

[smtp]
host = "localhost"       # NEWSLETTER_SMTP_HOST
port = 25                # NEWSLETTER_SMTP_PORT
security = "none"        # none | starttls | ssl (NEWSLETTER_SMTP_SECURITY)
username = ""            # NEWSLETTER_SMTP_USERNAME
# password = ""          # better in the environment: NEWSLETTER_SMTP_PASSWORD
timeout = 30             # seconds for each step (NEWSLETTER_SMTP_TIMEOUT)
deadline = 120           # seconds for a whole login or message (NEWSLETTER_SMTP_DEADLINE)
# max_reply = 65536      # reply octets allowed per message (NEWSLETTER_SMTP_MAX_REPLY)
# ca_file = "relay-ca.pem"  # trust this CA too (NEWSLETTER_SMTP_CA_FILE)

[bounces]
# Mailbox that receives bounces and complaints, for `newsletter bounces import --imap`
# imap_host = "imap.example.fi"     # NEWSLETTER_IMAP_HOST
# imap_port = 993                   # TLS only (NEWSLETTER_IMAP_PORT)
# imap_username = "bounces"         # NEWSLETTER_IMAP_USERNAME
# imap_password = ""                # better in the environment: NEWSLETTER_IMAP_PASSWORD
# imap_folder = "INBOX"             # NEWSLETTER_IMAP_FOLDER
# imap_ca_file = "imap-ca.pem"      # trust this CA too (NEWSLETTER_IMAP_CA_FILE)
# Amazon SES through SNS: the SNS signing certificate (PEM) and your topic, both needed
# (the certificate signs every AWS account's topics; `serve` refuses it without the topic)
# ses_certificate = "sns-signing.pem"   # NEWSLETTER_SES_CERTIFICATE
# ses_topic_arn = "arn:aws:sns:eu-north-1:123456789012:ses-bounces"  # NEWSLETTER_SES_TOPIC_ARN
# Postmark: the user name and password you put in the webhook URL
# postmark_username = "postmark"    # NEWSLETTER_POSTMARK_USERNAME
# postmark_password = ""            # better in the environment: NEWSLETTER_POSTMARK_PASSWORD

[send]
rate = 10                # messages per second, across all connections (NEWSLETTER_RATE)
concurrency = 2          # parallel SMTP connections (NEWSLETTER_CONCURRENCY)
batch_size = 100         # recipients claimed at a time (NEWSLETTER_BATCH_SIZE)
max_errors = 20          # consecutive errors before a send pauses (NEWSLETTER_MAX_ERRORS)
max_retries = 5          # attempts for 4xx replies and dropped connections (NEWSLETTER_MAX_RETRIES)
retry_base = 30          # seconds before the first retry; doubles each time (NEWSLETTER_RETRY_BASE)
hard_bounce_limit = 1    # hard bounces before one is marked bounced (NEWSLETTER_HARD_BOUNCE_LIMIT)

[dkim]
# selector = "news"                 # NEWSLETTER_DKIM_SELECTOR
# domain = "example.fi"             # NEWSLETTER_DKIM_DOMAIN
# key_file = "dkim-private.pem"     # NEWSLETTER_DKIM_KEY_FILE

[web]
confirm_days = 7              # how long a sign-up link is valid (NEWSLETTER_CONFIRM_DAYS)
signup_limit_per_hour = 5     # sign-ups per address and per client IP (NEWSLETTER_SIGNUP_LIMIT)
confirm_interval_minutes = 60 # at most one confirmation mail per address per this many minutes
                              # from the public form (NEWSLETTER_CONFIRM_INTERVAL)
# Access log of `newsletter serve`: "-" is stderr, "" none, else a file (NEWSLETTER_ACCESS_LOG)
access_log = "-"

[digest]
# Feeds `newsletter digest --topic T` imports before it builds, by topic slug
# (NEWSLETTER_DIGEST_FEEDS="topic=url url;topic2=url")
# feeds = { yhteisovaikuttavuus = ["https://www.example.fi/feed/"] }
# A digest sends nothing while the last edition bounced above 2% or drew complaints above
# 0.1%; true sends anyway (NEWSLETTER_DIGEST_SEND_DESPITE_BOUNCES)
send_despite_bounces = false

[intake]
download_deadline = 60   # seconds for a whole feed download (NEWSLETTER_DOWNLOAD_DEADLINE)
max_download_mb = 20     # a larger download is refused (NEWSLETTER_MAX_DOWNLOAD_MB)
# Topics first seen in a feed: "hidden" from the public sign-up page until
# `newsletter topics unhide`, or "listed" at once (NEWSLETTER_NEW_TOPICS)
new_topics = "hidden"
"""
