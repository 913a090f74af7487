"""The one exception type that the CLI turns into a one-line message and exit status 2."""


class UsageError(ValueError):
    """Bad input from the user (unknown model, bad width, missing file, ...).

    Raised anywhere in the package; `slicedim` prints `error: <message>` on stderr and exits 2,
    without a traceback and before anything is written.
    """
