"""How long the notebooks took: ``artifacts/<profile>/timings.json`` written by ``run-notebooks`` (per notebook, per
cell that ran 10 s or more, per run with its machine) and read back as the table the READMEs show.

``python -m rerank_utils.tutorial.timings --profile cpu`` prints that table from the profile's last runs, and says
whether its rows come from ONE run (the figure to publish) or from several (a partial rerun replaced some notebooks:
then the total is a stitch, and the table says so). ``--update-readme`` writes the smoke and cpu columns of the
READMEs' notebook tables (``README.md``, ``README.zh-CN.md``, ``notebooks/README.md``) and their totals (between ``<!-- timings: begin -->`` and ``<!-- timings: end -->``),
and the reference that ``run-notebooks`` forecasts from (:data:`REFERENCE`), from
the two profiles' timings.json (``--profile smoke`` alone: that profile's only), and refuses a profile whose rows are
stitched from several runs or whose run left a notebook out (``--only 03``): the README's figure is always one whole run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rerank_utils.cpu_info import cpu_flags, cpu_model_name
from rerank_utils.paths import artifacts_dir, discover_notebooks, repo_root

LONG_CELL = 10.0  # seconds: a cell that ran this long is listed in timings.json
#: The READMEs' runs, per profile, that ``run-notebooks`` forecasts from on a machine with no run of its own
#: (:mod:`rerank_utils.tutorial.estimates`); written with the READMEs, from the same ONE whole run.
REFERENCE = Path(__file__).with_name("reference_timings.json")


#: The flags that decide which precisions pay on a CPU, as the timings name them.
SPEED_FLAGS = (("avx2", "AVX2"), ("avx512f", "AVX512"), ("avx512_bf16", "AVX512-BF16"), ("avx512_vnni", "VNNI"),
               ("amx_bf16", "AMX"))


def cpu_model() -> str:
    """The CPU's model name and the instructions that decide its speed here (AVX2, AVX512, AVX512-BF16, VNNI, AMX)."""
    flags = cpu_flags()
    has = [label for flag, label in SPEED_FLAGS if flag in flags]
    model = cpu_model_name()
    return f"{model} ({', '.join(has)})" if has else model


def machine() -> dict[str, Any]:
    """The machine a run was timed on (timings.json, the README's tables)."""
    return {"cpus": os.cpu_count(), "processor": cpu_model(), "system": platform.platform(),
            "python": platform.python_version()}


def save_timings(profile: str, run_id: str, seconds: dict[str, float], cells: dict[str, list]) -> Path:
    """``artifacts/<profile>/timings.json``: per notebook its seconds, its long cells and the run it came from; per
    run its machine. A later partial run replaces only its own notebooks, and says so by its run id."""
    path = artifacts_dir(profile) / "timings.json"
    old = read_timings(profile)  # nothing yet, or the flat {notebook: seconds} of earlier versions: a fresh file
    old["runs"][run_id] = {"machine": machine(), "notebooks": list(seconds)}
    for nb, s in seconds.items():
        old["notebooks"][nb] = {"seconds": s, "run": run_id, "long_cells": cells.get(nb, [])}
    path.write_text(json.dumps(old, indent=1), encoding="utf-8")
    return path


def read_timings(profile: str) -> dict[str, Any]:
    """timings.json of ``profile`` (``{"notebooks": {}, "runs": {}}`` when there is none, or only an earlier version's)."""
    path = artifacts_dir(profile) / "timings.json"
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return data if "notebooks" in data else {"notebooks": {}, "runs": {}}


def timings_markdown(profile: str) -> str:
    """The table of ``profile``'s timings: notebook, seconds, its longest cell; the total; the run(s) and machine."""
    data = read_timings(profile)
    rows = data["notebooks"]
    if not rows:
        return f"no timings for profile {profile!r} yet: run `rerank-utils run-notebooks --profile {profile}`\n"
    lines = ["| notebook | seconds | longest cell |", "|---|---|---|"]
    for nb, row in sorted(rows.items()):
        longest = max(row["long_cells"], key=lambda c: c["seconds"], default=None)
        note = f"{longest['seconds']:.0f} s: `{longest['source']}`" if longest else ""
        lines.append(f"| {nb} | {row['seconds']:.0f} | {note} |")
    total = sum(r["seconds"] for r in rows.values())
    lines.append(f"| **total** | **{total:.0f}** ({total / 60:.1f} min) | |")
    runs = sorted({r["run"] for r in rows.values()})
    machines = {json.dumps(data["runs"].get(run, {}).get("machine", {}), sort_keys=True) for run in runs}
    machine_text = "; ".join(
        f"{m.get('cpus')} CPUs, {m.get('processor')}, Python {m.get('python')}" for m in map(json.loads, machines))
    if len(runs) == 1:
        lines.append(f"\nOne run ({runs[0]}) on {machine_text}.")
    else:
        lines.append(f"\nStitched from {len(runs)} runs ({', '.join(runs)}), on {machine_text}: rerun the whole profile for one figure.")
    return "\n".join(lines) + "\n"


