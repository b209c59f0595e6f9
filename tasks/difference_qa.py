"""Quality assessment of a difference image: its detections, associated and counted.

:class:`~diffim.tasks.imagePsfMatch.ImagePsfMatchTask` (``doQa``) detects sources on the
difference (both signs, :func:`detect_and_associate`), tags each with the nearest template and
science source (:func:`associate`) and counts them as LSST's ``NFalsePositives*`` metadata keys
(:func:`count_false_positives`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from diffim.framework.struct import Struct

__all__ = ["associate", "count_false_positives", "detect_and_associate"]


def detect_and_associate(difference: Any, template: Any, science: Any, result: Struct, *, threshold: float,
                         reuse: bool, radius: float) -> Any:
    """Sources at ``threshold`` sigma on the difference, with ``refMatchId`` and ``srcMatchId``.

    Parameters
    ----------
    difference, template, science : Exposure or MaskedImage
        The difference and the two images it was made from.
    result : Struct
        The matching result: ``psfInfo``, ``convolveTemplate``, ``referenceSources`` and
        ``convolvedSources`` (detection catalogs of the two images, or None).
    threshold : float
        Detection threshold (sigma) on the difference, and on the images when their catalogs
        are detected here.
    reuse : bool
        Whether the matching's catalogs were detected at ``threshold`` and can be used as they
        are (those that are None are detected here).
    radius : float
        Association radius (pixels).

    Returns
    -------
    astropy.table.Table
        The difference sources; ``refMatchId``/``srcMatchId`` are the id of the template/science
        source within ``radius`` (0 for none).
    """
    from .detection import detect_sources

    info = result.psfInfo
    ref_info = info.science if result.convolveTemplate else info.template
    dia = detect_sources(difference, threshold=threshold, polarity="both", background=0.0,
                         smooth_fwhm=ref_info.fwhm)
    # reuse the selection's catalogs (same threshold) when it has them
    reused = {"science": result.referenceSources, "template": result.convolvedSources}
    if not result.convolveTemplate:
        reused = {"template": result.referenceSources, "science": result.convolvedSources}
    if not reuse:
        reused = {}
    catalogs = {}
    for label, image, psf_info in (("template", template, info.template), ("science", science, info.science)):
        catalog = reused.get(label)
        if catalog is None:
            catalog = detect_sources(image, threshold=threshold, smooth_fwhm=psf_info.fwhm, set_mask=False)
        catalogs[label] = catalog
    dia["refMatchId"] = associate(dia, catalogs["template"], radius)
    dia["srcMatchId"] = associate(dia, catalogs["science"], radius)
    return dia


def count_false_positives(dia: Any, ignore_flagged: bool) -> dict[str, int]:
    """The ``NFalsePositives<Total|RefAssociated|SrcAssociated|Unassociated>`` counts of ``dia``.

    With ``ignore_flagged`` (``qaIgnoreFlagged``) the sources flagged saturated, masked or at the
    edge are not counted.
    """
    counted = np.ones(len(dia), dtype=bool)
    if ignore_flagged and len(dia):
        for flag in ("flag_saturated", "flag_masked", "flag_edge"):
            counted &= ~np.asarray(dia[flag], dtype=bool)
    ref = (np.asarray(dia["refMatchId"]) > 0)[counted]
    src = (np.asarray(dia["srcMatchId"]) > 0)[counted]
    return {
        "NFalsePositivesTotal": int(counted.sum()),
        "NFalsePositivesRefAssociated": int(ref.sum()),
        "NFalsePositivesSrcAssociated": int(src.sum()),
        "NFalsePositivesUnassociated": int((~ref & ~src).sum()),
    }


def associate(sources: Any, catalog: Any, radius: float) -> np.ndarray:
    """Id (``id`` column, else row number + 1) of the nearest catalog source within ``radius``, else 0."""
    from scipy.spatial import cKDTree

    out = np.zeros(len(sources), dtype=np.int64)
    if len(sources) == 0 or catalog is None or len(catalog) == 0:
        return out
    tree = cKDTree(np.column_stack([np.asarray(catalog["x"], float), np.asarray(catalog["y"], float)]))
    dist, index = tree.query(np.column_stack([np.asarray(sources["x"], float), np.asarray(sources["y"], float)]),
                             distance_upper_bound=radius)
    hit = np.isfinite(dist)
    ids = np.asarray(catalog["id"], dtype=np.int64) if "id" in catalog.colnames else np.arange(1, len(catalog) + 1)
    out[hit] = ids[index[hit]]
    return out
