"""The bridge reranker on a tiny random BERT: its input layout, step 0 = the bi-encoder, the bias
opening, save/load through CrossEncoder / load_cross_encoder / LlamaIndex, training, ONNX export."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from rerank_utils.models.bridge import (
    BridgeEncoder,
    attention_mask_example,
    bridge_summary,
    build_bridge_reranker,
    encode_pairs,
    fit_lengths,
    is_bridge,
    is_bridge_folder,
    learned_biases,
)
from rerank_utils.models.export import export_onnx
from rerank_utils.models.loading import load_reranker
from rerank_utils.models.onnx_runtime import OnnxBridgeReranker
from rerank_utils.retrieval.dense import DenseRetriever
from rerank_utils.training.arguments import TrainingConfig
from rerank_utils.training.losses import ListwiseSoftmaxLoss
from rerank_utils.training.recipes import Recipe
from rerank_utils.training.samples import training_rows
from rerank_utils.training.trainer import fine_tune
from tests.extras import dev_extra

PAIRS = [
    ("what is the building permit", "the building permit law of the house"),
    ("roof water", "water on the roof is a tax deduction cost"),
    ("how is the contract", "the contract"),
    ("tax", "house " * 30),
]


@pytest.fixture(scope="module")
def bi_encoder(tiny_bert_dir):
    """The tiny BERT as a bi-encoder with mean pooling: what the bridge must equal at step 0."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    t = Transformer(str(tiny_bert_dir), max_seq_length=128)
    return SentenceTransformer(modules=[t, Pooling(t.get_embedding_dimension(), "mean")], device="cpu")


def cosines(bi, pairs):
    q = bi.encode([p[0] for p in pairs], convert_to_tensor=True)
    d = bi.encode([p[1] for p in pairs], convert_to_tensor=True)
    return torch.nn.functional.cosine_similarity(q, d).numpy()


def test_fit_lengths_keeps_both_segments():
    assert fit_lengths(5, 7, 20) == (5, 7)  # fits
    assert fit_lengths(3, 50, 20) == (3, 17)  # short query kept whole
    assert fit_lengths(50, 4, 20) == (16, 4)  # short passage kept whole
    assert fit_lengths(50, 50, 21) == (10, 11)  # both long: half each
    for lq, ld in [(0, 0), (1, 100), (100, 1), (30, 30)]:
        a, b = fit_lengths(lq, ld, 12)
        assert a + b <= 12 and a == min(lq, a) and (lq == 0 or a >= 1) and (ld == 0 or b >= 1)
    with pytest.raises(ValueError, match="at least 2"):
        fit_lengths(3, 3, 1)


