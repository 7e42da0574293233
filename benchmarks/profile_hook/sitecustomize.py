"""Imported by every Python process started with this folder on ``PYTHONPATH`` (benchmarks/where_time_goes.py sets it
for a ``run-notebooks`` run): when ``RERANK_PROFILE_DIR`` is set, it adds up the seconds spent inside the model calls
(``CrossEncoder.predict``, ``SentenceTransformer.encode``, ``Trainer.train`` / ``evaluate``, the package's exported
scorers, export and NNCF's quantisation), nested calls keyed by their path (``train/evaluate/ce.predict``), and writes
them after each call to ``<dir>/<start time>_<pid>.json``: one file per notebook kernel. Hand-written because no
profiler keys time by these few library calls across the kernels papermill starts."""

import os

if os.environ.get("RERANK_PROFILE_DIR"):
    import functools
    import importlib.abc
    import importlib.util
    import json
    import sys
    import threading
    import time

    _acc: dict = {}
    _start = time.time()
    _path = os.path.join(os.environ["RERANK_PROFILE_DIR"], f"{_start:.3f}_{os.getpid()}.json")
    _local = threading.local()

    def _wrap(owner, name, label):
        f = getattr(owner, name, None)
        if f is None or getattr(f, "_timed", False):
            return

        @functools.wraps(f)
        def timed(*args, **kwargs):
            stack = _local.__dict__.setdefault("stack", [])
            key = "/".join(stack + [label])
            stack.append(label)
            t = time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                stack.pop()
                entry = _acc.setdefault(key, [0.0, 0])
                entry[0] += time.perf_counter() - t
                entry[1] += 1
                with open(_path, "w") as out:
                    json.dump({"argv": sys.argv[:3], "start": _start, "seconds_calls": _acc}, out)

        timed._timed = True
        setattr(owner, name, timed)

    _TARGETS = {
        "sentence_transformers": lambda m: (_wrap(m.CrossEncoder, "predict", "ce.predict"), _wrap(m.SentenceTransformer, "encode", "st.encode")),
        "transformers.trainer": lambda m: (_wrap(m.Trainer, "train", "train"), _wrap(m.Trainer, "evaluate", "evaluate")),
        "rerank_utils.models.onnx_runtime": lambda m: (_wrap(m.OnnxBridgeReranker, "predict", "onnx_bridge.predict"),
                                                       _wrap(m.OnnxCrossEncoder, "predict", "onnx_ce.predict")),
        "rerank_utils.models.export": lambda m: [_wrap(m, n, "export." + n) for n in dir(m) if n.startswith(("export", "quantiz"))],
        "nncf": lambda m: _wrap(m, "quantize", "nncf.quantize"),
    }

    class _Finder(importlib.abc.MetaPathFinder):
        """Wraps a target module's functions right after the module is first imported."""

        def find_spec(self, name, path, target=None):
            if name not in _TARGETS:
                return None
            sys.meta_path.remove(self)
            try:
                spec = importlib.util.find_spec(name)
            finally:
                sys.meta_path.insert(0, self)
            if spec is None or spec.loader is None:
                return spec
            run = spec.loader.exec_module

            def exec_module(module):
                run(module)
                _TARGETS[name](module)

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, _Finder())
