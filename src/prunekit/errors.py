"""Exceptions raised by prunekit.

Every error a user can cause derives from :class:`PrunekitError`; the CLI prints
its message (which names the file or value at fault and what was expected) and
exits with status 2 instead of showing a traceback.
"""


class PrunekitError(Exception):
    """Base class of all errors a user can cause."""


class ConfigError(PrunekitError, ValueError):
    """An impossible or unknown setting: a sparsity outside [0, 100), an unknown name, ..."""


class DataError(PrunekitError):
    """A data file that is missing, corrupt or of the wrong shape."""


class ChecksumError(DataError):
    """A data file whose content does not have the expected sha256."""


class CheckpointError(PrunekitError):
    """A checkpoint folder that is missing files or does not fit the model."""
