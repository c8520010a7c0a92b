# The console's browser tests drive Debian's chromium (headless, through Playwright's
# Python package with executable_path; Playwright's own browser download is never used).
# `make test` installs chromium first when it is missing: CI runs as root; elsewhere
# sudo is used if it is there.
#
#   make chromium       install /usr/bin/chromium if missing
#   make screenshots    rewrite docs/screenshots/ from the browser tests
CHROMIUM ?= /usr/bin/chromium

.PHONY: chromium screenshots

pytest: chromium

chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		echo "installing Debian's chromium for the console's browser tests"; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi

screenshots: install chromium
	CONSOLE_SCREENSHOTS=docs/screenshots $(PY) -m pytest tests/e2e/test_console.py -q -p no:cacheprovider
