# Two entry points a new user needs: `make demo` and `make test`.
# Both create .venv on first use. torch==2.13.0 is installed first so that the
# local CPU wheel is used and nothing pulls a multi-GB CUDA build; everything else is
# installed at the versions pinned in constraints.txt (what CI tested; `make
# constraints` refreshes it from the current .venv).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install constraints postgres demo lint test test-slow test-isa bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[serve,dev,multilingual,ray]'
	touch $(STAMP)

install: $(STAMP)

# Pin every installed package (not the project itself) at its current version, for the
# next `make install`. torch's local "+cpu" label is dropped (torch==2.13.0 is installed
# first, from whichever index has it); `pip list` names a package installed from a local
# wheel by its version too, so it is pinned like the rest.
constraints: $(STAMP)
	{ echo "# pip constraints for make install: refresh with make constraints"; \
	  $(BIN)/python -m pip list --format=freeze --exclude-editable | grep -ivE '^(coldstart|pip|setuptools|wheel)==' | \
	  sed -E -e 's/^(torch==[^+]*)\+cpu$$/\1/'; \
	} > constraints.txt

demo: $(STAMP)
	$(BIN)/coldstart --home .coldstart demo

# The store tests also run against a real PostgreSQL server that the test session
# starts itself (initdb + pg_ctl in a temporary directory): install Debian's package
# when it is missing and we are root; otherwise those tests skip, saying why.
postgres:
	@if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing PostgreSQL (Debian package postgresql) for the store tests"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }; \
	  else echo "note: no PostgreSQL server binary and not root: the PostgreSQL tests will be skipped"; fi; \
	fi

# The checks .ci/run makes before the tests (ruff and mypy settings in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python .ci/mypy_baseline.py

test: $(STAMP) postgres
	$(BIN)/python -m pytest -q

test-slow: $(STAMP) postgres
	$(BIN)/python -m pytest -q -m slow

# int8 kernels decode differently on each instruction set, so the tests on real speech
# must pass whichever one CTranslate2 picks. This runs the transcription tests once per
# instruction set (CT2_FORCE_CPU_ISA), skipping the ones this CPU lacks.
ISA_TESTS := tests/test_transcripts_engines.py tests/test_transcripts_devset.py tests/test_transcripts_chunks.py \
	tests/test_transcripts_store.py tests/test_transcribe_cli.py tests/test_uploads.py
test-isa: $(STAMP)
	@flags=$$(grep -m1 '^flags' /proc/cpuinfo); status=0; \
	for isa in GENERIC AVX AVX2 AVX512; do \
	  case $$isa in \
	    AVX) need="avx";; AVX2) need="avx2 fma";; AVX512) need="avx512f avx512bw avx512vl";; *) need="";; \
	  esac; \
	  missing=""; for f in $$need; do echo " $$flags " | grep -qw "$$f" || missing="$$missing $$f"; done; \
	  if [ -n "$$missing" ]; then echo; echo "== CT2_FORCE_CPU_ISA=$$isa: skipped (this CPU lacks$$missing)"; continue; fi; \
	  echo; echo "== CT2_FORCE_CPU_ISA=$$isa"; \
	  CT2_FORCE_CPU_ISA=$$isa $(BIN)/python -m pytest -q -p no:cacheprovider $(ISA_TESTS) || status=1; \
	done; exit $$status

clean:
	rm -rf .coldstart .pytest_cache
