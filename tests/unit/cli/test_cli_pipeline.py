"""The pipeline CLI: configs that equal the profiles, validation that names file, key, value and what is
allowed, complete --help, and a real prepare -> mine -> finetune -> evaluate -> export run on a tiny BERT."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rerank_utils.cli.config_files import (
    README_BEGIN,
    README_END,
    config_yaml,
    load_config,
    reference_markdown,
)
from rerank_utils.cli.errors import ConfigError
from rerank_utils.cli.main import _build_parser, main
from rerank_utils.cli.schema import (
    NAMED_SOURCES,
    NB01,
    NB03,
    NOTEBOOK_ONLY,
    SCHEMA,
    get,
    profile_config,
)
from rerank_utils.cli.steps import recipe_for
from rerank_utils.data import sources as sources_module
from rerank_utils.models import bridge as bridge_module
from rerank_utils.models import fast as fast_module
from rerank_utils.models.fast import fast_path_available
from rerank_utils.paths import repo_root
from rerank_utils.training import arguments as training_arguments
from rerank_utils.training import mining as mining_module
from rerank_utils.training.recipe_schema import (
    BIAS_MODES,
    HARD_SOURCES,
    LOSSES,
    NEGATIVE_STRATEGIES,
)
from rerank_utils.tutorial.profiles import PROFILES

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


# --------------------------------------------------------------------------------- configs = PROFILES
@pytest.mark.parametrize("profile", list(PROFILES))
def test_config_files_equal_the_profiles(profile):
    path = CONFIGS / f"{profile}.yaml"
    regenerate = "regenerate configs/ with: python -m rerank_utils.cli.config_files"
    assert path.is_file(), regenerate
    assert yaml.safe_load(path.read_text(encoding="utf-8")) == profile_config(profile), regenerate
    assert path.read_text(encoding="utf-8") == config_yaml(profile), regenerate  # the comments too
    assert load_config(path).data == profile_config(profile)  # valid as written, nothing changed by loading


def test_profile_config_mirrors_the_notebook_parameters():
    """Every key's value is its notebook parameter's, and every parameter of notebooks 01 and 03 has a key
    (or is listed in NOTEBOOK_ONLY with the reason), so a new recipe knob cannot be forgotten."""
    for name, prof in PROFILES.items():
        cfg = profile_config(name)
        for key in SCHEMA:
            kind, *param = key.source
            value = get(cfg, key.path)
            if kind in ("profile", "name"):
                assert value == name
            elif kind == "common":
                assert value == prof.common[param[0]], (name, key.path)
            else:
                assert value == prof.parameters_for(kind)[param[0]], (name, key.path)
    mirrored = {(k.source[0], k.source[1]) for k in SCHEMA if len(k.source) == 2 and k.source[0] != "common"}
    for nb in (NB01, NB03):
        for param in PROFILES["cpu"].notebooks[nb]:
            assert (nb, param) in mirrored or param in NOTEBOOK_ONLY.get(nb, {}), f"{nb}.{param} has no config key"


def test_allowed_values_are_the_packages():
    assert LOSSES == training_arguments.LOSSES
    assert NEGATIVE_STRATEGIES == mining_module.STRATEGIES and HARD_SOURCES == mining_module.HARD_SOURCES
    assert BIAS_MODES == bridge_module.BIAS_MODES
    import inspect

    source = inspect.getsource(sources_module.build_dataset)
    for name in NAMED_SOURCES:
        assert f'"{name}"' in source, name


def test_readme_key_table_is_generated_from_the_schema():
    text = (CONFIGS / "README.md").read_text(encoding="utf-8")
    start = text.index(README_BEGIN) + len(README_BEGIN)
    assert text[start: text.index(README_END)] == "\n" + reference_markdown(), "run: python -m rerank_utils.cli.config_files"
    for key in SCHEMA:
        assert f"| `{key.path}` |" in text


def test_the_team_example_is_valid():
    cfg = load_config(CONFIGS / "team-example.yaml")
    assert cfg.profile == "smoke" and cfg.name == "team-example" and cfg["data_source"] == "faq-sv"
    assert cfg["finetune.bridge.loss"] == PROFILES["smoke"].parameters_for(NB03)["bridge_loss"]  # from the profile


# ---------------------------------------------------------------------------------------- validation
def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_short_team_config_takes_the_rest_from_its_profile(tmp_path):
    (tmp_path / "data").mkdir()
    write(tmp_path / "data" / "my.jsonl", '{"query": "q", "passage": "p", "score": 1}\n')
    path = write(tmp_path / "team.yaml", "profile: smoke\nname: team\ndata_source: data/my.jsonl\n"
                                         "finetune:\n  standard:\n    learning_rate: 1e-4   # YAML 1.1 reads this as a string\n")
    cfg = load_config(path, overrides=["finetune.bridge.epochs=5", "max_queries=null"])
    expected = profile_config("smoke")
    expected.update(name="team", data_source=str(tmp_path / "data" / "my.jsonl"), max_queries=None)  # found from the file's folder
    expected["finetune"]["standard"]["learning_rate"] = 1e-4
    expected["finetune"]["bridge"]["epochs"] = 5
    assert cfg.data == expected and isinstance(cfg["finetune.standard.learning_rate"], float)
    (tmp_path / "my-model").mkdir()
    write(tmp_path / "my-model" / "config.json", "{}")
    path = write(tmp_path / "models.yaml", "profile: zh\nreranker_model: my-model\n")  # a folder beside the file
    cfg = load_config(path)
    assert cfg["reranker_model"] == str(tmp_path / "my-model") and cfg["embedding_model"] == "BAAI/bge-small-zh-v1.5"  # a hub id
    assert load_config(write(tmp_path / "empty.yaml", "")).data == profile_config("cpu")  # no profile: cpu


def test_bad_values_name_the_file_the_key_the_value_and_what_is_allowed(tmp_path):
    path = write(tmp_path / "bad.yaml", """\
