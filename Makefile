# Two entry points do all set-up themselves: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench chromium postfix clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,demo,dkim]'
	touch $(STAMP)

## demo: import the bundled sample data, build an edition, send it to a local SMTP sink
demo: $(STAMP)
	$(PY) -m newsletter.demo

## test: lint, then the whole test suite (installs Debian chromium for the browser tests and
## postfix for its smtp-sink; the Postfix daemon is never started)
test: $(STAMP) chromium postfix
	$(PY) -m ruff check newsletter tests bench
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check newsletter tests bench
	$(PY) -m ruff format --check newsletter tests bench

bench: $(STAMP) postfix
	$(PY) -m bench

chromium:
	@sh scripts/ensure-chromium.sh

postfix:
	@sh scripts/ensure-postfix.sh

clean:
	rm -rf $(VENV) demo-output editions test-artifacts
