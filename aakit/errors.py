"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class AakitError(Exception):
    """A problem caused by the user's input (file, config, layout, argument).

    The message names the problem and where it is (file, key, line or image id).
    """
