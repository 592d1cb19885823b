"""Delivery: the resumable send pipeline (delivery log, lock, dispatcher, lanes, report)
and mail that comes back (mailto unsubscribes; bounces)."""