profile: cpu
learning_rat: 0.001
finetune:
  architecture: cross
  standrd: {epochs: 1}
  bridge:
    loss: hinge
    epochs: three
    hard_fraction: 1.5
    bias_mode: layers
prepare:
  split_fractions: {train: 0.8, test: 0.2}
device: gpu
data_source: nowhere/my.jsonl
embedding_model: ./no-such-model
evaluate: 3
export: {quantize: maybe}
""")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: 13 problems:")
    for expected in (
        "learning_rat: unknown key; did you mean finetune.standard.learning_rate or finetune.bridge.learning_rate",
        "finetune.standrd: unknown key; did you mean finetune.standard? (the keys of finetune: architecture, top_k, standard, bridge)",
        "finetune.architecture: 'cross' is not allowed; choose one of standard, bridge",
        "finetune.bridge.loss: 'hinge' is not allowed; choose one of bce, mnrl, lambda, listnet, softmax",
        "finetune.bridge.epochs: 'three' is not an integer; expected an integer >= 1",
        "finetune.bridge.hard_fraction: 1.5 is out of range; expected a number >= 0 and <= 1",
        "finetune.bridge.bias_mode: 'layers' is not allowed; choose one of shared, layer, head (did you mean 'layer'?)",
        "prepare.split_fractions: {'train': 0.8, 'test': 0.2}: expected a mapping {train: x, val: y, test: z}",
        "device: 'gpu' is not a device; expected cpu, cuda, cuda:N or mps",
        "data_source: 'nowhere/my.jsonl' is neither a named source nor an existing path; expected faq-en, faq-sv, faq, qasper, or the path",
        "embedding_model: model folder './no-such-model' does not exist",
        "evaluate: expected a section (a mapping of top_k, fast_inference), found 3",
        "export.quantize: 'maybe' is not true or false",
    ):
        assert expected in msg, expected
    # the command line: exit status 2 and the same message
    assert main(["check-config", "--config", str(path)]) == 2


def test_broken_files_and_bad_overrides(tmp_path, capsys):
    cases = {
        "dup.yaml": ("profile: smoke\nseed: 1\nseed: 2\n", "key 'seed' is given twice (lines 2 and 3)"),
        "syntax.yaml": ("profile: cpu\nfinetune:\n  bridge:\n    epochs: 1\n   loss: x\n", "not valid YAML"),
        "list.yaml": ("- profile: cpu\n", "expected a mapping of keys such as `profile: cpu`, found list"),
        "prof.yaml": ("profile: laptop\n", "profile: 'laptop' is not allowed; choose one of cpu, smoke, gpu, zh"),
    }
    for name, (text, expected) in cases.items():
        path = write(tmp_path / name, text)
        with pytest.raises(ConfigError, match="^" + str(path).replace("\\", "\\\\")) as err:
            load_config(path)
        assert expected in str(err.value), name
    with pytest.raises(ConfigError, match="config file .*missing.yaml not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"--set epochs: unknown key; did you mean finetune.standard.epochs or finetune.bridge.epochs\?"):
        load_config(profile="cpu", overrides=["epochs=1"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(profile="cpu", overrides=["finetune.bridge.epochs"])
    with pytest.raises(ConfigError, match="profile cpu: --set finetune.top_k: 0 is out of range; expected an integer >= 1"):
        load_config(profile="cpu", overrides=["finetune.top_k=0"])
    assert main(["check-config", "--profile", "cpu", "--set", "finetune.bridge.los=x"]) == 2
    assert "did you mean finetune.bridge.loss?" in capsys.readouterr().err


def test_init_config_writes_a_config_that_loads(tmp_path, capsys):
    out = tmp_path / "gpu.yaml"
    assert main(["init-config", "--profile", "gpu", "--output", str(out)]) == 0
    assert load_config(out).data == profile_config("gpu")
    assert main(["init-config", "--profile", "gpu", "--output", str(out)]) == 1  # no silent overwrite
    assert "--force" in capsys.readouterr().err
    assert main(["config", "--profile", "smoke", "--minimal", "--output", str(out), "--force"]) == 0
    short = yaml.safe_load(out.read_text())
    assert set(short) == {"profile", "name", "data_source", "embedding_model", "reranker_model"} and short["name"] == "my-reranker"
    assert load_config(out).data == {**profile_config("smoke"), "name": "my-reranker"}
    capsys.readouterr()
    assert main(["init-config", "--profile", "zh"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == profile_config("zh")
    assert main(["check-config", "--profile", "smoke", "--set", "seed=7"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["seed"] == 7


# ---------------------------------------------------------------------------------------------- help
OPTIONS = {
    "init-config": ["--profile", "--output", "--minimal", "--force"],
    "check-config": ["--config", "--profile", "--set"],
    "prepare": ["--config", "--profile", "--set", "--rebuild"],
    "mine": ["--config", "--profile", "--set", "--architecture", "--output"],
    "finetune": ["--config", "--profile", "--set", "--architecture", "--retrain", "--no-publish", "--output", "--quiet"],
    "finetune-retriever": ["--config", "--profile", "--set", "--epochs", "--learning-rate", "--batch-size", "--negatives",
                           "--max-length", "--retrain", "--output", "--quiet"],
    "evaluate": ["--config", "--profile", "--set", "--model", "--retriever", "--split", "--output"],
    "export": ["--config", "--profile", "--set", "--model", "--output", "--quantize", "--no-quantize"],
    "run-notebooks": ["--profile", "--only", "--from", "--to", "--cell-timeout", "--log-output", "--list", "--notebooks-dir", "--quiet"],
    "profiles": [],
    "serve": ["model_dir", "--config", "--host", "--port", "--backend", "--onnx-file", "--precision", "--device", "--api-key", "--max-batch",
              "--max-wait-ms", "--cache-size", "--redis-url", "--max-documents", "--max-body-bytes",
              "--deadline-s", "--max-queue-pairs", "--queue-seconds"],
}


@pytest.mark.parametrize("command", list(OPTIONS))
def test_help_of_every_command_lists_its_options_and_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: rerank-utils {command}") and "examples:\n  rerank-utils " in text
    for option in OPTIONS[command]:
        assert option in text, option
    sub = next(a for a in _build_parser()._actions if a.dest == "command").choices[command]
    documented = {s for a in sub._actions for s in (a.option_strings or [a.dest])} - {"-h", "--help", "help"}
    assert documented == set(OPTIONS[command]), "update OPTIONS (and the README) when an option changes"
    assert all(a.help for a in sub._actions), "every option has a help text"


def test_python_m_rerank_utils_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "rerank_utils", "--help"], capture_output=True, text=True, timeout=120, cwd=repo_root())
    assert out.returncode == 0, out.stderr
    for command in OPTIONS:
        assert f"    {command}" in out.stdout
    assert "rerank-utils prepare  --config team.yaml" in out.stdout and "Exit status" in out.stdout


# ------------------------------------------------------------------------------------- end to end
WORDS = "the a of to and is what how building permit law contract cost tax house roof water deduction".split()


@pytest.fixture
def tiny_config(tmp_path, tiny_bert_dir):
    """A triples file (36 queries, one positive and one judged negative each) and a config over it that
    trains the tiny random BERT for one short epoch."""
    rng = random.Random(0)
    texts: set[str] = set()

    def text(n: int) -> str:
        while True:
            t = " ".join(rng.sample(WORDS, n)) + " " + "".join(rng.choice("abcdefghij") for _ in range(4))
            if t not in texts:
                texts.add(t)
                return t

    lines = []
    for _ in range(36):
        q = text(3)
        lines.append(json.dumps({"query": q, "passage": text(7), "score": 1}))
        lines.append(json.dumps({"query": q, "passage": text(7), "score": 0}))
    write(tmp_path / "triples.jsonl", "\n".join(lines) + "\n")
    recipe = "{epochs: 1, batch_size: 4, max_length: 32, num_negatives: 3}"
    return write(tmp_path / "tiny.yaml", f"""\
