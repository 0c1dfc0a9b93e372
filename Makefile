# persoma developer entry points. Both targets install everything they need into $(VENV) first.
#   make quickstart   train a small PERSOMA model on built-in synthetic data (CPU, a few minutes)
#   make test         install and run the default test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_FLAGS ?= -q

$(VENV)/.installed: setup.py constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --upgrade pip
	$(PY) -m pip install $(PIP_FLAGS) -c constraints.txt -e '.[test,st]'
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest -q -rs

test-slow: $(VENV)/.installed
	$(PY) -m pytest -q -rs -m slow

quickstart: $(VENV)/.installed
	$(VENV)/bin/persoma-train --gin_file=gin/quickstart.gin --gin.MODEL_DIR="'runs/quickstart'"

.PHONY: install test test-slow quickstart
