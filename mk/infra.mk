# Infrastructure: offline Terraform checks, the generated route table, deploy
# bundles. Included by the Makefile (which defines VENV, PY and `install`).
#
#   make tf-check   terraform fmt -check, route table up to date, checkov
#   make checkov    checkov in its own venv (its pins clash with python-hcl2's `hcl2`)
#   make bundles    dist/<function>.zip for every function
#   make routes     regenerate terraform/modules/load_balancer/routes.auto.tf.json

TERRAFORM       ?= terraform
# Under .local/ (git-ignored, outside ruff and pytest), removed by `make clean`.
CHECKOV_VENV    := .local/checkov
CHECKOV         := $(CHECKOV_VENV)/bin/checkov
CHECKOV_VERSION := 3.3.30
BUNDLE_DIR      ?= dist

.PHONY: tf-check tf-fmt routes bundles checkov infra-clean

infra-check:: tf-check

# checkov installs itself once into .local/checkov (about 25 s), then runs in seconds.
tf-check: install
	@if command -v $(TERRAFORM) >/dev/null 2>&1; then \
		$(TERRAFORM) fmt -check -recursive -diff terraform; \
	else \
		echo "tf-check: $(TERRAFORM) not found, fmt check skipped"; \
	fi
	$(PY) -m deploy.routes --check
	$(MAKE) --no-print-directory checkov

tf-fmt:
	$(TERRAFORM) fmt -recursive terraform

routes: install
	$(PY) -m deploy.routes

bundles: install
	$(PY) -m deploy.bundle --out $(BUNDLE_DIR)

checkov: $(CHECKOV)
	$(CHECKOV) -d terraform --framework terraform --quiet --compact --skip-download

$(CHECKOV):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	mkdir -p $(dir $(CHECKOV_VENV))
	$(PY) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)

infra-clean:
	rm -rf $(CHECKOV_VENV) $(BUNDLE_DIR)
