"""newsletter: compose and mail topic newsletters."""

__version__ = "0.1.0"
