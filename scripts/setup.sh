#!/usr/bin/env bash
# Create the virtual environment, install torch (CPU wheel by default) and this package with its
# dev extra, and register the Jupyter kernel `python3` inside the environment.
set -euo pipefail
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip

# torch first and explicitly: an unpinned torch resolves to a CUDA build of several GB.
if [ "$TORCH_SPEC" = "skip" ]; then
  "$PY" -c "import torch" 2>/dev/null || { echo "[setup] TORCH_SPEC=skip but torch is not installed in $VENV" >&2; exit 1; }
  echo "[setup] keeping the installed torch $("$PY" -c 'import torch; print(torch.__version__)')"
elif ! "$PY" -m pip install -q "$TORCH_SPEC"; then
  echo "[setup] could not install $TORCH_SPEC. On a machine without that wheel, install the torch" >&2
  echo "        build for your hardware into $VENV first, then run: make setup TORCH_SPEC=skip" >&2
  exit 1
fi

"$PY" -m pip install -q -e ".[dev]"
# A kernel named python3 that runs this environment's Python (papermill and JupyterLab use it).
"$PY" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (rerank-finetune)" >/dev/null
"$PY" - <<'PY'
import sys, torch, sentence_transformers, transformers, llama_index.core
print(f"[setup] ready: python {sys.version.split()[0]}, torch {torch.__version__}, "
      f"sentence-transformers {sentence_transformers.__version__}, transformers {transformers.__version__}, "
      f"llama-index-core {llama_index.core.__version__}")
PY