def test_encode_pairs_layout(tiny_bert_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    f = encode_pairs(tok, [("the roof", "the tax law"), ("roof", "water " * 40)], max_seq_length=16)
    ids, mask, pos, seg = (f[k] for k in ("input_ids", "attention_mask", "position_ids", "segment_ids"))
    cls, sep = tok.cls_token_id, tok.sep_token_id
    row = ids[0][mask[0] == 1].tolist()
    n_q = len(tok("the roof", add_special_tokens=False)["input_ids"])
    # [CLS] q [SEP] [CLS] d [SEP]: the passage has its own [CLS]; positions restart at 0 for it
    assert row[0] == cls and row[n_q + 1] == sep and row[n_q + 2] == cls and row[-1] == sep
    assert pos[0][: n_q + 2].tolist() == list(range(n_q + 2)) and pos[0][n_q + 2] == 0
    assert seg[0][mask[0] == 1].tolist() == [0] * (n_q + 2) + [1] * (len(row) - n_q - 2)
    # the long passage is cut so the pair fits 16 tokens, and the query survives whole
    assert int(mask[1].sum()) == 16 and int((seg[1][mask[1] == 1] == 0).sum()) == 3
    assert ids.shape == (2, 16) and int(mask[0].sum()) < 16 and (ids[0][mask[0] == 0] == tok.pad_token_id).all()


def test_step_zero_equals_the_bi_encoder(tiny_bert_dir, bi_encoder):
    cos = cosines(bi_encoder, PAIRS)
    blocked = build_bridge_reranker(str(tiny_bert_dir), bias_start=-30.0, scale_start=7.0, max_seq_length=128)
    assert np.allclose(blocked.predict(PAIRS), 7.0 * cos, atol=1e-4)
    near = build_bridge_reranker(str(tiny_bert_dir), bias_start=-8.0, max_seq_length=128)
    assert np.allclose(near.predict(PAIRS), 20.0 * cos, atol=0.05)  # e^-8 of the attention leaks
    # opening cross-attention changes the scores (the model is no longer a bi-encoder)
    opened = build_bridge_reranker(str(tiny_bert_dir), bias_start=0.0, max_seq_length=128)
    assert np.abs(opened.predict(PAIRS) - 20.0 * cos).max() > 0.05


@pytest.mark.parametrize("pooling", ["cls", "max"])
def test_the_bi_encoders_pooling_is_copied(tiny_bert_dir, tmp_path, pooling):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    t = Transformer(str(tiny_bert_dir), max_seq_length=128)
    bi = SentenceTransformer(modules=[t, Pooling(t.get_embedding_dimension(), pooling)], device="cpu")
    bi.save(str(tmp_path / "bi"))
    if pooling == "max":
        with pytest.raises(ValueError, match="pools with 'max'.*mean or cls"):
            build_bridge_reranker(str(tmp_path / "bi"))
        return
    ce = build_bridge_reranker(str(tmp_path / "bi"), bias_start=-30.0, scale_start=1.0, max_seq_length=128)
    assert ce[0].pooling == "cls"
    assert np.allclose(ce.predict(PAIRS), cosines(bi, PAIRS), atol=1e-5)


def test_bias_modes_and_attention_mask(tiny_bert_dir):
    head = build_bridge_reranker(str(tiny_bert_dir), bias_mode="head", bias_start=-4.0)
    shared = build_bridge_reranker(str(tiny_bert_dir), bias_mode="shared", bias_start=-4.0)
    assert tuple(head[0].cross_bias.shape) == (2, 2) and tuple(shared[0].cross_bias.shape) == (1, 1)
    assert list(learned_biases(shared).columns) == ["bias", "exp(max)"] and len(learned_biases(shared)) == 2
    lb = learned_biases(head)
    assert list(lb.columns) == ["head 0", "head 1", "exp(max)"] and (lb[["head 0", "head 1"]].to_numpy() == -4.0).all()
    assert np.allclose(lb["exp(max)"], math.exp(-4.0))
    assert np.allclose(head.predict(PAIRS), shared.predict(PAIRS), atol=1e-5)  # same start, same model
    with torch.no_grad():
        head[0].cross_bias[1, 0] = 0.0  # open one head of the last layer only
    assert np.abs(head.predict(PAIRS) - shared.predict(PAIRS)).max() > 1e-3
    tokens, mask = attention_mask_example(head, "roof", "the tax", layer=1, head=0)
    n_q = 3  # [CLS] roof [SEP]
    assert tokens[0] == tokens[n_q] == "[CLS]" and mask.shape == (len(tokens), len(tokens))
    assert (mask[:n_q, :n_q] == 0).all() and (mask[n_q:, n_q:] == 0).all()
    assert (mask[:n_q, n_q:] == 0.0).all()  # the opened head
    _, mask_closed = attention_mask_example(head, "roof", "the tax", layer=0, head=0)
    assert (mask_closed[:n_q, n_q:] == -4.0).all() and (mask_closed[n_q:, :n_q] == -4.0).all()
    with pytest.raises(ValueError, match="bias_mode='row'"):
        build_bridge_reranker(str(tiny_bert_dir), bias_mode="row")
    with pytest.raises(ValueError, match="at least 6 tokens"):
        build_bridge_reranker(str(tiny_bert_dir), max_seq_length=5)
    # a pair longer than the position table: each segment is cut to fit it (128 positions here)
    long = build_bridge_reranker(str(tiny_bert_dir), max_seq_length=1000)
    feats = long[0].preprocess([("roof " * 300, "tax " * 300)])
    assert int(feats["position_ids"].max()) == 127 and int(feats["attention_mask"].sum()) == 256
    assert np.isfinite(long.predict([("roof " * 300, "tax " * 300)])).all()
    with pytest.raises(ValueError, match=r"\(query, passage\) pairs; input 0 is tuple"):
        head.predict([("only one",)])


def test_save_load_round_trip(tiny_bert_dir, tmp_path):
    from llama_index.core.postprocessor import SentenceTransformerRerank
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
    from sentence_transformers import CrossEncoder

    from rerank_utils.models.loading import load_cross_encoder

    ce = build_bridge_reranker(str(tiny_bert_dir), bias_mode="head", bias_start=-3.0, max_seq_length=96)
    with torch.no_grad():
        ce[0].cross_bias[0, 1] = -1.5
        ce[0].scale.fill_(11.0)
    folder = tmp_path / "bridge"
    ce.save_pretrained(str(folder))
    assert is_bridge_folder(folder) and not is_bridge_folder(tiny_bert_dir)
    expected = ce.predict(PAIRS)
    for loaded in (CrossEncoder(str(folder), trust_remote_code=True), load_cross_encoder(str(folder))):
        assert is_bridge(loaded) and loaded[0].max_seq_length == 96
        assert float(loaded[0].cross_bias[0, 1].detach()) == -1.5 and float(loaded[0].scale.detach()) == 11.0
        assert np.allclose(loaded.predict(PAIRS), expected, atol=1e-5)
    # LlamaIndex's postprocessor passes trust_remote_code=True (and max_length=512: pairs this short are unchanged)
    rerank = SentenceTransformerRerank(model=str(folder), top_n=3, device="cpu")
    query = PAIRS[0][0]
    docs = [d for _, d in PAIRS]
    nodes = [NodeWithScore(node=TextNode(id_=f"n{i}", text=d), score=0.0) for i, d in enumerate(docs)]
    got = [n.node.node_id for n in rerank.postprocess_nodes(nodes, query_bundle=QueryBundle(query))]
    ours = np.argsort(-ce.predict([(query, d) for d in docs]), kind="stable")[:3]
    assert got == [f"n{i}" for i in ours]
    # without trust_remote_code sentence-transformers refuses to import our module class, and says why
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        CrossEncoder(str(folder))


def test_load_refuses_a_mismatched_bias_file(tiny_bert_dir, tmp_path):
    ce = build_bridge_reranker(str(tiny_bert_dir), bias_mode="layer")
    ce.save_pretrained(str(tmp_path / "m"))
    cfg = tmp_path / "m" / BridgeEncoder.config_file_name
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "bias_mode": "head"}))
    with pytest.raises(ValueError, match=r"cross_bias has shape \(2, 1\), bias_mode='head' expects \(2, 2\)"):
        BridgeEncoder.load(str(tmp_path / "m"))


