"""Exceptions whose messages are meant for users: they name the slide, patient,
gene or config key at fault and say what to do."""


class EmoError(Exception):
    """Base class for user-facing errors."""


class SlideError(EmoError):
    """A slide cannot be used (missing, unreadable, unsupported, no mpp)."""

    def __init__(self, sample: str, path: str, problem: str, fix: str):
        self.sample, self.path, self.problem, self.fix = sample, path, problem, fix
        super().__init__(f"slide {sample!r} ({path}): {problem}. {fix}")


class SampleSheetError(EmoError):
    """The sample sheet is invalid; message names the row and column."""


class ConfigError(EmoError):
    """A config key is invalid; message names the key."""


class InputTableError(EmoError):
    """An expression, clinical or spatial table is invalid."""
