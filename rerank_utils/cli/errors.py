"""The two errors the CLI turns into a message and exit status 2: a config that cannot be used, a step that cannot run."""


class ConfigError(ValueError):
    """A config that cannot be used; the message lists every problem, each naming the file and the key."""


class PipelineError(RuntimeError):
    """A step that cannot run as asked (missing model, splits made from other data, ...), said plainly."""