def test_listwise_softmax_loss_is_softmax_cross_entropy(tiny_bert_dir):
    ce = build_bridge_reranker(str(tiny_bert_dir), max_seq_length=64)
    loss = ListwiseSoftmaxLoss(ce)
    queries = ["what is the roof", "tax"]
    docs = [["the roof", "water", "law"], ["the tax law", "house"]]
    labels = [torch.tensor([1.0, 0.0, 0.0]), torch.tensor([1.0, 1.0])]
    with torch.no_grad():
        got = float(loss([queries, docs], labels))
        s0 = torch.tensor(ce.predict([(queries[0], d) for d in docs[0]]))
        s1 = torch.tensor(ce.predict([(queries[1], d) for d in docs[1]]))
    # query 0: -log softmax(positive); query 1: both relevant -> targets 1/2, 1/2
    want = (-torch.log_softmax(s0, 0)[0] + -(0.5 * torch.log_softmax(s1, 0)).sum()) / 2
    assert math.isclose(got, float(want), rel_tol=1e-4)
    with pytest.raises(ValueError, match="list 1 of this batch has no positive"):
        loss([queries, docs], [labels[0], torch.tensor([0.0, 0.0])])


def test_training_lowers_the_loss_and_moves_the_bias(tiny_bert_dir, tmp_path):
    from tests.unit.training.test_trainer import negs, toy_ds

    ds = toy_ds(16)
    rows = training_rows(ds, negs(ds, 3), "softmax")
    ce = build_bridge_reranker(str(tiny_bert_dir), bias_start=-8.0, max_seq_length=64)
    before = ce[0].cross_bias.detach().clone()
    cfg = TrainingConfig(loss="softmax", epochs=4, batch_size=4, learning_rate=1e-3, bridge_learning_rate=5e-2,
                         max_length=64, logging_steps=1, early_stopping_patience=None, warmup_ratio=0.0)
    res = fine_tune(ce, rows, tmp_path / "out", cfg, device="cpu", show_progress=False)
    losses = [h["loss"] for h in res.history if "loss" in h]
    assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:4]), losses
    # the biases trained at their own learning rate: Adam moves them ~5e-2 a step, the encoder's lr would not
    moved = (res.model[0].cross_bias.detach() - before).abs().max()
    assert float(moved) > 0.1
    facts = json.loads((tmp_path / "out" / "training.json").read_text())
    assert facts["bridge"] == bridge_summary(res.model) and "cosine" in facts["score_scale"]
    assert is_bridge_folder(tmp_path / "out")


