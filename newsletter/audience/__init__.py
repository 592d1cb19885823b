"""The audience: subscribers, their subscriptions and consent trail, imports and exports,
and double opt-in confirmations. Who may be mailed is decided here."""
