# Thin wrappers: the work is done by Python modules in includes/.
PYTHON ?= python3
VENV_PY := .venv/bin/python
# extra pytest arguments, e.g. make test PYTEST_ARGS="-k ML00a"
PYTEST_ARGS ?=
NOTEBOOK_DIRS := notebooks solutions

.PHONY: setup datasets course test lab outputs labs export progress cluster site clean help

help:
	@echo "make course   set up, then run every lesson and solution notebook (table of results)"
	@echo "make test     set up, then the full test suite (unit tests, strict nbval, labs, cluster)"
	@echo "make lab      set up, then open JupyterLab for class"
	@echo "make setup    only the set-up: virtualenv, pinned requirements, Delta jars, datasets"
	@echo "make datasets install or verify the datasets"
	@echo "make outputs  re-execute notebooks to refresh stored outputs (NOTEBOOKS=... for some)"
	@echo "make labs     regenerate labs/ from solutions/"
	@echo "make export   regenerate includes/lessons/ modules from the lesson cells marked #@save"
	@echo "make progress run the labs (LABS=folder for collected ones) and print each lab's checks passed/failed"
	@echo "make cluster  start a local standalone Spark master + worker (Ctrl-C stops)"
	@echo "make site     the course as a static website from the stored outputs, in build/site"

setup:
	@$(PYTHON) -m includes.tools.bootstrap

datasets: setup

course: setup
	@$(VENV_PY) -m includes.tools.runner course

test: setup
	$(VENV_PY) -m pytest -n 2 --dist loadscope --no-loadscope-reorder tests --nbval $(NOTEBOOK_DIRS) \
		--nbval-sanitize-with tests/nbval_sanitize.cfg $(PYTEST_ARGS)

lab: setup
	$(VENV_PY) -m includes.tools.lab

outputs: setup
	$(VENV_PY) -m includes.tools.runner outputs $(NOTEBOOKS)

# the learner's labs/ by default; LABS=path/to/collected/labs for an instructor
LABS ?= labs
progress: setup
	@$(VENV_PY) -m includes.tools.progress $(LABS)

labs:
	$(VENV_PY) -m includes.tools.labs generate

export:
	$(VENV_PY) -m includes.tools.export generate

cluster: setup
	$(VENV_PY) -m includes.tools.cluster

site: setup
	@$(VENV_PY) -m includes.tools.site

clean:
	rm -rf build work
