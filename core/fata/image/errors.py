"""The one error type of the image tools."""

from __future__ import annotations


class ImageError(Exception):
    """Something about an image (or the making of one) is wrong.

    The message is one line meant for a person: the CLI prints it as ``fata: <message>`` and
    exits 1, never with a traceback.  It names what is wrong (the member that differs, the
    key that is not trusted, the Python the image needs) so that the fix is obvious.
    """
