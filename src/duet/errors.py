"""Errors a user can act on. Every public boundary raises a subclass of `DuetError`
with a message that names the problem and the fix; the CLI turns them into exit code 2."""


class DuetError(Exception):
    """Base class for every error Duet raises on purpose."""


class ConfigError(DuetError, ValueError):
    """A config, preset name or option value is invalid."""


class PromptError(DuetError, ValueError):
    """A prompt is empty or its tags are malformed."""


class CheckpointError(DuetError):
    """A checkpoint or model bundle is missing, incomplete or for another model."""


class InputError(DuetError, ValueError):
    """A tensor, size, dtype or device argument cannot be used."""


class MediaError(DuetError):
    """A media file cannot be written or read."""
