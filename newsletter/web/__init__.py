"""The public web service of ``newsletter serve``: one-click unsubscribe, double opt-in
sign-up, preferences. Flask application, waitress server."""

from newsletter.web.app import create_app
from newsletter.web.server import check_base_url, make_server

__all__ = ["check_base_url", "create_app", "make_server"]
