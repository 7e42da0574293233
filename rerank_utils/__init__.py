"""rerank_utils: the tested helper package behind the rerank-finetune notebooks."""

__version__ = "0.1.0"
