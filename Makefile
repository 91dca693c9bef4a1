# One-command set-up: `make train` and `make test` create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Pinned to the releases this suite is tested with; newer ones in pyproject's ranges work too.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
ARGS ?=

.PHONY: install train test test-slow test-bench lint format clean

$(BIN)/cifar-train: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_PINS)
	$(BIN)/pip install --quiet -e ".[dev,launchers,app,export,tracking,search]"
	touch $@

install: $(BIN)/cifar-train

# ResNet-20 on CIFAR-10 with He et al.'s recipe; data from $CIFAR_DATA (default ./data),
# downloaded there when missing. Extra Hydra overrides: make train ARGS="trainer.max_epochs=10"
train: install
	$(BIN)/cifar-train data.download=true $(ARGS)

# Lint (benchmarks/ included), then every test but the slow end-to-end runs: a few minutes on 2 cores.
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q -m "not slow and not inductor" $(ARGS)

# The slow end-to-end runs (tests marked slow): learning on real CIFAR-10, transfer, kills and exact
# resumes, sweeps and launchers, the wheel installed elsewhere, the README's commands, the app in Chromium.
test-slow: install
	$(BIN)/pytest -q -m slow $(ARGS)

# cifar-bench and the developer instruments of benchmarks/ (raw loop, host step time, time to accuracy,
# the GPU scripts' CPU smoke modes): their own target, outside `make test`.
test-bench: install
	$(BIN)/pytest -q benchmarks/tests $(ARGS)
	$(BIN)/pytest -q -m inductor tests $(ARGS)

lint: install
	$(BIN)/ruff check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
