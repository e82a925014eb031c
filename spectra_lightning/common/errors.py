"""The project's user-facing errors (the CLI prints them as one line, never as a traceback) and warnings."""


class ConfigError(ValueError):
    """A setting, a path or an input that cannot work; the message says which and why."""


class SpectraLightningWarning(UserWarning):
    """Base of this project's warnings (the test suite turns them into errors)."""


class MovedWarning(SpectraLightningWarning, FutureWarning):
    """A name users type has moved; the old one still works for now."""


class WeightlessSpectraWarning(SpectraLightningWarning):
    """Training spectra that the reconstruction loss gives no weight (all masked, or all of zero inverse
    variance): they train the KL term alone."""
