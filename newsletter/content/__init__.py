"""Content: topics, articles and their intake (feeds, JSON, CSV, Markdown), editions and
their rendering (Jinja2 -> MJML -> HTML, plus the plain-text part)."""
