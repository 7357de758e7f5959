# Entry points a newcomer needs. Each target installs what it needs (apt, venv, pip)
# and starts the local services itself; all of them are idempotent.
PY := .venv/bin/python
export PYTHONUNBUFFERED := 1
# The CDK (jsii runtime, cdk CLI) runs on the Node.js 24 that devtools/bootstrap.sh
# installs from the npm registry, not on the system's older one.
export PATH := $(CURDIR)/devtools/node/node_modules/.bin:$(PATH)

.PHONY: venv services-up services-down services-status demo test bench synth clean

venv:
	@bash devtools/bootstrap.sh

services-up: venv
	@$(PY) -m devtools.services up

services-down: venv
	@$(PY) -m devtools.services down

services-status: venv
	@$(PY) -m devtools.services status

demo: services-up
	@$(PY) -m devtools.demo

# Runs the whole suite against real services; pytest's "no tests collected" (5)
# counts as failure here: a suite that runs nothing proves nothing.
test: services-up
	@.venv/bin/lint-imports
	@$(PY) -m pytest -q -p no:cacheprovider tests

# Each bench is a module of the bench package: python -m bench.<name>. The suite runs
# every one at tiny sizes (tests/test_benches.py). bench.quix_influx1_sink is not
# listed: bench.pipeline runs it in its own venv.
BENCHES := parser pipeline recovery replay restore archive systemd_security

bench: services-up
	@for b in $(BENCHES); do echo "== bench.$$b"; $(PY) -m bench.$$b || exit 1; done

synth: venv
	@PATH="$(CURDIR)/.venv/bin:$$PATH" npx --yes aws-cdk@2.1148.1 synth --quiet

clean: services-down
	rm -rf var cdk.out