def test_recipe_builds_a_bridge(tiny_bert_dir):
    r = Recipe("b", training=TrainingConfig(max_length=48), architecture="bridge", bridge={"bias_start": -5.0})
    m = r.build_model(str(tiny_bert_dir))
    assert is_bridge(m) and m[0].max_seq_length == 48 and float(m[0].cross_bias.detach().max()) == -5.0
    assert r.to_dict()["architecture"] == "bridge" and Recipe("s").build_model("x") == "x"
    with pytest.raises(ValueError, match="architecture='colbert'"):
        Recipe("c", architecture="colbert")
    with pytest.raises(ValueError, match="bridge options given"):
        Recipe("c", bridge={"bias_start": -4.0})


def test_onnx_export_scores_like_pytorch(tiny_bert_dir, tmp_path):
    ce = build_bridge_reranker(str(tiny_bert_dir), bias_mode="head", bias_start=-2.0, max_seq_length=64)
    path = export_onnx(ce, tmp_path / "onnx")
    assert path.is_file()
    runner = OnnxBridgeReranker(tmp_path / "onnx")
    pairs = PAIRS + [(q, d) for q, _ in PAIRS for _, d in PAIRS]
    ours, theirs = ce.predict(pairs), runner.predict(pairs, batch_size=5)
    assert np.allclose(ours, theirs, atol=1e-4)
    for q, _ in PAIRS:  # the same order per query
        idx = [i for i, p in enumerate(pairs) if p[0] == q]
        assert list(np.argsort(-ours[idx])) == list(np.argsort(-theirs[idx]))
    # int8 dynamic quantisation: a quarter of the size, scores close to fp32 on this tiny model
    from rerank_utils.models.export import quantize_onnx

    q = quantize_onnx(tmp_path / "onnx")
    assert q.name == "model_qint8.onnx" and q.stat().st_size < path.stat().st_size
    quantized = OnnxBridgeReranker(tmp_path / "onnx", file_name=q.name).predict(pairs)
    assert quantized.shape == ours.shape and np.corrcoef(quantized, ours)[0, 1] > 0.9
    with pytest.raises(TypeError, match="is neither a bridge nor a one-label cross-encoder"):
        export_onnx(object(), tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="model.onnx not found"):
        OnnxBridgeReranker(tmp_path)
    with pytest.raises(ValueError, match="runtime='tensorrt'"):
        OnnxBridgeReranker(tmp_path / "onnx", runtime="tensorrt")
    # OpenVINO reads the same export, fp32 and int8, and orders like PyTorch
    dev_extra("openvino")
    on_ov = OnnxBridgeReranker(tmp_path / "onnx", runtime="openvino").predict(pairs, batch_size=7)
    assert np.allclose(ours, on_ov, atol=1e-3)  # scores near 20 (scale x cosine); OpenVINO differs in the 5th digit
    on_ov_int8 = OnnxBridgeReranker(tmp_path / "onnx", file_name=q.name, runtime="openvino").predict(pairs)
    assert np.allclose(on_ov_int8, quantized, atol=0.05)


def test_training_resumes_from_a_bridge_checkpoint(tiny_bert_dir, tmp_path):
    """1 epoch, then resume to 2 == 2 epochs straight: the biases, the scale and their optimizer state come back."""
    from tests.unit.training.test_trainer import negs, toy_ds

    ds = toy_ds(8)
    rows = training_rows(ds, negs(ds, 3), "softmax")

    def cfg(epochs):
        return TrainingConfig(loss="softmax", epochs=epochs, batch_size=4, learning_rate=1e-3, max_length=64,
                              early_stopping_patience=None, logging_steps=1, warmup_ratio=0.0, lr_scheduler_type="constant")

    def fresh():
        return build_bridge_reranker(str(tiny_bert_dir), max_seq_length=64)

    straight = fine_tune(fresh(), rows, tmp_path / "straight", cfg(2), device="cpu", show_progress=False)
    fine_tune(fresh(), rows, tmp_path / "resumed", cfg(1), device="cpu", show_progress=False, keep_checkpoints=True)
    resumed = fine_tune(fresh(), rows, tmp_path / "resumed", cfg(2), device="cpu", show_progress=False, resume_from_checkpoint=True)
    steps = [h["step"] for h in resumed.history if "loss" in h]
    assert steps == sorted(set(steps)) == [1, 2, 3, 4]  # epoch 1 was not trained again
    a, b = straight.model[0], resumed.model[0]
    assert not torch.equal(a.cross_bias.detach(), torch.full_like(a.cross_bias, -8.0))
    assert torch.allclose(a.cross_bias.detach(), b.cross_bias.detach(), atol=1e-4)
    assert torch.allclose(a.scale.detach(), b.scale.detach(), atol=1e-4)


