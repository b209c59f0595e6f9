"""Mask bit planes in files (``MP_<NAME> = bit`` cards) <-> diffim's plane registry.

Planes are matched by *name*: a file whose bits are numbered differently is remapped on reading,
and plane names unknown to this process are registered (``mask_planes.add``). Set bits that no
``MP_`` card names become planes ``UNNAMED<bit>`` so nothing is lost or confused with another plane.
A mask with no ``MP_`` card at all is taken to use LSST's default bit order (the registry's).
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from diffim.tasks.image import MASK_DTYPE, mask_planes

from .errors import Source

__all__ = ["planes_from_header", "remap_mask", "mask_plane_cards", "planes_to_header"]


def planes_from_header(header: fits.Header, source: Source) -> dict[str, int] | None:
    """``{name: bit}`` from the ``MP_*`` cards of a header; None when there is none."""
    planes: dict[str, int] = {}
    for card in header.cards:
        key = card.keyword
        if not key.startswith("MP_"):
            continue
        value = card.value
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 64:
            problem = f"mask plane card {key} = {value!r} is not a bit number 0..63"
            raise source.error(problem, "fix the MP_* cards of the mask HDU")
        planes[key[3:]] = value
    return planes or None


def _register(name: str, source: Source) -> int:
    try:
        return mask_planes.add(name, f"from file {source.path}").bit
    except ValueError as exc:
        raise source.error(f"cannot use mask plane {name!r}: {exc}", "rename or drop that MP_ card") from None


def remap_mask(data: np.ndarray, planes: dict[str, int] | None, source: Source) -> np.ndarray:
    """Translate a file's bit planes to the registry's bits.

    Parameters
    ----------
    data : numpy.ndarray
        Integer mask as stored in the file.
    planes : dict or None
        The file's ``{name: bit}`` (from :func:`planes_from_header`); None means LSST's default order.
    source : Source
        The mask HDU, for error messages and the doc of newly registered planes.

    Returns
    -------
    numpy.ndarray
        New int32 array in the registry's bit numbering.
    """
    if planes is None:
        by_bit = {plane.bit: plane.name for plane in mask_planes}
    else:
        by_bit = {bit: name for name, bit in sorted(planes.items(), key=lambda item: item[1])}
        for name in by_bit.values():  # register every named plane, in the file's bit order
            _register(name, source)
    present = int(np.bitwise_or.reduce(data, axis=None)) if data.size else 0
    if data.dtype.kind == "i" and present < 0:  # sign bit set: look at the bit pattern
        present &= (1 << (8 * data.dtype.itemsize)) - 1
    moves: list[tuple[int, int]] = []
    for bit in range(8 * data.dtype.itemsize):
        if present >> bit & 1:
            name = by_bit.get(bit) or f"UNNAMED{bit}"
            moves.append((bit, _register(name, source)))
    if all(src == dst for src, dst in moves):  # registry bits are < 31, so nothing is cut off
        return data.astype(MASK_DTYPE, copy=False)  # same numbering (the common case)
    out = np.zeros(data.shape, dtype=MASK_DTYPE)
    for src, dst in moves:
        out |= (((data >> src) & 1).astype(MASK_DTYPE)) << np.int32(dst)
    return out


def mask_plane_cards() -> list[fits.Card]:
    """``MP_<NAME> = bit`` for every registered plane (HIERARCH for names past 8 characters, as LSST)."""
    cards = []
    for plane in mask_planes:
        key = f"MP_{plane.name}"
        cards.append(fits.Card(f"HIERARCH {key}" if len(key) > 8 else key, plane.bit))
    return cards


def planes_to_header(header: fits.Header) -> None:
    """Append :func:`mask_plane_cards` to ``header``."""
    header.extend(mask_plane_cards())
