# Two entry points do all set-up themselves: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench chromium postfix dovecot spamassassin axe openssl clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,demo,dkim]'
	touch $(STAMP)

## demo: import the bundled sample data, build an edition, send it to a local SMTP sink
demo: $(STAMP)
	$(PY) -m newsletter.demo

## test: lint, then the whole test suite (installs Debian chromium for the browser tests,
## postfix for its smtp-sink (the Postfix daemon is never started), dovecot for the
## bounce-mailbox tests, which start their own instance, spamassassin for the spam check,
## axe-core from npm into .test-tools/ for the accessibility tests, and openssl for the
## DKIM keys and TLS certificates the tests make)
test: $(STAMP) chromium postfix dovecot spamassassin axe openssl
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

dovecot:
	@sh scripts/ensure-dovecot.sh

spamassassin:
	@sh scripts/ensure-spamassassin.sh

axe:
	@sh scripts/ensure-axe-core.sh .test-tools/axe

openssl:
	@sh scripts/ensure-openssl.sh

clean:
	rm -rf $(VENV) demo-output editions test-artifacts .test-tools