profile: smoke
name: tiny
data_source: triples.jsonl
embedding_model: {tiny_bert_dir}
reranker_model: {tiny_bert_dir}
max_queries: null
finetune:
  architecture: bridge
  top_k: 5
  standard: {recipe}
  bridge: {recipe}
evaluate:
  top_k: 5
""")


def test_prepare_mine_finetune_evaluate_export(tiny_config, _artifacts_in_tmp, capsys, tmp_path):
    from rerank_utils.models.published import published_reranker

    cfg = ["--config", str(tiny_config)]
    art = _artifacts_in_tmp / "tiny"

    assert main(["prepare", *cfg]) == 0
    out = capsys.readouterr().out
    assert "(built): train 25, val 4, test 7 queries; 72 documents" in out and "leak-free" in out and "yes" in out
    assert (art / "data" / "splits" / "split_meta.json").is_file()
    assert main(["prepare", *cfg]) == 0 and "(reused)" in capsys.readouterr().out

    assert main(["mine", *cfg]) == 0
    assert "mining 3 mixed negatives for each of 25 training queries ..." in capsys.readouterr().out  # said before it runs
    triples = [json.loads(x) for x in (art / "mined" / "bridge.jsonl").read_text().splitlines()]
    assert sum(t["score"] == 0 for t in triples) == 25 * 3 and sum(t["score"] == 1 for t in triples) == 25
    report = json.loads((art / "mined" / "bridge_report.json").read_text())
    assert report["negatives"] == 75 and report["mining"]["strategy"] == "mixed"

    assert main(["finetune", *cfg]) == 0
    out = capsys.readouterr().out
    assert "trained in" in out and "best validation NDCG@10" in out and "published as" in out
    # issue 15: a user sees the training's progress, one line per epoch (step of how many, time left)
    steps = [line for line in out.splitlines() if line.startswith("  training") and "step " in line]
    assert steps and "epoch 1 done: step" in out and all(" s elapsed, " in s for s in steps)
    facts = json.loads((art / "models" / "bridge" / "training.json").read_text())
    assert facts["recipe"] == recipe_for(load_config(tiny_config)).to_dict()
    # issue 16: a Platt calibration fitted on validation is saved with the model (and recorded)
    calibration = json.loads((art / "models" / "bridge" / "calibration.json").read_text())
    assert calibration["fitted_on"] == "validation: 4 queries x top-5" and facts["calibration"]["a"] == calibration["a"]
    assert published_reranker("tiny")["architecture"] == "bridge"
    assert main(["finetune", *cfg]) == 0 and "reused the model saved with this recipe" in capsys.readouterr().out
    assert main(["finetune", *cfg, "--retrain", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "trained in" in out and "step " not in out  # --quiet: the results, no progress lines

    assert main(["evaluate", *cfg]) == 0
    out = capsys.readouterr().out
    assert "reranking: 1 model(s) x 2 first stage(s) x 7 queries x top-" in out
    assert "7 test queries" in out and "95 % intervals" in out
    # issue 15: a line per reranked first stage and per model done; corpus embeddings cached for the profile,
    # for this command only (main() puts the environment back)
    assert "  reranker: BM25's top-" in out and "  reranker: bi-encoder's top-" in out and "1/1 models evaluated in " in out
    assert list((art / "cache" / "embeddings").glob("*.npy")) and "RERANK_EMBEDDING_CACHE" not in os.environ
    assert list((art / "cache" / "scores").glob("*.json")) and "RERANK_SCORE_CACHE" not in os.environ  # the reranker's scores too
    result = json.loads((art / "pipeline" / "evaluate_test.json").read_text())
    assert list(result["table"]) == ["BM25", "bi-encoder", "BM25 + reranker", "bi-encoder + reranker"]
    comparison = result["comparisons"]["bi-encoder + reranker vs bi-encoder"]
    assert comparison["n_queries"] == 7 and comparison["low"] <= comparison["diff"] <= comparison["high"]
    # issue 15: evaluate reranks as notebook 04 does (evaluate.fast_inference, true in every profile): OpenVINO bf16
    # where this CPU computes bf16 natively, PyTorch elsewhere, and says which; false: PyTorch fp32, notebook 03's numbers
    fast = "OpenVINO bf16" if fast_path_available() else "PyTorch fp32 on cpu"
    assert result["runs_on"] == {"reranker": fast} and f"pairs, on {fast} ..." in out
    with pytest.MonkeyPatch.context() as mp:  # the OpenVINO path taken whatever this CPU is (in fp32 without native bf16)
        mp.setattr(fast_module, "cpu_has_bf16", lambda: True)
        assert main(["evaluate", *cfg, "--output", str(tmp_path / "openvino.json")]) == 0
    fast_module._LOADED.clear()  # no later test gets this forced export back
    openvino = json.loads((tmp_path / "openvino.json").read_text())
    assert openvino["runs_on"]["reranker"] in ("OpenVINO bf16", "OpenVINO f32") and "pairs, on OpenVINO " in capsys.readouterr().out
    assert main(["evaluate", *cfg, "--set", "evaluate.fast_inference=false", "--output", str(tmp_path / "pytorch.json")]) == 0
    assert "pairs, on PyTorch fp32 on cpu ..." in capsys.readouterr().out
    exact = json.loads((tmp_path / "pytorch.json").read_text())
    assert exact["runs_on"] == {"reranker": "PyTorch fp32 on cpu"} and set(exact["table"]) == set(openvino["table"])
    assert {k: exact["table"][k] for k in ("BM25", "bi-encoder")} == {k: openvino["table"][k] for k in ("BM25", "bi-encoder")}
    if openvino["runs_on"]["reranker"] == "OpenVINO f32":  # fp32 export: the same scores to ~1e-6, so the same rankings
        assert openvino["table"]["bi-encoder + reranker"] == pytest.approx(exact["table"]["bi-encoder + reranker"], abs=1e-9)

    assert main(["export", *cfg]) == 0
    out = capsys.readouterr().out
    onnx = art / "models" / "reranker_onnx"
    assert (onnx / "model.onnx").is_file() and (onnx / "model_qint8.onnx").is_file() and "serve it: rerank-utils serve" in out
    assert json.loads((onnx / "calibration.json").read_text()) == calibration  # the export is served alone, calibrated
    # with OpenVINO and NNCF (the dev extra), OpenVINO's int8 too, calibrated on the training split
    assert (onnx / "openvino_int8.xml").is_file() and "calibrating OpenVINO's int8 (NNCF) on tiny's training split" in out
    assert "--backend openvino --onnx-file openvino_int8.xml" in out and "wrote " + str(onnx / "openvino_int8.xml") in out
    diff = float(out.split("model.onnx (")[1].split("PyTorch on 3 pairs ")[1].split()[0])
    assert diff < 1e-3  # the fp32 export scores as PyTorch does

    # a standard cross-encoder: trained beside the bridge, compared with it, and exported
    assert main(["finetune", *cfg, "--architecture", "standard", "--no-publish"]) == 0
    assert published_reranker("tiny")["architecture"] == "bridge"
    capsys.readouterr()
    std, bridge = art / "models" / "standard", art / "models" / "bridge"
    assert main(["evaluate", *cfg, "--model", str(std), "--model", str(bridge), "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert "1/2 models evaluated in " in out and " s left" in out and "2/2 models evaluated in " in out
    result = json.loads((art / "pipeline" / "evaluate_val.json").read_text())
    assert "bi-encoder + bridge vs bi-encoder + standard" in result["comparisons"]
    # issue 14: the standard cross-encoder exports too, and scores as PyTorch does (after its activation)
    std_onnx = tmp_path / "std_onnx"
    assert main(["export", *cfg, "--model", str(std), "--output", str(std_onnx)]) == 0
    out = capsys.readouterr().out
    assert (std_onnx / "model.onnx").is_file() and (std_onnx / "onnx_config.json").is_file() and "after its activation" in out
    assert float(out.split("model.onnx (")[1].split("PyTorch on 3 pairs ")[1].split()[0]) < 1e-4

    # other split values: never a silent replacement, and a model trained on another split is not evaluated
    assert main(["mine", *cfg, "--set", "seed=7"]) == 1
    assert "holds a split made from other values (seed: 42 there, 7 here)" in capsys.readouterr().err
    assert main(["evaluate", *cfg, "--set", "seed=7"]) == 1
    assert "was trained on another split" in capsys.readouterr().err


def test_finetune_retriever_then_evaluate_it_as_a_first_stage(tiny_config, _artifacts_in_tmp, capsys):
    """The guide's order through the CLI: the embedding model first, then the reranker over both first stages."""
    cfg = ["--config", str(tiny_config), "--set", "name=tiny-retriever"]
    art = _artifacts_in_tmp / "tiny-retriever"
    small = ["--epochs", "2", "--batch-size", "4", "--max-length", "32"]
    assert main(["finetune-retriever", *cfg, *small]) == 0
    out = capsys.readouterr().out
    assert "trained in" in out and "validation NDCG@10 (retrieval from the whole corpus): base" in out and "kept epoch" in out
    folder = art / "models" / "retriever"
    facts = json.loads((folder / "training.json").read_text())
    assert facts["kind"] == "retriever" and len(facts["validation_by_epoch"]) == 2 and (folder / "README.md").is_file()
    assert main(["finetune-retriever", *cfg, *small]) == 0
    assert "reused the retriever saved with this recipe and data" in capsys.readouterr().out
    assert main(["finetune-retriever", *cfg, *small, "--epochs", "1"]) == 0  # another recipe: trained again
    assert "trained in" in capsys.readouterr().out

    assert main(["finetune", *cfg, "--architecture", "standard"]) == 0
    capsys.readouterr()
    assert main(["evaluate", *cfg, "--retriever", str(folder)]) == 0
    result = json.loads((art / "pipeline" / "evaluate_test.json").read_text())
    assert list(result["table"]) == ["BM25", "bi-encoder", "fine-tuned bi-encoder", "BM25 + reranker", "bi-encoder + reranker",
                                     "fine-tuned bi-encoder + reranker"]
    assert result["comparisons"]["fine-tuned bi-encoder + reranker vs fine-tuned bi-encoder"]["n_queries"] == 7
    # the verdict against the strongest row, printed and saved
    best = max(result["table"], key=lambda n: result["table"][n]["ndcg@10"])
    assert result["verdicts"]["reranker"].startswith(f"strongest row: {best} (NDCG@10 {result['table'][best]['ndcg@10']:.3f})")
    assert "against the strongest first stage (reranker): strongest row:" in capsys.readouterr().out
    assert main(["evaluate", *cfg, "--retriever", str(art / "models" / "standard")]) == 1  # not a retriever
    assert "holds no fine-tuned retriever" in capsys.readouterr().err
    assert main(["prepare", *cfg, "--set", "seed=7", "--rebuild"]) == 0  # a new split: the retriever's data is stale
    new_ce = art / "models" / "standard-seed7"
    assert main(["finetune", *cfg, "--set", "seed=7", "--architecture", "standard", "--no-publish", "--output", str(new_ce)]) == 0
    capsys.readouterr()
    assert main(["evaluate", *cfg, "--set", "seed=7", "--retriever", str(folder), "--model", str(new_ce)]) == 1
    assert "was trained on other data than this config's split" in capsys.readouterr().err


def test_serve_needs_a_model(tmp_path, capsys):
    assert main(["serve"]) == 2
    assert "serve needs MODEL_DIR or --config" in capsys.readouterr().err
    path = write(tmp_path / "c.yaml", "profile: smoke\nname: nothing-trained\n")
    assert main(["serve", "--config", str(path)]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_checking_a_config_loads_neither_torch_nor_sentence_transformers():
    """`rerank-utils --help` and `check-config` answer at once: the schema is pydantic only (issue 13)."""
    code = ("import sys; from rerank_utils.cli.main import main; main(['check-config', '--profile', 'smoke']); "
            "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers', 'fastapi', 'papermill') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