def test_the_best_validation_checkpoint_is_the_model_kept(tiny_bert_dir, tmp_path):
    from rerank_utils.models.loading import load_cross_encoder
    from rerank_utils.training.samples import reranking_samples
    from tests.unit.training.test_trainer import negs, toy_ds

    ds = toy_ds(12)
    rows = training_rows(ds, negs(ds, 3), "softmax")
    val = reranking_samples(ds, {q: list(ds.corpus) for q in ds.queries}, top_k=6)
    cfg = TrainingConfig(loss="softmax", epochs=3, batch_size=4, learning_rate=3e-3, max_length=64, early_stopping_patience=None)
    res = fine_tune(build_bridge_reranker(str(tiny_bert_dir), max_seq_length=64), rows, tmp_path / "out", cfg,
                    val_samples=val, device="cpu", show_progress=False, keep_checkpoints=True)
    vals = [h["eval_val_ndcg@10"] for h in res.history if "eval_val_ndcg@10" in h]
    assert len(vals) == 3 and res.best_metric == max(vals)
    best = load_cross_encoder(res.best_checkpoint)
    saved = load_cross_encoder(str(tmp_path / "out"))
    assert np.allclose(best.predict(PAIRS), res.model.predict(PAIRS), atol=1e-5)
    assert np.allclose(saved.predict(PAIRS), res.model.predict(PAIRS), atol=1e-5)


def test_the_packages_postprocessor_agrees_with_llamaindex(tiny_bert_dir, tmp_path):
    from llama_index.core.postprocessor import SentenceTransformerRerank
    from llama_index.core.schema import (
        MetadataMode,
        NodeWithScore,
        QueryBundle,
        TextNode,
    )

    from rerank_utils.integrations.llamaindex import cross_encoder_reranker

    ce = build_bridge_reranker(str(tiny_bert_dir), bias_mode="head", bias_start=-1.0, max_seq_length=96)
    ce.save_pretrained(str(tmp_path / "bridge"))
    export_onnx(ce, tmp_path / "onnx")
    query = PAIRS[1][0]
    docs = [d for _, d in PAIRS] + ["the roof water law", "a house tax"]

    def nodes():
        return [NodeWithScore(node=TextNode(id_=f"n{i}", text=d), score=1.0 - i / 10) for i, d in enumerate(docs)]

    bundle = QueryBundle(query)
    theirs = SentenceTransformerRerank(model=str(tmp_path / "bridge"), top_n=4, device="cpu").postprocess_nodes(nodes(), query_bundle=bundle)
    for post in (
        cross_encoder_reranker(str(tmp_path / "bridge"), top_n=4, batch_size=2),
        cross_encoder_reranker(str(tmp_path / "onnx"), top_n=4, backend="onnx"),
        cross_encoder_reranker(str(tmp_path / "onnx"), top_n=4, backend="openvino"),
        cross_encoder_reranker(ce, top_n=4),
    ):
        ours = post.postprocess_nodes(nodes(), query_bundle=bundle)
        assert [n.node.node_id for n in ours] == [n.node.node_id for n in theirs]
        assert np.allclose([n.score for n in ours], [n.score for n in theirs], atol=1e-4)
        # the first stage's score is kept beside the new one, out of the text the model and the LLM read
        kept = {n.node.node_id: n.node.metadata["retrieval_score"] for n in ours}
        assert kept == {nid: 1.0 - int(nid[1:]) / 10 for nid in kept}
        assert "retrieval_score" not in ours[0].node.get_content(metadata_mode=MetadataMode.EMBED)
    with pytest.raises(ValueError, match="backend='tensorrt'"):
        cross_encoder_reranker(ce, backend="tensorrt")
    with pytest.raises(FileNotFoundError, match="model.onnx not found"):
        cross_encoder_reranker(str(tmp_path / "bridge"), backend="onnx")
    # the one loader the postprocessor and the service share: the same scores from every backend
    pairs = [(query, d) for d in docs]
    reference = load_reranker(tmp_path / "bridge").predict(pairs)
    for backend in ("onnx", "openvino"):
        scorer = load_reranker(tmp_path / "onnx", backend=backend)
        assert isinstance(scorer, OnnxBridgeReranker) and scorer.runtime == ("onnxruntime" if backend == "onnx" else "openvino")
        assert np.allclose(scorer.predict(pairs), reference, atol=1e-4)
    with pytest.raises(ValueError, match="backend='tensorrt': choose one of torch, onnx, openvino"):
        load_reranker(tmp_path / "onnx", backend="tensorrt")
    with pytest.raises(FileNotFoundError, match="model_qint8.onnx not found"):
        load_reranker(tmp_path / "onnx", backend="onnx", onnx_file="model_qint8.onnx")
    with pytest.raises(ValueError, match="needs the query"):
        cross_encoder_reranker(ce).postprocess_nodes(nodes())


