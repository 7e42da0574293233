"""How long a notebook run will take, said while it runs: ``run-notebooks`` prints, as each notebook starts, about how
long it and the rest of the run should take, and with each report of a slow cell, how long that cell took before.

The forecast for a notebook is its time in the profile's last run (``artifacts/<profile>/timings.json``, which every
run writes; named "this machine's" when it recorded this machine's processor and cores), else in the run the READMEs publish (:data:`~rerank_utils.tutorial.timings.REFERENCE`,
written with the READMEs from the same ONE whole run), else none: the runner then says what runs and for how long,
without a forecast. Machines differ (the READMEs' AVX2-only EPYC took 1.35x the time of their AVX512-BF16 one), so
the first line says whose run the forecast comes from, and once notebooks have finished the rest is scaled by this
run's pace so far (:meth:`Forecast.pace`): on a slower CPU, or beside another CPU-heavy job, the time left is this
run's, not the recorded machine's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rerank_utils.tutorial.timings import duration, machine, machine_text, read_reference, read_timings, run_when


@dataclass
class Forecast:
    """Seconds per notebook and per long cell (numbered from 1 among code cells), and whose run they come from."""

    seconds: dict[str, float] = field(default_factory=dict)
    cells: dict[str, dict[int, float]] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)  # notebook -> "this machine's run of ..." / "the READMEs' run ..."

    def notebook(self, stem: str, rest: list[str], pace: float = 1.0) -> str:
        """``"about 15.0 min; about 42.5 min left in all"`` for ``stem`` followed by the notebooks ``rest``, each
        forecast times ``pace`` (:meth:`pace`; said when it is 10 % or more off 1); the total only when every one of
        them has a forecast; empty when ``stem`` has none."""
        if stem not in self.seconds:
            return ""
        text = f"about {duration(pace * self.seconds[stem])}"
        if rest and all(nb in self.seconds for nb in rest):
            text += f"; about {duration(pace * (self.seconds[stem] + sum(self.seconds[nb] for nb in rest)))} left in all"
        if abs(pace - 1.0) >= 0.1:
            text += f" (this run so far: {pace:.2f}x the forecast)"
        return text

    def pace(self, done: dict[str, float]) -> float:
        """This run's seconds over the forecast's, summed over the finished notebooks ``done`` (stem -> seconds) that
        have a forecast; 1 before any has. A ratio of sums, so a long notebook weighs as much as its time."""
        timed = [nb for nb in done if self.seconds.get(nb)]
        return sum(done[nb] for nb in timed) / sum(self.seconds[nb] for nb in timed) if timed else 1.0

    def sources(self, stems: list[str]) -> str:
        """Whose runs the forecasts of ``stems`` come from, one phrase each, in order of first use."""
        return "; ".join(dict.fromkeys(self.source[nb] for nb in stems if nb in self.source))


def forecast(profile: str) -> Forecast:
    """The forecast of ``profile``'s notebooks: this machine's last times where it has them, else the READMEs'."""
    out = Forecast()

    def take(notebooks: dict[str, Any], who) -> None:
        for nb, row in notebooks.items():
            out.seconds[nb] = row["seconds"]
            out.cells[nb] = {c["cell"]: c["seconds"] for c in row.get("long_cells", [])}
            out.source[nb] = who(row)

    reference = read_reference().get(profile)
    if reference:
        take(reference["notebooks"], lambda row: f"the READMEs' run of {run_when(reference['run'])} on {machine_text(reference['machine'])}")
    here, this = read_timings(profile), machine()

    def here_who(row: dict[str, Any]) -> str:
        ran_on = here["runs"].get(row["run"], {}).get("machine", {})
        same = all(ran_on.get(k) == this[k] for k in ("cpus", "processor"))  # not an artifacts folder copied from elsewhere
        return f"this machine's run of {run_when(row['run'])}" if same else f"the run of {run_when(row['run'])} on {machine_text(ran_on)}"

    take(here["notebooks"], here_who)
    return out
