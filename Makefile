# Two commands a user needs: `make demo` (set up, then train + evaluate + visualise on the
# embedded synthetic dataset) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_CONFIG ?= configs/quick_schedules/panext_synthetic_cpu.yaml
DEMO_DATASET ?= synthetic_panoptic_val
DEMO_OUTPUT ?= output/demo

.PHONY: setup test demo clean

setup:
	VENV=$(VENV) bash tools/setup_env.sh

test: setup
	$(PY) -m pytest -q tests

demo: setup
	$(PY) train_net.py --config-file $(DEMO_CONFIG) OUTPUT_DIR $(DEMO_OUTPUT)
	$(PY) demo/demo.py --config-file $(DEMO_CONFIG) --dataset $(DEMO_DATASET) \
	    --max-images 8 --output $(DEMO_OUTPUT)/visualizations \
	    --opts MODEL.WEIGHTS $(DEMO_OUTPUT)/model_final.pth

clean:
	rm -rf output .pytest_cache