def test_load_or_train_reuses_only_the_same_recipe(tiny_bert_dir, bi_encoder, tmp_path):
    from dataclasses import replace

    from rerank_utils.data.records import RetrievalDataset, data_fingerprint
    from rerank_utils.training.mining import MiningConfig
    from rerank_utils.training.recipes import FirstStages, load_or_train_recipe
    from tests.unit.training.test_trainer import toy_ds

    train, val = toy_ds(8, seed=1), toy_ds(4, seed=2)
    stages = FirstStages(train.corpus, bi_encoder)
    recipe = Recipe("b", MiningConfig("random", num_negatives=3), TrainingConfig(loss="softmax", epochs=1, batch_size=4, max_length=64),
                    architecture="bridge", bridge={"bias_start": -6.0})
    base = str(tiny_bert_dir)
    m1, facts1, loaded1 = load_or_train_recipe(recipe, train, val, stages, tmp_path / "m", base, top_k=5, device="cpu")
    m2, facts2, loaded2 = load_or_train_recipe(replace(recipe, name="renamed"), train, val, stages, tmp_path / "m", base, top_k=5, device="cpu")
    assert (loaded1, loaded2) == (False, True) and facts1 == facts2
    assert np.allclose(m1.predict(PAIRS), m2.predict(PAIRS), atol=1e-5) and "val_ndcg@10" in facts2["curves"]
    other = replace(recipe, bridge={"bias_start": -4.0})
    _, facts3, loaded3 = load_or_train_recipe(other, train, val, stages, tmp_path / "m", base, top_k=5, device="cpu")
    assert loaded3 is False and facts3["recipe"]["bridge"] == {"bias_start": -4.0}
    # issue 15: the reuse key is the data itself, never a count of queries: other training queries of the same
    # number, or other validation queries, train again; the same data is reused again
    assert facts3["data_fingerprint"] == data_fingerprint(train, val)
    asked = RetrievalDataset(train.corpus, {q: text + " please" for q, text in train.queries.items()}, train.qrels)  # as many queries
    _, facts4, loaded4 = load_or_train_recipe(other, asked, val, stages, tmp_path / "m", base, top_k=5, device="cpu")
    assert loaded4 is False and facts4["data_fingerprint"] == data_fingerprint(asked, val) != facts3["data_fingerprint"]
    _, _, loaded5 = load_or_train_recipe(other, asked, toy_ds(4, seed=9), stages, tmp_path / "m", base, top_k=5, device="cpu")
    _, _, loaded6 = load_or_train_recipe(other, asked, toy_ds(4, seed=9), stages, tmp_path / "m", base, top_k=5, device="cpu")
    assert (loaded5, loaded6) == (False, True)
    # a model saved before fingerprints were recorded is not trusted: trained again
    facts_path = tmp_path / "m" / "training.json"
    old_facts = json.loads(facts_path.read_text())
    old_facts.pop("data_fingerprint")
    facts_path.write_text(json.dumps(old_facts))
    assert load_or_train_recipe(other, asked, toy_ds(4, seed=9), stages, tmp_path / "m", base, top_k=5, device="cpu")[2] is False


