"""Profiles: the one place that says what each profile runs (where its artifacts live: :mod:`rerank_utils.paths`).

A *profile* is a set of parameter values that the notebook runner injects into every notebook's
``parameters`` cell. ``common`` values go to every notebook (each notebook must declare them);
``notebooks[stem]`` values go only to that notebook. A notebook's own defaults are the ``cpu``
profile's values, so opening a notebook in Jupyter and pressing *Run all* gives the default run
(``tests/unit/tutorial/test_profiles.py`` checks that they agree).

Introduced in notebook ``00_concepts``; the runner is in :mod:`rerank_utils.tutorial.runner`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rerank_utils.data.records import DEFAULT_FRACTIONS

#: Parameters every notebook declares (the template has them); the runner injects them everywhere.
COMMON_PARAMETERS = (
    "profile",
    "seed",
    "device",
    "data_source",
    "embedding_model",
    "reranker_model",
    "max_queries",
)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    common: dict[str, Any]
    notebooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    cell_timeout: int = 1800  # seconds a single notebook cell may run before the run fails
    needs_hub: bool = False

    def parameters_for(self, notebook_stem: str) -> dict[str, Any]:
        """The values to inject into notebook ``notebook_stem`` (e.g. ``"00_concepts"``)."""
        params = {"profile": self.name, **self.common}
        params.update(self.notebooks.get(notebook_stem, {}))
        return params


_SPLIT = dict(DEFAULT_FRACTIONS)


_MINING_NB = {  # 02_negative_mining, cpu values
    "strategies": ["random", "bm25", "dense", "mixed"],
    "num_negatives": 4,
    "hard_fraction": 0.5,
    "relative_margin": 0.05,
    "skip_top": 0,
    "compare_train_queries": 120,
    "compare_epochs": 1,
    "learning_rate": 1e-4,
    "batch_size": 16,
    "max_length": 128,
    "top_k": 20,
}


_FINETUNE_NB = {  # 03_fine_tuning, cpu values: the recipe chosen on validation (benchmarks/recipe_search.py)
    "loss": "lambda",  # listwise LambdaLoss over each query's 1 positive + 7 negatives
    "negatives": "mixed",
    "num_negatives": 7,
    "hard_fraction": 0.43,  # 3 dense hard negatives + 4 random ones per query
    "hard_source": "dense",
    "relative_margin": 0.05,
    "epochs": 3,
    "learning_rate": 1e-4,
    "batch_size": 4,  # queries per step (each with its 8 candidates)
    "max_length": 128,
    "warmup_ratio": 0.1,
    "weight_decay": 0.01,
    "early_stopping_patience": 2,
    "top_k": 20,
    "engine_train_queries": 40,
    "engine_epochs": 1,
    "retriever_epochs": 2,  # the embedding model fine-tuned first (section 0b); its best epoch on validation is kept
    # the bridge reranker (rerank_utils.models.bridge), trained beside the standard one; chosen on validation too
    "default_reranker": "bridge",  # the model later notebooks load: best on validation offline
    "bridge_loss": "softmax",
    "bridge_num_negatives": 3,  # 1 positive + 3 negatives per query: val within 0.002 of 7 negatives, a third of the time
    "bridge_hard_fraction": 0.57,  # 2 dense hard negatives + 1 random one per query
    "bridge_epochs": 1,  # 2 epochs kept the first too, and cost twice the time (benchmarks/recipe_search.py, issue 15)
    "bridge_learning_rate": 5e-5,  # the encoder; 2e-5 scored a little lower on validation
    "bridge_bias_learning_rate": 5e-2,
    "bridge_max_length": 256,
    "bridge_bias_mode": "layer",
    "bridge_bias_start": -8.0,
}


_EVAL_NB = {  # 04_evaluation, cpu values
    "top_k": 20,
    "top_k_values": [5, 10, 20, 50, 100],
    "base_reranker": "cross-encoder/ms-marco-MiniLM-L-6-v2",  # the guide's base reranker: a row when the hub is reachable
    # training queries; then the full set, the published model itself. 50 and 200 too cost 5 more minutes of training
    # (issue 15: the README says what they showed)
    "learning_curve_sizes": [25, 100],
    "n_worst": 5,
    "fast_inference": True,  # rerank through OpenVINO bf16 where this CPU computes bf16 natively (rerank_utils.models.fast)
}


_DEPLOY_NB = {  # 05_deployment, cpu values
    "top_k": 20,  # documents a request carries: the first stage's candidates
    "batch_size": 32,
    "latency_queries": 30,  # queries timed one predict each, per backend
    "quantize": True,  # also measure (and serve) the int8 ONNX model
    "calibration_queries": 32,  # training queries whose top-K pairs calibrate OpenVINO's int8 (NNCF's time grows with them)
    "load_requests": 200,  # the load test: requests in all
    "concurrency": 16,  # concurrent clients
}


_QASPER_NB = {  # 10_qasper_case_study, cpu values: offline, the FAQ in QASPER's schema (structure only)
    "qasper_source": "faq-fixture",
    "train_papers": None,
    "val_papers": 4,
    "test_papers": 8,
    "architecture": "bridge",
    "loss": "softmax",
    "negatives_per_positive": 3,
    "epochs": 1,
    "learning_rate": 5e-5,
    "batch_size": 4,
    "max_length": 256,
    "top_k": 20,
}


_QASPER_HUB = {  # the guide's case study: 800 training and 80 test papers, a pretrained reranker, its hyper-parameters
    **_QASPER_NB, "qasper_source": "allenai/qasper", "train_papers": 800, "val_papers": 40, "test_papers": 80,
    "architecture": "standard", "loss": "bce", "epochs": 2, "learning_rate": 2e-5, "batch_size": 16, "max_length": 512,
}


_ZH_NB = {  # 11_chinese_reranker, cpu values: offline, the packaged English model (structure only)
    "zh_data": "data/zh_legal_sample.jsonl",
    "split_fractions": {"train": 0.6, "val": 0.15, "test": 0.25},
    "architecture": "bridge",
    "loss": "softmax",
    "num_negatives": 3,
    "epochs": 2,
    "learning_rate": 5e-5,
    "batch_size": 4,
    "max_length": 256,
    "top_k": 10,
}


_ZH_HUB = {**_ZH_NB, "architecture": "standard", "loss": "bce", "learning_rate": 2e-5, "batch_size": 16, "max_length": 512, "epochs": 3}


_LABEL_NB = {  # 13_labelling_your_own_data, cpu values
    "first_stage": "dense",
    "top_k": 10,
    "label_budget": 1500,
    "compare_first_stages": ["bm25", "dense"],
    "demo_clicks": 6,
}


_TROUBLE_NB = {  # 12_troubleshooting, cpu values: small experiments (60 training queries, 1 epoch each)
    "architecture": "bridge", "loss": "softmax", "negatives": "mixed", "num_negatives": 3, "hard_fraction": 0.57,
    "learning_rate": 5e-5, "batch_size": 4, "max_length": 128, "epochs": 1, "early_stopping_patience": 1, "top_k": 20,
    "train_queries": 60, "label_noise_levels": [0.0, 0.25, 0.5], "train_query_counts": [10, 60],
    "learning_rates": [5e-5, 5e-4, 5e-3], "overfit_queries": 20, "overfit_epochs": 4,
    "throughput_max_lengths": [128, 256, 512], "throughput_batch_sizes": [4, 8], "throughput_steps": 2,
    "accumulation_batch_size": 4, "accumulation_steps": 4, "accumulation_updates": 3,
}


_TROUBLE_HUB = {  # a pretrained standard reranker: the guide's learning rates and lengths
    **_TROUBLE_NB, "architecture": "standard", "loss": "lambda", "num_negatives": 7, "hard_fraction": 0.43, "learning_rate": 2e-5, "batch_size": 8,
    "max_length": 512, "learning_rates": [2e-5, 2e-4, 2e-3],
}


def _bridge_nb(finetune: dict[str, Any]) -> dict[str, Any]:
    """14_bridge_reranker's parameters: the bridge recipe of the same profile's 03_fine_tuning, so 14 reuses
    the bridge 03 trained (it does only when the recipes are identical)."""
    return {
        "bias_mode": finetune["bridge_bias_mode"],
        "bias_start": finetune["bridge_bias_start"],
        "loss": finetune["bridge_loss"],
        "negatives": finetune["negatives"],
        "num_negatives": finetune["bridge_num_negatives"],
        "hard_fraction": finetune["bridge_hard_fraction"],
        "hard_source": finetune["hard_source"],
        "relative_margin": finetune["relative_margin"],
        "epochs": finetune["bridge_epochs"],
        "learning_rate": finetune["bridge_learning_rate"],
        "bridge_learning_rate": finetune["bridge_bias_learning_rate"],
        "batch_size": finetune["batch_size"],
        "max_length": finetune["bridge_max_length"],
        "warmup_ratio": finetune["warmup_ratio"],
        "early_stopping_patience": finetune["early_stopping_patience"],
        "top_k": finetune["top_k"],
    }


# Hub profiles start from a pretrained reranker: the guide's hyper-parameters (section 12).
_HUB_FINETUNE = {
    **_FINETUNE_NB, "learning_rate": 2e-5, "max_length": 512, "batch_size": 8, "engine_train_queries": 200,
    "default_reranker": "standard",  # a pretrained reranker is the better start where the hub is reachable
}


_OFFLINE_COMMON = {
    "seed": 42,
    "device": "cpu",
    "data_source": "faq-en",  # the packaged FAQ, English
    "embedding_model": "default",  # the packaged all-MiniLM-L6-v2
    "reranker_model": "default",
    "max_queries": None,
}


PROFILES: dict[str, Profile] = {
    "cpu": Profile(
        name="cpu",
        description="Default, offline: the whole packaged FAQ (English), packaged all-MiniLM-L6-v2.",
        common=_OFFLINE_COMMON,
        notebooks={
            "00_concepts": {"top_k_values": [10, 20, 50, 100], "latency_queries": 20, "batch_size": 32},
            "01_data_preparation": {"split_fractions": _SPLIT, "group_key": None, "resplit": False, "max_length": 256},
            "02_negative_mining": _MINING_NB,
            "03_fine_tuning": _FINETUNE_NB,
            "04_evaluation": _EVAL_NB,
            "05_deployment": _DEPLOY_NB,
            "10_qasper_case_study": _QASPER_NB,
            "11_chinese_reranker": _ZH_NB,
            "12_troubleshooting": _TROUBLE_NB,
            "13_labelling_your_own_data": _LABEL_NB,
            "14_bridge_reranker": _bridge_nb(_FINETUNE_NB),
        },
        # over 10x the longest cell of one whole run on 2 idle cores (03's standard cross-encoder: 409 s on 2026-12-04,
        # 509 s on the AMD EPYC of 2026-12-06, 671 s on a slower machine before), so a busy or slower machine still
        # finishes; a hung cell stops the run, named, after 90 minutes (issue 15)
        cell_timeout=5400,
    ),
    "smoke": Profile(
        name="smoke",
        description="CI and a first look: a few dozen FAQ queries, tiny sizes; every notebook in minutes.",
        common={**_OFFLINE_COMMON, "max_queries": 40},
        notebooks={
            "00_concepts": {"top_k_values": [10, 20], "latency_queries": 3, "batch_size": 32},
            "01_data_preparation": {"split_fractions": _SPLIT, "group_key": None, "resplit": False, "max_length": 128},
            "02_negative_mining": {**_MINING_NB, "compare_train_queries": 6},  # of 28: four trainings, structure only
            "03_fine_tuning": {**_FINETUNE_NB, "epochs": 1, "engine_train_queries": 10, "retriever_epochs": 1},
            "04_evaluation": {**_EVAL_NB, "top_k_values": [5, 20], "learning_curve_sizes": [10]},
            "05_deployment": {**_DEPLOY_NB, "latency_queries": 5, "calibration_queries": 4, "load_requests": 24, "concurrency": 4},
            "10_qasper_case_study": {**_QASPER_NB, "train_papers": 2, "val_papers": 1, "test_papers": 2, "max_length": 128},
            "11_chinese_reranker": {**_ZH_NB, "epochs": 1, "max_length": 128},
            "12_troubleshooting": {
                **_TROUBLE_NB, "train_queries": 8, "label_noise_levels": [0.0, 0.5], "train_query_counts": [4, 8],
                "learning_rates": [5e-5, 5e-3], "overfit_queries": 4, "overfit_epochs": 2, "throughput_max_lengths": [128, 512],
                "throughput_batch_sizes": [4], "throughput_steps": 1, "accumulation_batch_size": 2, "accumulation_steps": 2,
                "accumulation_updates": 2,
            },
            "13_labelling_your_own_data": {**_LABEL_NB, "label_budget": 120},
            "14_bridge_reranker": _bridge_nb(_FINETUNE_NB),
        },
        cell_timeout=600,
    ),
    "gpu": Profile(
        name="gpu",
        description="Users with a GPU and the Hugging Face hub: QASPER, ms-marco-MiniLM-L-12-v2.",
        common={
            "seed": 42,
            "device": "cuda",
            "data_source": "qasper",
            "embedding_model": "default",
            "reranker_model": "cross-encoder/ms-marco-MiniLM-L-12-v2",
            "max_queries": 1000,
        },
        notebooks={
            "00_concepts": {"top_k_values": [10, 20, 50, 100], "latency_queries": 50, "batch_size": 64},
            "01_data_preparation": {"split_fractions": _SPLIT, "group_key": "paper_id", "resplit": False, "max_length": 512},
            "02_negative_mining": {**_MINING_NB, "compare_train_queries": 2000, "learning_rate": 2e-5, "max_length": 512},
            "03_fine_tuning": _HUB_FINETUNE,
            "04_evaluation": {**_EVAL_NB, "base_reranker": "cross-encoder/ms-marco-MiniLM-L-12-v2", "learning_curve_sizes": [100, 250, 500]},
            "05_deployment": {**_DEPLOY_NB, "batch_size": 64, "load_requests": 1000, "concurrency": 32},
            "10_qasper_case_study": _QASPER_HUB,
            "11_chinese_reranker": _ZH_NB,  # the gpu profile's models are English: the offline recipe; the zh profile is the real run
            "12_troubleshooting": {
                **_TROUBLE_HUB, "train_queries": 300, "train_query_counts": [50, 300], "overfit_queries": 100, "overfit_epochs": 5,
                "throughput_batch_sizes": [8, 16, 32], "throughput_steps": 5, "accumulation_batch_size": 8,
            },
            "13_labelling_your_own_data": {**_LABEL_NB, "label_budget": 3000},
            "14_bridge_reranker": _bridge_nb(_HUB_FINETUNE),  # grown from the profile's embedding model
        },
        cell_timeout=7200,
        needs_hub=True,
    ),
    "zh": Profile(
        name="zh",
        description="Chinese users with the hub: data in the guide's format, BAAI/bge-reranker-base.",
        common={
            "seed": 42,
            "device": "cpu",
            "data_source": "data/zh_legal_sample.jsonl",
            "embedding_model": "BAAI/bge-small-zh-v1.5",
            "reranker_model": "BAAI/bge-reranker-base",
            "max_queries": None,
        },
        notebooks={
            "00_concepts": {"top_k_values": [5, 10, 20], "latency_queries": 10, "batch_size": 32},
            "01_data_preparation": {"split_fractions": _SPLIT, "group_key": None, "resplit": False, "max_length": 512},
            "02_negative_mining": {**_MINING_NB, "compare_train_queries": None, "learning_rate": 2e-5, "max_length": 512},
            "03_fine_tuning": {**_HUB_FINETUNE, "engine_train_queries": 8},
            "04_evaluation": {**_EVAL_NB, "base_reranker": "BAAI/bge-reranker-base", "learning_curve_sizes": [4, 8]},
            "05_deployment": {**_DEPLOY_NB, "latency_queries": 10, "load_requests": 100},
            "10_qasper_case_study": {**_QASPER_NB, "architecture": "standard", "loss": "bce", "learning_rate": 2e-5, "batch_size": 16},
            "11_chinese_reranker": _ZH_HUB,
            "12_troubleshooting": {
                **_TROUBLE_HUB, "train_queries": 16, "train_query_counts": [4, 16], "overfit_queries": 8, "throughput_batch_sizes": [4],
                "throughput_steps": 1, "accumulation_batch_size": 2, "accumulation_steps": 2, "accumulation_updates": 2,
            },
            "13_labelling_your_own_data": {**_LABEL_NB, "label_budget": 48},  # 16 queries in the zh sample
            "14_bridge_reranker": _bridge_nb(_HUB_FINETUNE),  # bge-small-zh pools by [CLS]: the bridge copies it
        },
        cell_timeout=3600,
        needs_hub=True,
    ),
}


DEFAULT_PROFILE = "cpu"


def get_profile(name: str) -> Profile:
    """The profile called ``name``; a clear error listing the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}") from None
