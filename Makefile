# Two entry points do all set-up themselves: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench chromium spamassassin axe clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,demo,dkim]'
	touch $(STAMP)

## demo: import the bundled sample data, build an edition, send it to a local SMTP sink
demo: $(STAMP)
	$(PY) -m newsletter.demo

## test: lint, then the whole test suite (installs Debian chromium and spamassassin, and
## axe-core from npm into .test-tools/, for the browser, accessibility and spam tests)
test: $(STAMP) chromium spamassassin axe
	$(PY) -m ruff check newsletter tests bench
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check newsletter tests bench
	$(PY) -m ruff format --check newsletter tests bench

bench: $(STAMP)
	$(PY) -m bench

chromium:
	@sh scripts/ensure-chromium.sh

spamassassin:
	@sh scripts/ensure-spamassassin.sh

axe:
	@sh scripts/ensure-axe-core.sh .test-tools/axe

clean:
	rm -rf $(VENV) demo-output editions test-artifacts .test-tools