class NotOneRun(ValueError):
    """A profile's timings are stitched from several runs (or there are none): not a figure to publish."""


def one_run(profile: str, data: dict[str, Any] | None = None, notebooks: list[str] | None = None) -> tuple[str, dict[str, Any]]:
    """The run id and timings of ``profile`` when every notebook's row comes from ONE run and, given ``notebooks``
    (stems), that run timed every one of them (``run-notebooks --only 03`` is one run, not a whole one); else
    :class:`NotOneRun` naming the runs or the notebooks missing and what to do."""
    data = read_timings(profile) if data is None else data
    runs = sorted({row["run"] for row in data["notebooks"].values()})
    if not runs:
        raise NotOneRun(f"no timings for profile {profile!r}: run `make tutorial PROFILE={profile}` first")
    if len(runs) > 1:
        raise NotOneRun(f"profile {profile!r}'s timings are stitched from {len(runs)} runs ({', '.join(runs)}): "
                        f"rerun the whole profile (`make tutorial PROFILE={profile}`) for one figure")
    missing = sorted(set(notebooks or ()) - set(data["notebooks"]))
    if missing:
        raise NotOneRun(f"profile {profile!r}'s run {runs[0]} timed {len(data['notebooks'])} of {len(set(notebooks))} notebooks "
                        f"(missing: {', '.join(missing)}): run the whole profile (`make tutorial PROFILE={profile}`) for one figure")
    return runs[0], data


def duration(seconds: float) -> str:
    """``44 s`` under 100 s, else ``5.1 min``: how the READMEs write a notebook's time."""
    return f"{seconds:.0f} s" if seconds < 100 else f"{seconds / 60:.1f} min"


def machine_text(m: dict[str, Any]) -> str:
    """A recorded machine as the READMEs and the forecast name it: ``2 CPUs, AMD EPYC (AVX2)``."""
    return f"{m.get('cpus')} CPUs, {m.get('processor')}" if m else "an unnamed machine"


def _machine_text(data: dict[str, Any], run: str) -> str:
    return machine_text(data["runs"].get(run, {}).get("machine", {}))


def run_when(run: str) -> str:
    """A run id (an ISO time) as ``2026-12-04 18:46 UTC``; any other id as it is."""
    try:
        t = datetime.fromisoformat(run)
    except ValueError:
        return run
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if t.tzinfo else t.strftime("%Y-%m-%d %H:%M")


def totals_sentence(profile: str, data: dict[str, Any], chinese: bool = False) -> str:
    """One sentence: the profile's whole run, its total, its date and machine."""
    run, _ = one_run(profile, data)
    when = run_when(run)
    total = sum(row["seconds"] for row in data["notebooks"].values())
    n = len(data["notebooks"])
    if chinese:
        return (f"`{profile}` profile 的一次完整运行（{when}，{n} 个 notebook，{_machine_text(data, run)}）："
                f"**{total / 60:.1f} min**（notebook 部分 {total:,.0f} s）。")
    return (f"One whole `{profile}` run ({when}, {n} notebooks, on {_machine_text(data, run)}): "
            f"**{total / 60:.1f} min** ({total:,.0f} s of notebooks).")


TABLE_ROW = re.compile(r"^\| (\d\d) \|(.*)\| ([^|]*) \| ([^|]*) \|$")
BLOCK = re.compile(r"(<!-- timings: begin[^>]*-->\n)(.*?)(<!-- timings: end -->)", re.S)


