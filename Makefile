# schemagate: every target bootstraps what it needs on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export SCHEMAGATE_CACHE ?= $(HOME)/.cache/schemagate
# Each build step prints one line (its time, its log in .cluster/build-logs/); its
# output (pip, apt-get, go, buildah) goes to that log, whose tail is shown on a failure.
STEP   := bash hack/step.sh

.PHONY: test lint types layers test-unit test-chart test-db test-image test-cluster test-chaos test-tenants \
        test-localenv tier-times cluster-up cluster-down demo control-plane node images chart chart-readme bench \
        bench-gate bench-leader bench-scale bench-verify-pod bench-plan bench-start-gate crds clean actionlint \
        helm _venv _chart _actionlint

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(STEP) venv $(MAKE) --no-print-directory _venv

_venv:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[test]'
	@# The local environment (localenv/) and the tests import from the checkout, never
	@# from the wheel: the repository root goes on the venv's path, not into the package.
	$(PY) -c 'import sysconfig, sys; open(sysconfig.get_paths()["purelib"] + "/schemagate-dev.pth", "w").write(sys.argv[1] + "\n")' "$(CURDIR)"
	touch $(VENV)/.installed

venv: $(VENV)/.installed

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check operator localenv tests bench hack

types: $(VENV)/.installed
	$(VENV)/bin/mypy

layers: $(VENV)/.installed
	$(VENV)/bin/lint-imports

# Each tier alone (its marker is its directory, so `pytest -m TIER` selects the same),
# writing its JUnit XML for `make tier-times`.
JUNIT = --junitxml=build/junit-$(1).xml

test-unit: $(VENV)/.installed
	$(PY) -m pytest $(call JUNIT,unit) tests/unit

# The chart, the shipped alerts and dashboard, the workflows: the pinned helm and
# actionlint, built once from the Go module proxy by the tests themselves.
test-chart: $(VENV)/.installed
	$(PY) -m pytest $(call JUNIT,chart) tests/chart

test-db: $(VENV)/.installed
	$(PY) -m pytest $(call JUNIT,db) tests/db

test-image: $(VENV)/.installed
	$(PY) -m pytest $(call JUNIT,image) tests/image

test-cluster: $(VENV)/.installed control-plane node images
	$(PY) -m pytest $(call JUNIT,cluster) tests/cluster

# The chaos tier: stalled databases, outages, SIGKILL and SIGTERM, the largest spec.
test-chaos: $(VENV)/.installed control-plane node images
	$(PY) -m pytest $(call JUNIT,chaos) tests/chaos

# The tenancy tier: hostile inputs in some namespaces, a victim in another, the operator
# installed by the chart (its 384Mi limit included).
test-tenants: $(VENV)/.installed control-plane node images
	$(PY) -m pytest $(call JUNIT,tenants) tests/tenants

# The local environment's own tests (the node's up/down cycles last).
test-localenv: $(VENV)/.installed control-plane node images
	$(PY) -m pytest $(call JUNIT,localenv) localenv/tests

# Everything CI runs (.ci/run calls this): every tier, in one session.
test: lint types layers control-plane chart actionlint node images
	$(PY) -m pytest $(call JUNIT,test) tests/unit tests/chart tests/db tests/image tests/cluster \
	  tests/tenants tests/chaos localenv/tests

# The table of tiers and their times in docs/development.md, from the JUnit XML the
# last `make test` and `make test-TIER` runs wrote (each tier from the newest).
tier-times: $(VENV)/.installed
	$(PY) hack/tier_times.py build/junit-*.xml

# Builds kube-apiserver, kube-controller-manager, kubectl and etcd from the Go module
# proxy once; later runs reuse the cache in $(SCHEMAGATE_CACHE).
control-plane:
	@$(STEP) "control plane" bash hack/build-control-plane.sh control-plane

