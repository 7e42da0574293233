"""A spy on a model's ``predict`` for tests that check which pairs were scored, and in which calls."""

from __future__ import annotations


def spy_predict(model, monkeypatch) -> list:
    """Replace ``model.predict`` by a spy with ``CrossEncoder.predict``'s signature (so the package still asks it for
    raw scores) that records each call's pairs in the returned list, then calls the real one."""
    seen = []
    real = model.predict

    def spy(pairs, batch_size=32, show_progress_bar=False, activation_fn=None):
        seen.append(list(pairs))
        return real(pairs, batch_size=batch_size, show_progress_bar=show_progress_bar, activation_fn=activation_fn)

    monkeypatch.setattr(model, "predict", spy)
    return seen
