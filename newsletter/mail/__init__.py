"""Mail on the wire: building MIME messages with per-recipient holes, and the SMTP client.

Knows nothing about subscribers or editions; the audience and delivery layers call it."""