# The real node: the Debian packages it needs (installed when missing, said first),
# then kubelet, kube-proxy, kube-scheduler and pause built once into the same cache.
node:
	@$(STEP) "node packages" bash hack/bootstrap-node.sh
	@$(STEP) "node binaries" bash hack/build-control-plane.sh node

# The node's images (pause, busybox, the python:3.11-slim base, schemagate:dev from
# our Dockerfile, schemagate/backend:dev), rebuilt only when their inputs change.
images: $(VENV)/.installed node
	@$(STEP) images $(PY) -m localenv.images build

# helm lint and helm template over the chart in each mode, with the pinned helm built once
# from the Go module proxy (hack/build-control-plane.sh helm) into the same cache.
CHART_VALUES := "" "--set watchNamespaces={team-a,team-b}" "--set metrics.serviceMonitor.enabled=true" \
  "--set metrics.prometheusRule.enabled=true,metrics.dashboard.enabled=true,metrics.podMonitoring.enabled=true" \
  "--set tenancy.allowedHosts.team-a={db.team-a.svc,10.20.0.0/16}"
helm:
	@$(STEP) helm bash hack/build-control-plane.sh helm

chart: helm
	@$(STEP) chart $(MAKE) --no-print-directory _chart

_chart:
	@helm=$$(bash hack/build-control-plane.sh helm) && for values in $(CHART_VALUES); do \
	  $$helm lint --strict --quiet charts/schemagate $$values && \
	  $$helm template schemagate charts/schemagate -n schemagate-system $$values >/dev/null \
	  || exit 1; done
	@echo "chart: helm lint and helm template pass"

# The GitHub workflows (ours, and the example in contrib/github) cannot run here;
# actionlint (built once from the Go module proxy at the version pinned in
# hack/build-control-plane.sh, cached like helm) checks them.
# shellcheck and pyflakes are not on our machines: their checks are off, not skipped by chance.
actionlint:
	@$(STEP) actionlint $(MAKE) --no-print-directory _actionlint

_actionlint:
	@lint=$$(bash hack/build-control-plane.sh actionlint) && \
	  $$lint -shellcheck= -pyflakes= .github/workflows/*.yaml contrib/github/*.yaml
	@echo "actionlint: the workflows pass"

cluster-up: $(VENV)/.installed control-plane node images
	$(PY) -m localenv.cluster up

cluster-down: $(VENV)/.installed
	$(PY) -m localenv.cluster down

demo: $(VENV)/.installed control-plane node images helm
	$(PY) -m localenv.demo

chart-readme: $(VENV)/.installed
	$(PY) hack/chart_readme.py

crds: $(VENV)/.installed
	$(PY) -m schemagate.cli crd > crds/databaseschemas.schemagate.io.yaml
	cp crds/databaseschemas.schemagate.io.yaml charts/schemagate/files/crds/

bench: $(VENV)/.installed
	$(PY) bench/verify.py

# `schemagate plan` over 200 revisions next to `alembic upgrade --sql` alone, in one run.
bench-plan: $(VENV)/.installed
	$(PY) bench/plan.py

bench-gate: $(VENV)/.installed control-plane
	$(PY) bench/gate_latency.py

bench-leader: $(VENV)/.installed control-plane
	$(PY) bench/leader_handover.py

# N = 10, 100, 1000 DatabaseSchemas (3 gated pods each); `--baseline DIR` (a checkout of
# a tagged commit) runs its operator side by side. `--sizes 10 100` for a part.
bench-scale: $(VENV)/.installed control-plane node
	$(PY) bench/scale.py

bench-verify-pod: $(VENV)/.installed control-plane node images
	$(PY) bench/verify_pod.py

# The readiness gate alone against the start-up gate, a backend that exits 3 on missing
# tables (about 4 minutes, on the real node).
bench-start-gate: $(VENV)/.installed control-plane node images
	$(PY) bench/start_gate.py

clean:
	rm -rf $(VENV) .cluster .pytest_cache .mypy_cache .ruff_cache
