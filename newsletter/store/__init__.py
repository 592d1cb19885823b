"""Storage: the SQLite database, its connection settings and its append-only migrations.

Imports nothing above it: every other layer may use it, it uses none of them."""
