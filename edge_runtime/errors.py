"""Error types shared by every stage.

They live in edge_runtime because it is the foundation every other stage may import; the CLI
prints a ``UserError`` as one line and exits non-zero instead of showing a traceback.
"""


class UserError(Exception):
    """A problem the user can fix (bad path, bad flag, bad file): reported as one line."""


class ImageReadError(UserError):
    """An image file could not be opened or decoded."""
