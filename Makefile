# make setup | make test | make test-all | make lint | make demo   (Debian/Ubuntu, Python 3.11)
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
FASHION_MNIST_DIR ?= /usr/share/datasets/fashion-mnist
DEMO_WORKDIR ?= runs/demo

.PHONY: setup data lint test test-all demo clean

setup: $(VENV)/.installed

# Re-installs only when the dependency list changes.
$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; install Python 3.11 or run make PYTHON=python3"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

data:
	@if ls $(FASHION_MNIST_DIR)/train-images-idx3-ubyte* >/dev/null 2>&1; then \
	  echo "Fashion-MNIST found in $(FASHION_MNIST_DIR)"; \
	else \
	  echo "Fashion-MNIST not in $(FASHION_MNIST_DIR); installing the Debian package dataset-fashion-mnist"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist; } || { \
	    echo "Could not install dataset-fashion-mnist. Install it yourself (sudo apt-get install dataset-fashion-mnist)"; \
	    echo "or put the four IDX files in a folder and run: make demo FASHION_MNIST_DIR=/that/folder"; exit 1; }; \
	fi

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The fast suite (at most 5 minutes on 2 cores); test-all adds the tests marked slow.
# Two pytest workers (pytest-xdist): the 2-core machine's cores are otherwise half idle.
test: setup data
	$(PY) -m pytest -q -m "not slow" -n 2 --dist worksteal --durations=10

test-all: setup data
	$(PY) -m pytest -q -n 2 --dist worksteal --durations=25

# Ends with the scores (pretrained, random init, raw pixels), the pictures' paths and the wall time.
demo: setup data
	@start=$$(date +%s); \
	$(VENV)/bin/jssl pretrain --config configs/simclr_fashion_mnist_cpu.py --workdir $(DEMO_WORKDIR) \
	  --config.data.dir=$(FASHION_MNIST_DIR) && \
	$(VENV)/bin/jssl eval --workdir $(DEMO_WORKDIR) && \
	echo "make demo: pretraining and evaluation took $$(( ($$(date +%s) - start) / 60 )) min $$(( ($$(date +%s) - start) % 60 )) s; workdir $(DEMO_WORKDIR)"

clean:
	rm -rf $(VENV) runs
