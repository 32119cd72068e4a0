"""Exceptions raised by prunekit.

Every error a user can cause derives from :class:`PrunekitError`; the CLI prints its message
(which names the file or value at fault and what was expected) and exits with status 2 instead
of showing a traceback.

Example:
    >>> from prunekit.models import get_model
    >>> try:
    ...     get_model("alexnet")
    ... except UnknownNameError as exc:
    ...     print(exc)
    unknown model 'alexnet'; known: convnet, lenet300, lenet5, lenet5_caffe, mlp, resnet, resnet20, resnet56, vgg
"""


class PrunekitError(Exception):
    """Base class of all errors a user can cause."""


class ConfigError(PrunekitError, ValueError):
    """An impossible or unknown setting: a sparsity outside [0, 100), an unknown name, ..."""


class UnknownNameError(ConfigError, KeyError):
    """A name that no registry knows (model, dataset, criterion, schedule, exporter...).

    The message lists the valid names. (``KeyError`` is a base so ``except KeyError`` still works;
    ``str()`` gives the plain message.)
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DataError(PrunekitError):
    """A data file that is missing, corrupt or of the wrong shape."""


class ChecksumError(DataError):
    """A data file whose content does not have the expected sha256."""


class CheckpointError(PrunekitError):
    """A checkpoint, mask, plan or model file that is missing, malformed or does not fit the model."""


class TraceError(ConfigError):
    """A model that cannot be traced with the example inputs given, or a plan that does not fit it."""


class TrainingError(ConfigError):
    """Training that diverged: a loss that became NaN or infinite (the message names the epoch and step)."""


class OutputError(PrunekitError):
    """An output path that cannot be written (an existing file, an unwritable folder, the input itself)."""


class JobError(PrunekitError):
    """A sweep job that failed on a worker (another process or a Ray node); the message names the job."""
