""":class:`LabellerWidget`: the ipywidgets front of a :class:`~rerank_utils.labelling.labeller.Labeller` (query,
passage, four buttons, progress). ipywidgets is imported when a widget is built.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, Callable

from rerank_utils.data.records import POSITIVE_THRESHOLD
from rerank_utils.labelling.store import _score_value

if TYPE_CHECKING:  # the labeller creates its widget: a run-time import would be a cycle
    from rerank_utils.labelling.labeller import Labeller


# ------------------------------------------------------------------------------------------ the widget
class LabellerWidget:
    """Query, passage, four buttons and the progress, over a :class:`~rerank_utils.labelling.labeller.Labeller`.

    Each button only calls the labeller (``relevant()``, ``not_relevant()``, ``skip()``, ``undo()``) and
    redraws, so everything it does is tested without a browser: ``widget.relevant_button.click()``.
    An error in a callback (a full disk, say) is shown in :attr:`message` and kept in :attr:`last_error`
    instead of vanishing into the front end's log. ``passage_chars`` cuts long passages for display
    (the label is for the whole passage).
    """
    def __init__(self, labeller: Labeller, passage_chars: int | None = None):
        import ipywidgets as w  # local: a widget is only built inside a notebook

        self.labeller = labeller
        self.passage_chars = passage_chars
        self.last_error: Exception | None = None
        self.query_html = w.HTML()
        self.passage_html = w.HTML(layout=w.Layout(border="1px solid #ccc", padding="6px"))
        self.relevant_button = w.Button(description="relevant (1)", button_style="success", icon="check")
        self.not_relevant_button = w.Button(description="not relevant (0)", button_style="danger", icon="times")
        self.skip_button = w.Button(description="skip", icon="forward")
        self.undo_button = w.Button(description="undo", icon="undo")
        self.progress_bar = w.IntProgress(min=0, max=max(1, len(labeller.candidates)), description="decided")
        self.status_html = w.HTML()
        self.message = w.HTML()
        self.relevant_button.on_click(lambda _: self._do(self.labeller.relevant))
        self.not_relevant_button.on_click(lambda _: self._do(self.labeller.not_relevant))
        self.skip_button.on_click(lambda _: self._do(self.labeller.skip))
        self.undo_button.on_click(lambda _: self._do(self.labeller.undo))
        buttons = w.HBox([self.relevant_button, self.not_relevant_button, self.skip_button, self.undo_button])
        self.container = w.VBox([self.query_html, self.passage_html, buttons, self.progress_bar, self.status_html, self.message])
        self.refresh()

    def _do(self, action: Callable[[], Any]) -> None:
        try:
            action()
            self.last_error = None
            self.message.value = ""
        except (OSError, ValueError) as err:
            self.last_error = err
            self.message.value = f"<span style='color:#b00'>{html.escape(str(err))}</span>"
        self.refresh()

    def refresh(self) -> None:
        """Show the current candidate and the progress."""
        lab = self.labeller
        cand = lab.current
        p = lab.progress()
        self.progress_bar.value = p["labelled"] + p["skipped"]
        done = cand is None
        for button in (self.relevant_button, self.not_relevant_button, self.skip_button):
            button.disabled = done
        self.undo_button.disabled = not lab.history
        if done:
            self.query_html.value = "<b>Done:</b> every proposed pair is labelled or skipped."
            self.passage_html.value = ""
        else:
            row = next(r for r in lab.per_query() if r["query_id"] == cand.query_id)
            passage = cand.passage
            if self.passage_chars and len(passage) > self.passage_chars:
                passage = passage[: self.passage_chars] + " …"
            self.query_html.value = (
                f"<b>Query</b> {html.escape(cand.query)}<br><small>first-stage rank {cand.rank} · "
                f"this query: {row['labelled']} labelled, {row['positives']} relevant, {row['remaining']} to go</small>"
            )
            self.passage_html.value = html.escape(passage).replace("\n", "<br>")
        self.status_html.value = f"<small>{html.escape(lab.status_line())}<br>{html.escape(lab.ratio_advice())}</small>"

    def button_for(self, value: Any):
        """The button a person would press for ``value``: 1 relevant, 0 not relevant, ``None`` skip."""
        if value is None:
            return self.skip_button
        return self.relevant_button if float(_score_value(value)) >= POSITIVE_THRESHOLD else self.not_relevant_button

    def _repr_mimebundle_(self, **kwargs: Any):
        return self.container._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"LabellerWidget({self.labeller!r})"
