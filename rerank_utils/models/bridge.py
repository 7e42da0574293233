"""The *bridge* reranker: a cross-encoder that starts as the embedding model it is grown from.

A standard cross-encoder grown from an embedding model reads ``[CLS] q [SEP] d [SEP]`` and scores it
with a NEW, randomly initialised head: at step 0 it ranks at random, and on a few hundred training
queries it stays below the embedding model it came from (``../shared/RESEARCH.md``, notebook 03).

The bridge reads the pair in ONE forward pass too, but laid out so that step 0 *is* the bi-encoder:

* input ``[CLS] q [SEP] [CLS] d [SEP]``: the passage keeps its own ``[CLS]`` (the attention sink the
  embedding model was trained with);
* position ids restart at 0 for the passage, as if it were encoded alone;
* every attention score between a query token and a passage token gets an additive, learnable
  *cross-segment bias* (one per layer, one per layer and head, or one shared). At about -8 the two
  segments barely see each other (weight x e^-8 = 0.03 %), so the pass equals encoding q and d
  separately; fine-tuning may raise the bias where cross-attention pays;
* score = ``scale x cos(pooled query tokens, pooled passage tokens)``, ``scale`` learnable, pooled as the
  bi-encoder pools (mean, e.g. all-MiniLM-L6-v2; or each segment's [CLS], e.g. BAAI/bge-*).

So ``predict`` at initialisation returns ``scale x`` the bi-encoder's cosine (to a tight tolerance), and
fine-tuning can only start from there. It is a sentence-transformers ``CrossEncoder`` built from one
custom input module, :class:`BridgeEncoder`: ``save_pretrained`` writes a normal model folder
(``modules.json`` names ``rerank_utils.models.bridge.BridgeEncoder``), and with this package installed
``CrossEncoder(folder, trust_remote_code=True)``, LlamaIndex's ``SentenceTransformerRerank(model=folder)``
(which passes ``trust_remote_code=True``) and :func:`rerank_utils.models.loading.load_cross_encoder` load it.

Works with BERT-family encoders (BERT, MiniLM, e.g. the packaged all-MiniLM-L6-v2). Introduced in
notebook ``14_bridge_reranker``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from sentence_transformers import CrossEncoder
from sentence_transformers.base.modules import InputModule
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as hf_logging

from rerank_utils.models.resolve import model_kind, resolve_model

BIAS_MODES = ("shared", "layer", "head")


POOLINGS = ("mean", "cls")  # the bi-encoder's pooling, copied per segment


BRIDGE_WEIGHTS = "bridge.safetensors"


CLASS_REF = "rerank_utils.models.bridge.BridgeEncoder"


def fit_lengths(len_q: int, len_d: int, budget: int) -> tuple[int, int]:
    """Token counts kept of a query and a passage so both fit ``budget`` (longest first).

    The shorter text is kept whole when it fits in half the budget; otherwise each gets half.
    Both segments always keep at least one token when the budget allows (never a query-less pair).
    """
    if budget < 2:
        raise ValueError(f"max_seq_length leaves {budget} tokens for the texts: it must leave at least 2 (use >= 6)")
    if len_q + len_d <= budget:
        return len_q, len_d
    half = budget // 2
    if len_q <= half:
        return len_q, budget - len_q
    if len_d <= budget - half:
        return budget - len_d, len_d
    return half, budget - half


class BridgeEncoder(InputModule):
    """The bridge's one module: tokenizer + transformer + cross-segment biases + scale.

    Build one with :func:`build_bridge_reranker` (or :meth:`from_encoder`); sentence-transformers loads a
    saved one through :meth:`load`. Outputs ``{"scores": [batch, 1]}`` as a ``CrossEncoder`` expects.
    """
    config_file_name = "bridge_config.json"
    config_keys = ["max_seq_length", "bias_mode", "bias_start", "scale_start", "pooling", "attn_implementation"]
    save_in_root = True

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        *,
        max_seq_length: int = 256,
        bias_mode: str = "layer",
        bias_start: float = -8.0,
        scale_start: float = 20.0,
        pooling: str = "mean",
        attn_implementation: str = "sdpa",
    ) -> None:
        super().__init__()
        if bias_mode not in BIAS_MODES:
            raise ValueError(f"bias_mode={bias_mode!r}: choose one of {', '.join(BIAS_MODES)}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r}: choose one of {', '.join(POOLINGS)}")
        layers = getattr(getattr(model, "encoder", None), "layer", None)
        if not hasattr(model, "embeddings") or layers is None:
            raise ValueError(
                f"the bridge needs a BERT-family encoder (with .embeddings and .encoder.layer); "
                f"{type(model).__name__} has not. Use the standard cross-encoder for this model."
            )
        if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None or tokenizer.pad_token_id is None:
            raise ValueError("the bridge needs a tokenizer with [CLS], [SEP] and [PAD] tokens")
        self.model = model
        self.tokenizer = tokenizer
        self.max_seq_length = int(max_seq_length)
        self.bias_mode = bias_mode
        self.bias_start = float(bias_start)
        self.scale_start = float(scale_start)
        self.pooling = pooling
        self.attn_implementation = attn_implementation
        n_layers, n_heads = len(layers), model.config.num_attention_heads
        shape = {"shared": (1, 1), "layer": (n_layers, 1), "head": (n_layers, n_heads)}[bias_mode]
        self.cross_bias = nn.Parameter(torch.full(shape, float(bias_start)))
        self.scale = nn.Parameter(torch.tensor(float(scale_start)))
        # RoBERTa-style embeddings number positions from padding_idx + 1; BERT from 0
        self.position_offset = (
            int(model.config.pad_token_id) + 1 if getattr(model.config, "model_type", "") in ("roberta", "xlm-roberta") else 0
        )
        # positions restart per segment, so each segment (not the pair) must fit the position table
        self.max_segment_length = int(model.config.max_position_embeddings) - self.position_offset
        if self.max_seq_length < 6:
            raise ValueError(f"max_seq_length={self.max_seq_length}: the pair needs at least 6 tokens (4 are special)")

    # ------------------------------------------------------------------------------------------ build
    @classmethod
    def from_encoder(
        cls,
        path: str | os.PathLike,
        *,
        max_seq_length: int = 256,
        bias_mode: str = "layer",
        bias_start: float = -8.0,
        scale_start: float = 20.0,
        attn_implementation: str = "sdpa",
        local_files_only: bool = True,
    ) -> "BridgeEncoder":
        """A fresh bridge over the encoder saved at ``path`` (a sentence-transformers or transformers folder);
        pooling as the sentence-transformers folder says (mean for a plain transformers folder)."""
        pooling = _bi_encoder_pooling(Path(path))
        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # a report about the unused pooler / classifier weights we drop
        try:
            model = AutoModel.from_pretrained(
                str(path), local_files_only=local_files_only, attn_implementation=attn_implementation, add_pooling_layer=False
            )
        finally:
            hf_logging.set_verbosity(level)
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=local_files_only)
        return cls(
            model, tokenizer, max_seq_length=max_seq_length, bias_mode=bias_mode, bias_start=bias_start,
            scale_start=scale_start, pooling=pooling, attn_implementation=attn_implementation,
        )

    # ------------------------------------------------------------------------------------ preprocess
    def preprocess(self, inputs: Sequence[Any], prompt: str | None = None, **kwargs) -> dict[str, torch.Tensor]:
        """Pairs ``(query, passage)`` -> ``input_ids``, ``attention_mask``, ``position_ids``, ``segment_ids``.

        A batch of single strings (sentence-transformers' model card counts tokens per column this way) is
        encoded as query segments alone; scoring needs pairs."""
        if inputs and all(isinstance(x, str) for x in inputs):
            return encode_pairs(self.tokenizer, [((prompt or "") + x, None) for x in inputs], self.max_seq_length, self.max_segment_length)
        pairs = []
        for i, pair in enumerate(inputs):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(f"the bridge reranker scores (query, passage) pairs; input {i} is {type(pair).__name__} {pair!r:.80}")
            q, d = pair
            pairs.append(((prompt or "") + str(q), str(d)))
        return encode_pairs(self.tokenizer, pairs, self.max_seq_length, self.max_segment_length)

    # --------------------------------------------------------------------------------------- forward
    def layer_biases(self) -> torch.Tensor:
        """The cross-segment bias as ``[layers, heads]`` (broadcast from the stored shape)."""
        layers = len(self.model.encoder.layer)
        return self.cross_bias.expand(layers, self.model.config.num_attention_heads)

    def forward(self, features: dict[str, torch.Tensor], **kwargs) -> dict[str, torch.Tensor]:
        scores = bridge_scores(
            self.model, self.cross_bias, self.scale,
            features["input_ids"], features["attention_mask"], features["position_ids"], features["segment_ids"],
            self.position_offset, self.pooling,
        )
        features["scores"] = scores.unsqueeze(-1)
        return features

    # ------------------------------------------------------------------------------------ save / load
    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        self.model.save_pretrained(output_path, safe_serialization=safe_serialization)
        self.save_tokenizer(output_path)
        self.save_config(output_path)
        save_file(
            {"cross_bias": self.cross_bias.detach().cpu().contiguous(), "scale": self.scale.detach().cpu().reshape(1)},
            os.path.join(output_path, BRIDGE_WEIGHTS),
        )

    @classmethod
    def load(
        cls,
        model_name_or_path: str,
        subfolder: str = "",
        token: bool | str | None = None,
        cache_folder: str | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        trust_remote_code: bool = False,
        model_kwargs: dict | None = None,
        processor_kwargs: dict | None = None,
        config_kwargs: dict | None = None,
        backend: str = "torch",
        **kwargs,
    ) -> "BridgeEncoder":
        if backend != "torch":
            raise ValueError(
                f"backend={backend!r}: the bridge reranker runs on PyTorch here; export it to ONNX with "
                "rerank_utils.models.export.export_onnx and score with rerank_utils.models.onnx_runtime.OnnxBridgeReranker"
            )
        hub = {"token": token, "cache_folder": cache_folder, "revision": revision, "local_files_only": local_files_only}
        config = cls.load_config(model_name_or_path, subfolder=subfolder, **hub)
        if not config:
            raise FileNotFoundError(f"{model_name_or_path}: no {cls.config_file_name}; not a saved bridge reranker")
        folder = cls.load_dir_path(model_name_or_path, subfolder=subfolder, **hub)
        max_len = (processor_kwargs or {}).get("model_max_length")  # CrossEncoder(max_length=...) lands here
        if max_len is not None:
            config["max_seq_length"] = int(max_len)
        model_kwargs = {k: v for k, v in (model_kwargs or {}).items() if k not in ("token", "revision", "local_files_only", "trust_remote_code")}
        model_kwargs.setdefault("attn_implementation", config.get("attn_implementation", "sdpa"))
        model = AutoModel.from_pretrained(folder, local_files_only=True, add_pooling_layer=False, **model_kwargs)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        module = cls(model, tokenizer, **config)
        weights = load_file(os.path.join(folder, BRIDGE_WEIGHTS))
        if tuple(weights["cross_bias"].shape) != tuple(module.cross_bias.shape):
            raise ValueError(
                f"{folder}/{BRIDGE_WEIGHTS}: cross_bias has shape {tuple(weights['cross_bias'].shape)}, "
                f"bias_mode={config.get('bias_mode')!r} expects {tuple(module.cross_bias.shape)}"
            )
        with torch.no_grad():
            module.cross_bias.copy_(weights["cross_bias"])
            module.scale.copy_(weights["scale"].reshape(()))
        return module


# ------------------------------------------------------------------------------------------ functions
def encode_pairs(
    tokenizer, pairs: Sequence[tuple[str, str | None]], max_seq_length: int, max_segment_length: int | None = None
) -> dict[str, torch.Tensor]:
    """Token ids for ``[CLS] q [SEP] [CLS] d [SEP]`` with positions restarted for the passage, segment ids
    (0 query, 1 passage) and padding. Truncation keeps both segments (:func:`fit_lengths`); each segment
    also stays within ``max_segment_length`` tokens (the model's position table).
    A pair ``(text, None)`` is encoded as ``[CLS] text [SEP]`` alone."""
    budget = max_seq_length - 4
    if not pairs:
        raise ValueError("no pairs to encode")
    per_text = max(1, min(budget, (max_segment_length or max_seq_length) - 2))
    qs = tokenizer([q for q, _ in pairs], add_special_tokens=False, truncation=True, max_length=per_text)["input_ids"]
    ds = tokenizer([d or "" for _, d in pairs], add_special_tokens=False, truncation=True, max_length=per_text)["input_ids"]
    cls_id, sep_id, pad_id = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    ids, pos, seg = [], [], []
    for (_, text_d), q, d in zip(pairs, qs, ds):
        lq, ld = (len(q), 0) if text_d is None else fit_lengths(len(q), len(d), budget)
        seg_q = [cls_id, *q[:lq], sep_id]
        seg_d = [] if text_d is None else [cls_id, *d[:ld], sep_id]
        ids.append(seg_q + seg_d)
        pos.append([*range(len(seg_q)), *range(len(seg_d))])
        seg.append([0] * len(seg_q) + [1] * len(seg_d))

    def padded(rows: list[list[int]], value: int = 0) -> torch.Tensor:
        return pad_sequence([torch.tensor(r, dtype=torch.long) for r in rows], batch_first=True, padding_value=value)

    return {"input_ids": padded(ids, pad_id), "attention_mask": padded([[1] * len(r) for r in ids]),
            "position_ids": padded(pos), "segment_ids": padded(seg)}


def attention_bias(attention_mask: torch.Tensor, segment_ids: torch.Tensor, bias: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The additive attention mask of one layer: ``bias`` (``[heads]`` or ``[1]``) between the segments,
    0 within a segment, the dtype's minimum on padding keys. Shape ``[batch, heads|1, seq, seq]``."""
    cross = (segment_ids[:, :, None] != segment_ids[:, None, :]).to(dtype)  # [B, L, L]
    out = cross[:, None] * bias.to(dtype).view(1, -1, 1, 1)
    pad_keys = (attention_mask == 0)[:, None, None, :]
    return out.masked_fill(pad_keys, torch.finfo(dtype).min)


def bridge_scores(
    model: nn.Module,
    cross_bias: torch.Tensor,
    scale: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    segment_ids: torch.Tensor,
    position_offset: int = 0,
    pooling: str = "mean",
) -> torch.Tensor:
    """``scale x cos(pool(query tokens), pool(passage tokens))`` of one joint pass; shape ``[batch]``.

    A plain function of tensors so the ONNX export traces exactly the code PyTorch runs."""
    hidden = model.embeddings(
        input_ids=input_ids, position_ids=position_ids + position_offset, token_type_ids=torch.zeros_like(input_ids)
    )
    dtype = hidden.dtype
    layers = model.encoder.layer
    biases = cross_bias.expand(len(layers), cross_bias.shape[1])  # shared [1, 1] -> one per layer; else a no-op
    for i, layer in enumerate(layers):
        out = layer(hidden, attention_bias(attention_mask, segment_ids, biases[i], dtype))
        hidden = out[0] if isinstance(out, tuple) else out
    valid = attention_mask.to(dtype)
    in_q = ((segment_ids == 0).to(dtype) * valid).unsqueeze(-1)
    in_d = ((segment_ids == 1).to(dtype) * valid).unsqueeze(-1)
    if pooling == "cls":  # each segment's own [CLS]: position 0 and the first passage token
        q = hidden[:, 0]
        first_d = in_q.squeeze(-1).sum(1).long()  # the query segment comes first
        d = hidden.gather(1, first_d.view(-1, 1, 1).expand(-1, 1, hidden.shape[-1])).squeeze(1)
    else:
        q = (hidden * in_q).sum(1) / in_q.sum(1).clamp(min=1e-9)
        d = (hidden * in_d).sum(1) / in_d.sum(1).clamp(min=1e-9)
    return scale * nn.functional.cosine_similarity(q, d, dim=-1, eps=1e-8)


def _bi_encoder_pooling(path: Path) -> str:
    """The pooling of the sentence-transformers model saved at ``path`` ("mean" or "cls"); "mean" for a plain
    transformers folder. Another pooling raises: the bridge's step 0 would not equal the bi-encoder."""
    modules = path / "modules.json"
    if not modules.is_file():
        return "mean"
    for entry in json.loads(modules.read_text(encoding="utf-8")):
        if entry.get("type", "").endswith("Pooling"):
            cfg_path = path / entry["path"] / "config.json"
            cfg = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.is_file() else {}
            mode = cfg.get("pooling_mode")
            if mode is None:
                modes = [k.removeprefix("pooling_mode_").removesuffix("_tokens") for k, v in cfg.items() if k.startswith("pooling_mode_") and v]
                mode = "+".join(modes) or None
            if isinstance(mode, list):
                mode = mode[0] if len(mode) == 1 else "+".join(map(str, mode))
            mode = {"cls_token": "cls"}.get(mode, mode)
            if mode not in POOLINGS:
                raise ValueError(
                    f"{cfg_path}: the bi-encoder pools with {mode!r}; the bridge reproduces {' or '.join(POOLINGS)} "
                    "pooling only (its step 0 would not equal the bi-encoder). Use the standard cross-encoder."
                )
            return mode
    return "mean"


def build_bridge_reranker(
    base: str | os.PathLike = "default",
    *,
    max_seq_length: int = 256,
    bias_mode: str = "layer",
    bias_start: float = -8.0,
    scale_start: float = 20.0,
    attn_implementation: str = "sdpa",
    device: str | None = None,
):
    """A ``CrossEncoder`` whose only module is a fresh :class:`BridgeEncoder` over ``base`` (an embedding
    model resolved offline first: ``"default"`` is the packaged all-MiniLM-L6-v2).

    ``predict`` returns ``scale x cosine`` (identity activation; the scale starts at ``scale_start``)."""
    path = resolve_model(base)
    module = BridgeEncoder.from_encoder(
        path, max_seq_length=max_seq_length, bias_mode=bias_mode, bias_start=bias_start,
        scale_start=scale_start, attn_implementation=attn_implementation, local_files_only=model_kind(base) != "hub",
    )
    return CrossEncoder(modules=[module], device=device, activation_fn=nn.Identity())


def is_bridge(model) -> bool:
    """True for a ``CrossEncoder`` built on a :class:`BridgeEncoder`."""
    try:
        return isinstance(model[0], BridgeEncoder)
    except (TypeError, IndexError, KeyError):
        return False


def is_bridge_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` is a saved bridge reranker (its ``modules.json`` names :class:`BridgeEncoder`)."""
    modules = Path(path) / "modules.json"
    if not modules.is_file():
        return False
    try:
        return any(m.get("type") == CLASS_REF for m in json.loads(modules.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, AttributeError):
        return False


def bridge_parameters(model) -> list[nn.Parameter]:
    """The bridge's own parameters (cross-segment biases, scale): trained with their own learning rate."""
    if not is_bridge(model):
        return []
    return [model[0].cross_bias, model[0].scale]


def learned_biases(model):
    """The cross-segment biases as a DataFrame, one row per layer: one column per head with
    ``bias_mode="head"``, else one column ``bias`` (shared by the layer's heads), plus ``exp(max)``: the
    largest factor ``exp(bias)`` by which the layer scales attention to the other segment before
    normalisation (1 = open as in a standard cross-encoder, ~0 = blocked)."""
    if not is_bridge(model):
        raise TypeError("learned_biases: not a bridge reranker")
    module: BridgeEncoder = model[0]
    b = module.layer_biases().detach().cpu().float().numpy()
    index = [f"layer {i}" for i in range(b.shape[0])]
    if module.bias_mode == "head":
        out = pd.DataFrame(b, index=index, columns=[f"head {h}" for h in range(b.shape[1])])
    else:
        out = pd.DataFrame({"bias": b[:, 0]}, index=index)
    out["exp(max)"] = np.exp(b.max(axis=1))
    return out


def attention_mask_example(model, query: str, passage: str, layer: int = 0, head: int = 0):
    """``(tokens, mask)`` for one pair: the additive mask the bridge adds in ``layer``/``head`` (for the
    notebook's figure): 0 inside a segment, the cross-segment bias between them."""
    module = model[0]
    feats = module.preprocess([(query, passage)])
    bias = module.layer_biases()[layer, head].detach().reshape(1)
    mask = attention_bias(feats["attention_mask"], feats["segment_ids"], bias, torch.float32)[0, 0].numpy()
    tokens = module.tokenizer.convert_ids_to_tokens(feats["input_ids"][0].tolist())
    return tokens, mask


def bridge_summary(model) -> dict[str, Any]:
    """What training did to the bridge's own parameters: the biases' range and mean, the scale, and how
    far cross-attention opened (``exp(bias)``: 1 = open as in a standard cross-encoder, ~0 = blocked)."""
    module: BridgeEncoder = model[0]
    b = module.cross_bias.detach().float()
    return {
        "bias_mode": module.bias_mode,
        "bias_start": module.bias_start,
        "bias_min": round(float(b.min()), 3),
        "bias_mean": round(float(b.mean()), 3),
        "bias_max": round(float(b.max()), 3),
        "cross_attention_factor_max": float(f"{math.exp(float(b.max())):.3g}"),
        "scale_start": module.scale_start,
        "scale": round(float(module.scale.detach()), 3),
        "max_seq_length": module.max_seq_length,
        "pooling": module.pooling,
    }
