"""Errors a user can cause. Entry points print their message in one line and exit non-zero,
never a traceback into library internals."""


class QbnError(Exception):
    """A mistake the user can fix; the message says how."""


class DatasetMissingError(QbnError):
    pass


class CheckpointError(QbnError):
    pass


class ConfigError(QbnError):
    pass
