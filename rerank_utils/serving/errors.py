"""What can go wrong while scoring, as exceptions the service turns into statuses: :class:`Overloaded` (429 with
``Retry-After``), :class:`DeadlineExceeded` (504) and :class:`ScorerFailed` (503). Every refusal the service
sends has the body ``{"error": <what and what to do>, "error_type": <a stable name>}``.
"""

from __future__ import annotations


class Overloaded(RuntimeError):
    """The micro-batcher's queue of pairs waiting to be scored is full: come back in ``retry_after`` seconds."""

    def __init__(self, queued: int, limit: int, retry_after: int):
        super().__init__(f"the server is busy: {queued} pairs are waiting to be scored and the queue holds at most {limit}; "
                         f"retry after {retry_after} s, or send fewer documents")
        self.queued, self.limit, self.retry_after = queued, limit, retry_after


class DeadlineExceeded(TimeoutError):
    """The request was not scored within its deadline (a stuck or slow forward pass, or a long queue)."""

    def __init__(self, seconds: float):
        super().__init__(f"the request was not scored within its deadline of {seconds:g} s; "
                         "the server is slow or stuck: retry later, or raise the deadline (--deadline-s)")
        self.seconds = seconds


class ScorerFailed(RuntimeError):
    """The model raised while scoring; the message names its exception."""

    def __init__(self, cause: BaseException):
        super().__init__(f"the model failed to score this request ({type(cause).__name__}: {cause})")
