# private-mlops: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# The local Triton's own environment: nvidia-pytriton bundles a real tritonserver and needs numpy<2.
SERVING_VENV  := .venv-serving
SERVING_STAMP := $(SERVING_VENV)/.installed-stamp
# The scoring transformer (components/serving/transformer.py): KServe's Python ModelServer, Feast's Redis reader
# and tritonclient, in their own environment as in their own image layer (kserve pins psutil<6).
TRANSFORMER_VENV  := .venv-transformer
TRANSFORMER_STAMP := $(TRANSFORMER_VENV)/.installed-stamp
# KServe's storage initializer (kserve-storage), in its own environment as in its own container:
# the fidelity test downloads the promoted model with it, as the predictor's init container does.
STORAGE_INIT_VENV  := .venv-storage-initializer
STORAGE_INIT_STAMP := $(STORAGE_INIT_VENV)/.installed-stamp
# The real OPA engine for policy tests. Its wheel declares Python >= 3.14 but works on 3.11,
# so it is installed on its own, pinned, without dependency resolution.
OPA_BINDINGS := opa-golib-python-bindings==0.4.4

export MLFLOW_DISABLE_TELEMETRY := true
export GX_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: services services-down services-install
.PHONY: serving-env storage-initializer-env transformer-env
.PHONY: install demo test test-unit test-integration test-e2e lint manifests bench gpu-check gpu-wheels compile golden lock clean images images-setup image-component image-train-gpu image-triton

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/pip install -q --no-deps --ignore-requires-python $(OPA_BINDINGS)
	$(BIN)/pip check
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the pinned stack (constraints.txt)

$(SERVING_STAMP): serving-constraints.txt
	$(PYTHON) -m venv $(SERVING_VENV)
	$(SERVING_VENV)/bin/pip install -q --upgrade pip
	$(SERVING_VENV)/bin/pip install -q -c serving-constraints.txt nvidia-pytriton numpy xgboost-cpu torch lightgbm onnxruntime
	$(SERVING_VENV)/bin/pip check
	touch $(SERVING_STAMP)

$(STORAGE_INIT_STAMP): storage-initializer-constraints.txt
	$(PYTHON) -m venv $(STORAGE_INIT_VENV)
	$(STORAGE_INIT_VENV)/bin/pip install -q --upgrade pip
	$(STORAGE_INIT_VENV)/bin/pip install -q -c storage-initializer-constraints.txt kserve-storage
	$(STORAGE_INIT_VENV)/bin/pip check
	touch $(STORAGE_INIT_STAMP)

$(TRANSFORMER_STAMP): transformer-constraints.txt
	$(PYTHON) -m venv $(TRANSFORMER_VENV)
	$(TRANSFORMER_VENV)/bin/pip install -q --upgrade pip
	$(TRANSFORMER_VENV)/bin/pip install -q -c transformer-constraints.txt kserve 'feast[redis,postgres]' 'tritonclient[grpc]' 'psycopg[binary]' pyarrow
	$(TRANSFORMER_VENV)/bin/pip check
	touch $(TRANSFORMER_STAMP)

transformer-env: $(TRANSFORMER_STAMP)  ## the scoring transformer's environment (kserve 0.21, Feast's Redis reader, tritonclient)

storage-initializer-env: $(STORAGE_INIT_STAMP)  ## kserve-storage, the code KServe's storage-initializer container runs

serving-env: $(SERVING_STAMP)  ## the local Triton (nvidia-pytriton's tritonserver) and what its python backend loads models with

demo: install  ## the reference fraud pipeline, end to end, on embedded defaults under $MLOPS_HOME (./.mlops)
	$(BIN)/mlops run fraud

# two workers on the two cores CI has; tests/parallel_groups.py keeps each stack, pipeline run and
# module fixture on one of them (TEST_WORKERS=0: one process, as before)
TEST_WORKERS ?= 2

test: install serving-env transformer-env storage-initializer-env lint images-setup services-install  ## lint, type-check, unit, integration (real services), end-to-end and image tests
	$(BIN)/pytest -q --durations=15 -n $(TEST_WORKERS) --dist loadgroup

test-unit: install
	$(BIN)/pytest -q -m "not e2e and not integration and not image"

test-integration: install serving-env transformer-env storage-initializer-env images-setup services-install  ## the pipeline and the failure drills on real services the tests start
	$(BIN)/pytest -q -m integration

test-e2e: install
	$(BIN)/pytest -q -m e2e

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy components pipelines mlops devstack benchmarks