def test_learning_curve_trains_once_per_size(tiny_bert_dir, bi_encoder, tmp_path):
    from rerank_utils.training.experiments import learning_curve
    from rerank_utils.training.mining import MiningConfig
    from rerank_utils.training.recipes import FirstStages
    from tests.unit.training.test_trainer import toy_ds

    train, val, test = toy_ds(10, seed=1), toy_ds(4, seed=2), toy_ds(6, seed=3)
    stages = FirstStages(train.corpus, bi_encoder)
    recipe = Recipe("lc", MiningConfig("random", num_negatives=3), TrainingConfig(loss="softmax", epochs=1, batch_size=4, max_length=64),
                    architecture="bridge")
    # a further first stage for one size: the reranker trained on those 8 queries also reranks its top-5
    extra = {8: {"FT bi": DenseRetriever(train.corpus, bi_encoder)}}

    class Counted:
        """What ``evaluate_as`` turns each trained model into: the test evaluation must score through it."""

        def __init__(self, model):
            self.model, self.pairs = model, 0
            scorers.append(self)

        def predict(self, pairs, batch_size=32, **kwargs):
            self.pairs += len(pairs)
            return self.model.predict(pairs, batch_size=batch_size, **kwargs)

    scorers: list = []
    rows = learning_curve(recipe, [4, 8, 50], train, val, test, stages, tmp_path, base_model=str(tiny_bert_dir), top_k=5, device="cpu",
                          extra_first_stages=extra, evaluate_as=Counted)
    assert len(scorers) == 3 and all(s.pairs > 0 for s in scorers)  # each size's model, evaluated through its scorer
    assert [r["train_queries"] for r in rows] == [4, 8, 10]  # 50 is capped at the 10 training queries
    assert [r["labelled_pairs"] for r in rows] == [16, 32, 40]
    assert all(0 <= r["test NDCG@10 bi+CE"] <= 1 and 0 <= r["test NDCG@10 BM25+CE"] <= 1 and r["train_s"] > 0 for r in rows)
    # the same bi-encoder as the stages' dense first stage: reranking it gives the bi+CE figure exactly
    assert rows[1]["test NDCG@10 FT bi+CE"] == pytest.approx(rows[1]["test NDCG@10 bi+CE"])
    assert "test NDCG@10 FT bi+CE" not in rows[0] and "test NDCG@10 FT bi+CE" not in rows[2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["10q", "4q", "8q"]


def test_recipe_round_trips_through_a_dict():
    from rerank_utils.training.mining import MiningConfig

    r = Recipe("b", MiningConfig("mixed", num_negatives=7, hard_fraction=0.57), TrainingConfig(loss="softmax", learning_rate=5e-5),
               train_queries=50, architecture="bridge", bridge={"bias_start": -6.0})
    back = Recipe.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back == r and Recipe.from_dict(Recipe("s").to_dict()) == Recipe("s")
    with pytest.raises(ValueError, match=r"unknown keys \['optimizer'\]"):
        Recipe.from_dict({**r.to_dict(), "optimizer": "adam"})


def test_the_bridges_refusals_name_the_problem(tiny_bert_dir, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    from rerank_utils.models.export import quantize_onnx

    tok = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    bert = AutoModel.from_pretrained(str(tiny_bert_dir))
    with pytest.raises(ValueError, match="pooling='max': choose one of mean, cls"):
        BridgeEncoder(bert, tok, pooling="max")
    with pytest.raises(ValueError, match="needs a BERT-family encoder.*Linear has not"):
        BridgeEncoder(torch.nn.Linear(2, 2), tok)
    with pytest.raises(ValueError, match="no pairs to encode"):
        encode_pairs(tok, [], 32)
    ce = build_bridge_reranker(str(tiny_bert_dir))
    ce.save_pretrained(str(tmp_path / "m"))
    with pytest.raises(ValueError, match="backend='onnx'.*export_onnx"):
        BridgeEncoder.load(str(tmp_path / "m"), backend="onnx")
    with pytest.raises(FileNotFoundError, match="no bridge_config.json"):
        BridgeEncoder.load(str(tiny_bert_dir))
    with pytest.raises(FileNotFoundError, match="model.onnx not found"):
        quantize_onnx(tmp_path)
    with pytest.raises(TypeError, match="not a bridge reranker"):
        learned_biases(object())


def test_training_refuses_bad_bridge_settings_and_labels(tiny_bert_dir):
    with pytest.raises(ValueError, match="bridge_learning_rate=0"):
        TrainingConfig(bridge_learning_rate=0).validate()
    loss = ListwiseSoftmaxLoss(build_bridge_reranker(str(tiny_bert_dir), max_seq_length=32))
    with pytest.raises(ValueError, match="list 0 has a negative label"):
        loss([["q"], [["a", "b"]]], [torch.tensor([1.0, -1.0])])


def test_compare_backends_reports_speed_and_agreement(tiny_bert_dir, tmp_path):
    from rerank_utils.data.records import RetrievalDataset
    from rerank_utils.evaluation.latency import compare_backends

    ce = build_bridge_reranker(str(tiny_bert_dir), bias_start=-2.0, max_seq_length=64)
    export_onnx(ce, tmp_path / "onnx")
    ds = RetrievalDataset({f"d{i}": d for i, (_, d) in enumerate(PAIRS)}, {f"q{i}": q for i, (q, _) in enumerate(PAIRS)},
                          {f"q{i}": {f"d{i}": 1} for i in range(len(PAIRS))})
    first = {q: {d: 1.0 for d in ds.corpus} for q in ds.queries}
    rows = compare_backends({"PyTorch": ce, "ONNX": OnnxBridgeReranker(tmp_path / "onnx")}, ds, first, top_k=4)
    assert [r["backend"] for r in rows] == ["PyTorch", "ONNX"]
    assert rows[0]["same_order"] == 1.0 and rows[0]["max_abs_diff"] == 0.0
    assert rows[1]["same_order"] == 1.0 and rows[1]["max_abs_diff"] < 1e-3 and all(r["pairs_per_s"] > 0 for r in rows)
    assert "ndcg@10" not in rows[0] and "p50_ms" not in rows[0]
    # with qrels and latency queries: NDCG@10 per backend, its change from the reference, p50 <= p95
    from rerank_utils.evaluation.metrics import evaluate_run
    from rerank_utils.retrieval.reranking import rerank_run

    rows = compare_backends({"PyTorch": ce, "ONNX": OnnxBridgeReranker(tmp_path / "onnx")}, ds, first, top_k=4, qrels=ds.qrels, latency_queries=3)
    expected = evaluate_run(rerank_run(ce, ds, first, top_k=4), ds.qrels, ["ndcg@10"]).aggregate["ndcg@10"]
    assert rows[0]["ndcg@10"] == pytest.approx(expected) and rows[0]["ndcg@10_change"] == 0.0
    assert rows[1]["ndcg@10_change"] == pytest.approx(rows[1]["ndcg@10"] - expected)
    assert all(0 < r["p50_ms"] <= r["p95_ms"] for r in rows)
    with pytest.raises(ValueError, match="no models given"):
        compare_backends({}, ds, first)


def test_labels_learning_curve_trains_both_models_on_the_same_queries(tiny_bert_dir, bi_encoder, tmp_path):
    from rerank_utils.data.records import data_fingerprint
    from rerank_utils.training.experiments import labels_learning_curve
    from rerank_utils.training.mining import MiningConfig
    from rerank_utils.training.recipes import FirstStages
    from rerank_utils.training.retriever import RetrieverRecipe
    from tests.unit.training.test_trainer import toy_ds

    train, val, test = toy_ds(10, seed=1), toy_ds(4, seed=2), toy_ds(6, seed=3)
    recipe = Recipe("lc", MiningConfig("random", num_negatives=3, seed=5), TrainingConfig(loss="softmax", epochs=1, batch_size=4, max_length=64),
                    architecture="bridge")
    retriever_recipe = RetrieverRecipe(MiningConfig("random", num_negatives=1), epochs=1, batch_size=4, max_length=32)
    rows = labels_learning_curve(recipe, retriever_recipe, [4], train, val, test, FirstStages(train.corpus, bi_encoder), tmp_path,
                                 base_model=str(tiny_bert_dir), retriever_base_model=str(tiny_bert_dir), top_k=5, device="cpu")
    (row,) = rows
    assert row["train_queries"] == 4 and row["retriever_train_s"] > 0
    assert all(0 <= row[k] <= 1 for k in ("test NDCG@10 bi+CE", "test NDCG@10 FT bi", "test NDCG@10 FT bi+CE"))
    # the retriever was trained on the reranker's own sample of 4 queries (the recipe's mining seed)
    facts = json.loads((tmp_path / "retriever" / "4q" / "training.json").read_text())
    assert facts["data_fingerprint"] == data_fingerprint(train.sample(4, seed=5), val)
    assert (tmp_path / "reranker" / "4q").is_dir()
