"""Errors that reach the user as one clear line (exit code 1), never as a traceback."""


class NewsletterError(Exception):
    """A user-facing error: bad input, missing data, a refused server."""


class ConfigError(NewsletterError):
    """The configuration file or an environment variable is invalid."""


class NotFound(NewsletterError):
    """A named thing (topic, edition, subscriber) does not exist."""


class InvalidEmail(NewsletterError):
    """An e-mail address failed validation."""


class InvalidToken(NewsletterError):
    """A signed token is forged, altered, malformed or expired."""
