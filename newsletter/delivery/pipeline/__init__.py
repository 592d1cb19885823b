"""The send pipeline (being split into its parts; this step only moves the file)."""

from newsletter.delivery.pipeline.dispatcher import *  # noqa: F403
from newsletter.delivery.pipeline.dispatcher import _Sender  # noqa: F401
