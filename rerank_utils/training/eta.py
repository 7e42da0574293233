"""A training run that says how far it is and how long is left, one line at a time.

tqdm's bar (the Trainer's ``disable_tqdm=False``) shows steps and an estimate in a terminal, but in a log (CI, papermill,
``make tutorial | tee``) it is one line rewritten in place, or nothing. :class:`EtaLog` is a ``TrainerCallback``
(transformers' hook for exactly this) that writes a plain line when an epoch ends and every ``every`` seconds
between: the step of how many, the epoch, the seconds elapsed and the seconds left at the pace so far. The
CLI's ``finetune`` and ``finetune-retriever`` write these lines unless ``--quiet``.
"""

from __future__ import annotations

import time
from typing import Callable

from transformers import TrainerCallback


def eta_line(what: str, step: int, max_steps: int, epoch: float, epochs: float, elapsed: float) -> str:
    """``"  <what>: step 120/360 (epoch 1.0/3), 95 s elapsed, about 190 s left"``."""
    left = elapsed / step * (max_steps - step) if step else float("nan")
    tail = f"about {left:.0f} s left" if step else "estimating the time left"
    return f"  {what}: step {step}/{max_steps} (epoch {epoch:.1f}/{epochs:g}), {elapsed:.0f} s elapsed, {tail}"


class EtaLog(TrainerCallback):
    """Progress lines through ``log`` (default ``print``): at each epoch's end, and every ``every`` seconds."""

    def __init__(self, log: Callable[[str], None] = print, every: float = 60.0, what: str = "training"):
        self.log, self.every, self.what = log, every, what
        self.lines = 0
        self._t0 = self._last = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self._t0 = self._last = time.monotonic()
        self.log(f"  {self.what}: {state.max_steps} steps, {args.num_train_epochs:g} epoch(s)")

    def _line(self, args, state, what: str) -> None:
        self._last = time.monotonic()
        self.log(eta_line(what, state.global_step, state.max_steps, state.epoch or 0.0, args.num_train_epochs, self._last - self._t0))
        self.lines += 1

    def on_step_end(self, args, state, control, **kwargs):
        if time.monotonic() - self._last >= self.every:
            self._line(args, state, self.what)

    def on_epoch_end(self, args, state, control, **kwargs):
        self._line(args, state, f"{self.what}, epoch {round(state.epoch or 0)} done")
