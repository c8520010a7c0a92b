# The long fuzzing run: schemathesis against the whole local stack, every operation of the
# OpenAPI document, with a key of each role, boundary (coverage) cases and stateful chains.
# Not part of `make test` (which runs the short tier of the same test, about a minute).
# Writes the summary (operations, examples, failures, known defects) to FUZZ_SUMMARY.
#
#   make fuzz                               150 examples per operation and mode, fixed seed
#   make fuzz FUZZ_EXAMPLES=500 FUZZ_SEED=7
#   make fuzz FUZZ_KNOWN_DEFECTS=strict     known defects fail the run too
FUZZ_EXAMPLES ?= 150
FUZZ_SEED ?= 20261128
FUZZ_SUMMARY ?= bench/fuzz-summary.json
FUZZ_KNOWN_DEFECTS ?=

.PHONY: fuzz

fuzz: install
	FUZZ_TIER=long FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_SEED=$(FUZZ_SEED) \
	FUZZ_SUMMARY=$(FUZZ_SUMMARY) FUZZ_KNOWN_DEFECTS=$(FUZZ_KNOWN_DEFECTS) \
		$(PY) -m pytest tests/e2e/test_fuzz.py -q -p no:cacheprovider
	@echo "fuzz summary: $(FUZZ_SUMMARY)"