def readme_with_timings(text: str, profiles: dict[str, dict[str, Any]], chinese: bool = False) -> str:
    """``text`` (a README) with its notebook table's "smoke / cpu" column and its timings block rewritten from
    ``profiles`` (``{"smoke": timings, "cpu": timings}``, each one whole run). A profile not given keeps its figures;
    a README without the markers is an error, so a changed README cannot silently stop being updated."""
    if not BLOCK.search(text):
        raise ValueError("README has no `<!-- timings: begin -->` ... `<!-- timings: end -->` block: put it back "
                         "where the totals go")
    rows = []
    for line in text.split("\n"):
        m = TABLE_ROW.match(line)
        if m and "/" in m.group(3):
            nb = m.group(1)
            old_smoke, old_cpu = (part.strip() for part in m.group(3).split("/", 1))
            new = {"smoke": old_smoke, "cpu": old_cpu}
            for profile, data in profiles.items():
                hit = [row for name, row in data["notebooks"].items() if name.startswith(nb + "_")]
                if hit:
                    new[profile] = duration(hit[0]["seconds"])
            line = f"| {nb} |{m.group(2)}| {new['smoke']} / {new['cpu']} | {m.group(4)} |"
        rows.append(line)
    text = "\n".join(rows)
    block = BLOCK.search(text)
    kept = dict(re.findall(r"^<!-- (\w+) -->(.*)$", block.group(2), re.M))
    for profile, data in profiles.items():  # each one whole run, or NotOneRun (one_run)
        kept[profile] = totals_sentence(profile, data, chinese=chinese)
    body = "".join(f"<!-- {p} -->{kept[p]}\n" for p in sorted(kept))
    return text[:block.start(2)] + body + text[block.end(2):]


def read_reference(path: Path | None = None) -> dict[str, Any]:
    """The READMEs' runs (:data:`REFERENCE` by default): ``{profile: {"run", "machine", "notebooks": {stem: {"seconds",
    "long_cells"}}}}``; empty when there is no file."""
    path = REFERENCE if path is None else path
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def write_reference(profiles: dict[str, dict[str, Any]], path: Path | None = None) -> Path:
    """Put each of ``profiles`` (``{profile: timings}``, each one whole run) into the reference file at ``path``
    (:data:`REFERENCE` by default); the other profiles keep theirs."""
    path = REFERENCE if path is None else path
    reference = read_reference(path)
    for profile, data in profiles.items():
        run, _ = one_run(profile, data)
        reference[profile] = {"run": run, "machine": data["runs"].get(run, {}).get("machine", {}),
                              "notebooks": {nb: {"seconds": row["seconds"], "long_cells": row.get("long_cells", [])}
                                            for nb, row in sorted(data["notebooks"].items())}}
    path.write_text(json.dumps(reference, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def update_readme(paths: list[Path] | None = None, profiles: tuple[str, ...] = ("smoke", "cpu"),
                  notebooks: list[str] | None = None, reference: Path | None = None) -> list[Path]:
    """Rewrite the READMEs' timings from ``profiles``' timings.json, each ONE run of every notebook in ``notebooks``
    (default: the repository's numbered notebooks); a profile not named keeps its figures. ``reference``: the file
    that ``run-notebooks`` forecasts from, written from the same runs (default: the package's, when ``paths`` are the
    repository's READMEs)."""
    root = repo_root()
    if paths is None:
        if root is None:
            raise FileNotFoundError("no repository: pass the README paths")
        paths = [root / "README.md", root / "README.zh-CN.md", root / "notebooks" / "README.md"]
        reference = REFERENCE if reference is None else reference
    notebooks = [p.stem for p in discover_notebooks()] if notebooks is None else notebooks
    data = {p: read_timings(p) for p in profiles}
    for profile, timed in data.items():
        one_run(profile, timed, notebooks)
    for path in paths:
        text = path.read_text(encoding="utf-8")
        path.write_text(readme_with_timings(text, data, chinese=path.name.endswith("zh-CN.md")), encoding="utf-8")
    if reference is not None:
        write_reference(data, reference)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rerank_utils.tutorial.timings", description="Print a profile's notebook timings.")
    parser.add_argument("--profile", default=None, help="the profile to print (default: cpu), or the only one --update-readme writes")
    parser.add_argument("--update-readme", action="store_true",
                        help="write the READMEs' smoke / cpu timings (README.md, README.zh-CN.md, notebooks/README.md) from ONE whole "
                             "run of each profile (of --profile only, if given)")
    args = parser.parse_args(argv)
    if args.update_readme:
        try:
            for path in (update_readme(profiles=(args.profile,)) if args.profile else update_readme()):
                print(f"updated {path}")
        except NotOneRun as exc:
            print(f"error: {exc}")
            return 2
        return 0
    print(timings_markdown(args.profile or "cpu"), end="")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
