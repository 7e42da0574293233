"""Scale-out: the package's fine_tune runs unchanged under `torchrun` (the Trainer's data parallelism,
gloo on CPU). Two processes split each epoch's rows, take half the optimiser steps, keep identical weights,
and only rank 0 writes the model folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rerank_utils.serving.background import free_port

SCRIPT = Path(__file__).with_name("ddp_train.py")


def _run(cmd: list[str], env_extra: dict | None = None) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


@pytest.mark.timeout(400)
def test_two_process_data_parallel_training_on_cpu(tiny_bert_dir, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    _run([sys.executable, str(SCRIPT), str(tiny_bert_dir), str(one)])
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
          "--master_port", str(free_port()), str(SCRIPT), str(tiny_bert_dir), str(two)])
    single = json.loads((one / "rank0.json").read_text())
    ranks = [json.loads((two / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert single["world_size"] == 1 and single["steps"] == 16  # 64 rows / batch 4
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["steps"] == ranks[1]["steps"] == 8  # each process sees half of the rows per step
    assert abs(ranks[0]["fingerprint"] - ranks[1]["fingerprint"]) < 1e-6  # gradients all-reduced: same weights
    facts = json.loads((two / "training.json").read_text())  # written once, by rank 0
    assert facts["world_size"] == 2 and facts["optimizer_steps"] == 8 and (two / "model.safetensors").is_file()


@pytest.mark.timeout(400)
def test_the_bridge_trains_data_parallel_too(tiny_bert_dir, tmp_path):
    """The bridge's own parameters (biases, scale: their own optimiser group) stay in sync across processes."""
    out = tmp_path / "bridge"
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
          "--master_port", str(free_port()), str(SCRIPT), str(tiny_bert_dir), str(out), "bridge"])
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["steps"] for r in ranks] == [8, 8] and abs(ranks[0]["fingerprint"] - ranks[1]["fingerprint"]) < 1e-6
    facts = json.loads((out / "training.json").read_text())
    assert facts["world_size"] == 2 and (out / "bridge.safetensors").is_file()
    assert facts["bridge"]["bias_max"] != -4.0 or facts["bridge"]["bias_min"] != -4.0  # the biases trained
