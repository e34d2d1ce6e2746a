"""Errors a user can act on: each message names the file (and line) and says what to do."""


class UserError(Exception):
    """Base class: caught by the CLI and shown without a traceback."""


class ConfigError(UserError):
    """wan_lora.toml, a ranges file or another hand-written file is wrong."""


class MediaError(UserError):
    """A film or clip cannot be read or cut."""


class EngineError(UserError):
    """A training engine is missing, misconfigured or failed."""


class EngineCancelled(EngineError):
    """The work was cancelled (a run's termination, Ctrl-C); nothing of it runs on."""
