"""EtaLog (issue 15): a training run's progress as plain lines: step of how many, epoch, elapsed, time left."""

from __future__ import annotations

from types import SimpleNamespace

from rerank_utils.training.eta import EtaLog, eta_line


def test_eta_line_extrapolates_the_pace_so_far():
    assert eta_line("training", 30, 90, 1.0, 3, 60.0) == "  training: step 30/90 (epoch 1.0/3), 60 s elapsed, about 120 s left"
    assert eta_line("training", 0, 90, 0.0, 3, 1.0).endswith("estimating the time left")


def test_eta_log_writes_a_line_per_epoch_and_per_interval(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("rerank_utils.training.eta.time.monotonic", lambda: clock[0])
    lines = []
    cb = EtaLog(lines.append, every=30.0)
    args, state = SimpleNamespace(num_train_epochs=2), SimpleNamespace(global_step=0, max_steps=20, epoch=0.0)
    cb.on_train_begin(args, state, None)
    for step in range(1, 21):
        clock[0] += 5.0  # 5 s a step
        state.global_step, state.epoch = step, step / 10
        cb.on_step_end(args, state, None)
        if step % 10 == 0:
            cb.on_epoch_end(args, state, None)
    assert lines[0] == "  training: 20 steps, 2 epoch(s)"
    assert "  training, epoch 1 done: step 10/20 (epoch 1.0/2), 50 s elapsed, about 50 s left" in lines
    assert "  training, epoch 2 done: step 20/20 (epoch 2.0/2), 100 s elapsed, about 0 s left" in lines
    minute = [x for x in lines if x.startswith("  training: step")]
    assert minute == ["  training: step 6/20 (epoch 0.6/2), 30 s elapsed, about 70 s left",  # 30 s after the start
                      "  training: step 16/20 (epoch 1.6/2), 80 s elapsed, about 20 s left"]  # 30 s after epoch 1's line
    assert cb.lines == 4
