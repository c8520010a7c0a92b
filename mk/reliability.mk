# Reliability: the long suites and docs/RELIABILITY.md. Included by the Makefile
# (which defines VENV, PY and `install`). `make test` already runs the short part,
# tests/reliability (faults and attacks, about a minute and a half); these are the
# long parts, for a release or a nightly run, not every CI run.
#
#   make reliability      `make fuzz` (the long schemathesis run, when that target
#                         exists), the fault and attack suites, a SOAK_SECONDS soak,
#                         then rewrites docs/RELIABILITY.md (about 5 minutes + fuzz)
#   make soak             the soak alone
#   make reliability-doc  rewrite docs/RELIABILITY.md from the last kept run

SOAK_SECONDS ?= 180
SOAK_RATE    ?= 20

.PHONY: reliability soak reliability-doc

reliability: install
	$(PY) -m reliability --fuzz --soak-seconds $(SOAK_SECONDS) --soak-rate $(SOAK_RATE)

soak: install
	GATEWAY_SOAK=1 GATEWAY_SOAK_SECONDS=$(SOAK_SECONDS) GATEWAY_SOAK_RATE=$(SOAK_RATE) \
		$(PY) -m pytest -q -p no:cacheprovider tests/soak

reliability-doc: install
	$(PY) -m reliability --render-only "$$(ls -d .local/reliability/*/ | tail -n 1)"
