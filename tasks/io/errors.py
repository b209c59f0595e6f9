"""Errors and warnings of FITS reading, and the one-line ``"{path}[HDU n NAME]: problem; fix"`` format."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FitsReadError", "FitsReadWarning", "Source", "one_line"]


class FitsReadError(ValueError):
    """A FITS file, or one of its HDUs, that cannot be read as an exposure.

    The message is one line, ``"{path}[HDU {n} {name}]: {problem}; {fix}"``.

    Parameters
    ----------
    message : str
        The full one-line message.
    path : str, optional
        File concerned.
    hdu : int, optional
        Index of the HDU concerned (0 = primary), when known.
    """

    def __init__(self, message: str, *, path: str | None = None, hdu: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.hdu = hdu


class FitsReadWarning(UserWarning):
    """Something in a FITS file was ignored while reading it (e.g. WCS cards astropy cannot parse)."""


def one_line(text: object) -> str:
    """Collapse a message (astropy's are sometimes several lines) onto one line."""
    return " ".join(str(text).split())


@dataclass(frozen=True)
class Source:
    """Where pixels come from: a file and optionally one of its HDUs; builds the error messages.

    Parameters
    ----------
    path : str
        File path (or a description such as ``"<noise array>"`` for in-memory data).
    hdu : int, optional
        HDU index.
    name : str, optional
        HDU name (EXTNAME, else LSST's EXTTYPE).
    """

    path: str
    hdu: int | None = None
    name: str = ""

    def __str__(self) -> str:
        if self.hdu is None:
            return self.path
        name = f" {self.name}" if self.name else ""
        return f"{self.path}[HDU {self.hdu}{name}]"

    def error(self, problem: str, fix: str) -> FitsReadError:
        """The :class:`FitsReadError` ``"{self}: {problem}; {fix}"`` (to be raised by the caller)."""
        msg = one_line(f"{self}: {problem}; {fix}")
        return FitsReadError(msg, path=self.path, hdu=self.hdu)
