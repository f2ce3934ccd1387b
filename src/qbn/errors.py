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


class DamagedFileError(QbnError):
    """A file qbn wrote (summary.json, signs.json, kernels.json, a study's own files) no longer reads."""


class OutputError(QbnError):
    """An output path that cannot be written (read-only, under a file, a directory where a file belongs)."""


class RunDirError(QbnError):
    """A run directory this command may not train as asked (qbn.rundir.RunDir.check_can_train); nothing
    was written there."""


def command(argv: list[str], usage: str, arguments_ok, action) -> int:
    """A small command line (python -m qbn.report, qbn.study report, ...): its usage line and exit
    2 when `arguments_ok(argv)` is false (exit 0 for -h / --help), else `action(argv)`, whose
    returned line is printed; a QbnError, or an OSError the system raised, becomes one `qbn:` line
    and exit 1."""
    import sys

    if argv in (["-h"], ["--help"]):
        print(f"usage: {usage}")
        return 0
    if not arguments_ok(argv):
        print(f"usage: {usage}", file=sys.stderr)
        return 2
    try:
        line = action(argv)
    except QbnError as e:
        print(f"qbn: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # the system refused a file (read-only, full disk, ...): its words, in one line
        print(f"qbn: {e.filename or 'a file'}: {(e.strerror or type(e).__name__).lower()}", file=sys.stderr)
        return 1
    if line:
        print(line)
    return 0
