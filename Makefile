# Two entry points a new user needs: `make demo` and `make test`.
# Both create .venv on first use. torch==2.13.0 is installed first so that the
# local CPU wheel is used and nothing pulls a multi-GB CUDA build.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-slow bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[serve,dev,multilingual]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/coldstart --home .coldstart demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf .coldstart .pytest_cache