bench: install serving-env transformer-env services-install images-setup  ## step timings, engine overhead, feature store and registry on real services, steps as pods, Redis rebuilt for 1M entities
	$(BIN)/python benchmarks/bench.py
	$(BIN)/python benchmarks/floors_bench.py
	$(BIN)/python benchmarks/platform_bench.py
	$(BIN)/python benchmarks/serving_bench.py
	$(BIN)/python benchmarks/request_path_bench.py
	$(BIN)/python benchmarks/offline_store_bench.py
	$(BIN)/python benchmarks/ray_bench.py
	$(BIN)/python benchmarks/fidelity_bench.py
	$(BIN)/python benchmarks/drift_bench.py
	$(BIN)/python benchmarks/memory_bench.py
	$(BIN)/python benchmarks/online_write_bench.py
	$(BIN)/python benchmarks/scale_bench.py
	$(BIN)/python benchmarks/rebuild_bench.py
	$(BIN)/python benchmarks/recovery_bench.py

gpu-check:  ## the train step's GPU paths (1M, 10M rows; 2-process DDP) beside the CPU; runs on the lent GPU machine as it is
	bash benchmarks/gpu_check.sh

GPU_PYTHON_VERSION ?= 3.12
GPU_WHEELS ?= .whl/gpu-check
gpu-wheels: install  ## the wheels the GPU machine lacks (benchmarks/gpu-carry.txt, for its Python 3.12), into .whl/gpu-check, to carry there
	rm -rf $(GPU_WHEELS)
	$(BIN)/pip download -q --only-binary=:all: --python-version $(GPU_PYTHON_VERSION) --implementation cp \
	  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -c constraints.txt -d $(GPU_WHEELS) \
	  $$(grep -v '^#' benchmarks/gpu-carry.txt | cut -d' ' -f1)

compile: install  ## render each reference pipeline for Argo and Kubeflow into build/
	$(BIN)/mlops compile fraud --target argo --out build/fraud
	$(BIN)/mlops compile fraud --target kfp --out build/fraud

services-install:  ## PostgreSQL 15, PgBouncer, Redis 7, Prometheus (+promtool), Pushgateway, Alertmanager from Debian, when missing (the tests start their own)
	@if ! command -v redis-server >/dev/null || ! command -v pgbouncer >/dev/null || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 \
	  || ! command -v promtool >/dev/null || ! command -v prometheus-pushgateway >/dev/null || ! command -v prometheus-alertmanager >/dev/null; then \
	  echo "installing postgresql redis-server pgbouncer prometheus prometheus-pushgateway prometheus-alertmanager (apt)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    postgresql redis-server pgbouncer prometheus prometheus-pushgateway prometheus-alertmanager >/dev/null; \
	  for unit in prometheus prometheus-pushgateway prometheus-alertmanager prometheus-node-exporter; do \
	    (service $$unit stop || true) >/dev/null 2>&1; done; \
	fi

services: install services-install  ## start PostgreSQL, PgBouncer, Redis, S3 (SeaweedFS) and MLflow on loopback under .mlops/services
	$(BIN)/mlops dev up

services-down:  ## stop what `make services` started
	$(BIN)/mlops dev down

images-setup:  ## podman + runc + a debootstrap base image, so images build with no registry (root)
	bash images/setup-podman.sh

image-component: images-setup  ## build the CPU component image
	bash images/build.sh component

image-train-gpu: images-setup  ## build the GPU training image (needs CUDA torch wheels on the mirror)
	bash images/build.sh train-gpu

image-triton:  ## build the Triton serving image (needs the mirrored NGC tritonserver base)
	bash images/build.sh triton

images: image-component image-train-gpu image-triton

manifests: install  ## render every overlay and validate every object, kind and policy
	$(BIN)/mlops lint manifests

golden: install  ## regenerate the committed golden YAML beside each pipeline; review the diff
	$(BIN)/python -m pipelines.golden
	$(BIN)/python -m mlops.admission
	$(BIN)/python -m mlops.docs_index

lock:  ## re-resolve pyproject.toml's dependencies (every extra) into constraints.txt in a scratch venv
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q --upgrade pip
	.lock-venv/bin/pip install -q '.[dev]'
	.lock-venv/bin/pip check
	{ echo "# Generated by 'make lock' from pyproject.toml (every extra): one resolution of the whole stack on Python 3.11 (Debian 12)."; \
	  echo "# torch is the local CPU wheel; an unpinned torch would pull a multi-GB CUDA build."; \
	  .lock-venv/bin/pip freeze --exclude-editable | grep -v '^private-mlops'; } > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf .mlops build .pytest_cache .mypy_cache .ruff_cache
