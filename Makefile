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

# bench/quix_influx1_sink.py is not listed: bench/pipeline.py runs it in its own venv.
BENCHES := bench/parser.py bench/pipeline.py bench/recovery.py bench/replay.py bench/restore.py bench/archive.py bench/systemd_security.py

bench: services-up
	@for b in $(BENCHES); do echo "== $$b"; $(PY) $$b || exit 1; done

synth: venv
	@PATH="$(CURDIR)/.venv/bin:$$PATH" npx --yes aws-cdk@2.1148.1 synth --quiet

clean: services-down
	rm -rf var cdk.out
