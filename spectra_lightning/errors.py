"""The project's user-facing errors: the CLI prints them as one line, never as a traceback."""


class ConfigError(ValueError):
    """A setting, a path or an input that cannot work; the message says which and why."""
