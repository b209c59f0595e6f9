"""Registration check: the template and science images must share one pixel grid."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from astropy.wcs import WCS

from diffim.tasks.image import Exposure, MaskedImage
from diffim.tasks.registration import RegistrationError, check_registration


def _wcs(crpix: tuple[float, float] = (50.0, 40.0), rot_deg: float = 0.0, scale_arcsec: float = 0.2) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = list(crpix)
    c, s = np.cos(np.radians(rot_deg)), np.sin(np.radians(rot_deg))
    d = scale_arcsec / 3600.0
    w.wcs.cd = [[-d * c, d * s], [d * s, d * c]]
    return w


def _exp(shape: tuple[int, int] = (80, 100), xy0: tuple[int, int] = (0, 0), wcs: WCS | None = None) -> Exposure:
    return Exposure(image=np.zeros(shape), variance=np.ones(shape), xy0=xy0, wcs=wcs)


def test_same_grid_passes() -> None:
    check_registration(_exp(wcs=_wcs()), _exp(wcs=_wcs()))
    # a WCS offset well inside the tolerance (0.01 px) passes too
    check_registration(_exp(wcs=_wcs((50.01, 40.0))), _exp(wcs=_wcs()))
    # sub-images with the same parent box and a parent-coordinate WCS
    check_registration(_exp(xy0=(200, 300), wcs=_wcs()), _exp(xy0=(200, 300), wcs=_wcs()))


def test_wcs_shift_is_reported_with_its_size_and_the_fix() -> None:
    with pytest.raises(RegistrationError, match=r"WCSs disagree by 0\.2 px at science pixel .*tolerance_pix=0\.05.*reproject") as info:
        check_registration(_exp(wcs=_wcs((50.2, 40.0))), _exp(wcs=_wcs()))
    assert "\n" not in str(info.value)
    # a looser tolerance accepts it
    check_registration(_exp(wcs=_wcs((50.2, 40.0))), _exp(wcs=_wcs()), tolerance_pix=0.3)


def test_rotation_is_worst_at_a_corner() -> None:
    # 0.05 deg about CRPIX (50, 40): ~0.06 px at the far corner (99, 79), less elsewhere
    with pytest.raises(RegistrationError, match=r"disagree by 0\.05\d* px at science pixel \(99\.0, 79\.0\) \(worst of 25 test points"):
        check_registration(_exp(wcs=_wcs(rot_deg=0.05)), _exp(wcs=_wcs()), tolerance_pix=0.03)
    check_registration(_exp(wcs=_wcs(rot_deg=0.05)), _exp(wcs=_wcs()), tolerance_pix=0.1)


def test_template_not_covering_science() -> None:
    with pytest.raises(RegistrationError, match=r"template bounding box does not contain the science one \(template shape \(80, 90\).*science shape \(80, 100\).*resample the template onto the science grid"):
        check_registration(_exp((80, 90)), _exp((80, 100)))


def test_template_larger_than_science_says_to_cut_it() -> None:
    with pytest.raises(RegistrationError, match=r"larger than the science one.*template\[science\.getBBox\(\)\]"):
        check_registration(_exp((100, 120), xy0=(-10, -10)), _exp((80, 100)))


def test_same_shape_different_origin() -> None:
    with pytest.raises(RegistrationError, match=r"same shape but different origins .*xy0=\(5, 0\).*xy0=\(0, 0\)"):
        check_registration(_exp(xy0=(5, 0)), _exp())


def test_missing_wcs_checks_only_the_grid_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="diffim.tasks.registration")
    check_registration(_exp(wcs=_wcs((60.0, 40.0))), _exp())
    assert any("science has no WCS" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    # masked images and arrays have no WCS either; their grids still must match
    check_registration(MaskedImage(np.zeros((4, 5))), np.zeros((4, 5)))
    with pytest.raises(RegistrationError, match="does not contain"):
        check_registration(np.zeros((4, 5)), np.zeros((5, 5)))


@pytest.mark.parametrize(("kwargs", "match"), [({"tolerance_pix": 0.0}, "tolerance_pix must be"), ({"n_grid": 1}, "n_grid must be")])
def test_bad_options(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_registration(_exp(), _exp(), **kwargs)
