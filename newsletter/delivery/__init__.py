"""Delivery: the resumable send pipeline (delivery log, lock, dispatcher, workers, report)
and mail that comes back (mailto unsubscribes; bounces)."""
