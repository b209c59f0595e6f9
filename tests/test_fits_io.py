"""FITS reading and writing of exposures: LSST layout, CCDData files, plain images, PSF stamps, errors."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from diffim.tasks.image import Box2I, Exposure, PhotoCalib, mask_planes
from diffim.tasks.io import FitsReadError, FitsReadWarning, read_exposure, read_psf_image, write_exposure
from diffim.tasks.psf.models import GaussianPsf, ImagePsf

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


@pytest.fixture
def real() -> Path:
    if not REAL.is_dir():
        pytest.skip(f"real data folder {REAL} is absent (it lives beside the repository, not in it)")
    return REAL


def make_wcs(crpix: tuple[float, float] = (30.5, 20.25)) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.1, 2.2]
    w.wcs.crpix = list(crpix)
    w.wcs.cd = [[-5.0e-5, 1.0e-6], [2.0e-6, 5.0e-5]]
    return w


def make_exposure(shape: tuple[int, int] = (40, 50), xy0: tuple[int, int] = (7, -3), dtype: type = np.float32) -> Exposure:
    rng = np.random.default_rng(1)
    image = rng.normal(100.0, 5.0, shape).astype(dtype)
    image[3, 4] = np.nan
    mask = np.zeros(shape, dtype=np.int32)
    mask[3, 4] = mask_planes.bitmask("NO_DATA")
    mask[10, :] |= mask_planes.bitmask("SAT")
    mask[:, 12] |= mask_planes.bitmask(["CR", "DETECTED_NEGATIVE"])
    variance = rng.uniform(20.0, 30.0, shape).astype(dtype)
    variance[3, 4] = np.inf
    meta = fits.Header()
    meta["EXPTIME"] = 30.0
    meta["DATE-OBS"] = "2024-01-02T03:04:05"
    meta["BUNIT"] = "adu"
    meta["HISTORY"] = "made by the test"
    return Exposure(
        image=image,
        mask=mask,
        variance=variance,
        xy0=xy0,
        wcs=make_wcs(),
        band="r",
        photoCalib=PhotoCalib.from_zero_point(27.5),
        metadata=meta,
    )


def assert_same_wcs(a: WCS, b: WCS) -> None:
    np.testing.assert_allclose(a.wcs.crpix, b.wcs.crpix, rtol=1e-12)
    np.testing.assert_allclose(a.wcs.crval, b.wcs.crval, rtol=1e-12)
    np.testing.assert_allclose(a.pixel_scale_matrix, b.pixel_scale_matrix, rtol=1e-12)
    assert list(a.wcs.ctype) == list(b.wcs.ctype)


def assert_one_line_error(excinfo: pytest.ExceptionInfo, *parts: str) -> None:
    message = str(excinfo.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)


# -- LSST layout: writing and round trips ------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lsst_round_trip_is_exact(tmp_path: Path, dtype: type) -> None:
    exp = make_exposure(dtype=dtype)
    path = write_exposure(exp, tmp_path / "exp.fits")
    back = read_exposure(path)
    assert back.image.dtype == dtype and back.variance.dtype == dtype
    for plane in ("image", "mask", "variance"):
        assert np.array_equal(getattr(back, plane).array, getattr(exp, plane).array, equal_nan=True), plane
    assert back.getXY0() == (7, -3)
    assert_same_wcs(back.wcs, exp.wcs)
    assert back.band == "r"
    assert back.photoCalib.zeroPoint == pytest.approx(27.5, abs=1e-12)
    assert back.metadata["EXPTIME"] == 30.0 and back.metadata["BUNIT"] == "adu"
    assert back.metadata["DATE-OBS"] == "2024-01-02T03:04:05"
    assert "made by the test" in str(back.metadata["HISTORY"])
    # a second round trip changes nothing, metadata included
    again = read_exposure(write_exposure(back, tmp_path / "again.fits"))
    assert list(again.metadata.keys()) == list(back.metadata.keys())
    assert again.maskedImage == back.maskedImage


def test_lsst_file_layout_and_wcs_convention(tmp_path: Path) -> None:
    exp = make_exposure()
    path = write_exposure(exp, tmp_path / "exp.fits")
    with fits.open(path) as hdul:
        assert hdul[0].header["NAXIS"] == 0
        assert [h.name for h in hdul[1:]] == ["IMAGE", "MASK", "VARIANCE"]
        assert [h.header["EXTTYPE"] for h in hdul[1:]] == ["IMAGE", "MASK", "VARIANCE"]
        assert hdul["MASK"].header["BITPIX"] == 32
        for plane in mask_planes:
            assert hdul["MASK"].header[f"MP_{plane.name}"] == plane.bit
        assert "HIERARCH MP_DETECTED_NEGATIVE" in repr(hdul["MASK"].header)
        assert hdul["IMAGE"].header["BUNIT"] == "adu"
        assert (hdul["IMAGE"].header["CRVAL1A"], hdul["IMAGE"].header["CRVAL2A"]) == (7, -3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            file_wcs = WCS(hdul["IMAGE"].header)
    # ds9/astropy on the file (array pixels) and exposure.wcs (parent pixels) see the same sky
    cols, rows = np.array([0.0, 10.0, 49.0]), np.array([0.0, 5.0, 39.0])
    np.testing.assert_allclose(
        file_wcs.pixel_to_world_values(cols, rows), exp.wcs.pixel_to_world_values(cols + 7, rows - 3), rtol=0, atol=1e-10
    )


def test_psf_is_written_and_read_back(tmp_path: Path) -> None:
    exp = make_exposure()
    stamp = np.outer([1.0, 3.0, 6.0, 3.0, 1.0], [1.0, 2.0, 4.0, 2.0, 1.0])
    exp.psf = ImagePsf(stamp)
    back = read_exposure(write_exposure(exp, tmp_path / "psf.fits"))
    assert isinstance(back.psf, ImagePsf)
    np.testing.assert_allclose(back.psf.array, stamp / stamp.sum(), rtol=1e-14)
    # an analytic PSF comes back as its kernel image
    exp.psf = GaussianPsf(11, 11, 1.5)
    back = read_exposure(write_exposure(exp, tmp_path / "gauss.fits"))
    np.testing.assert_allclose(back.psf.array, exp.psf.computeImage(), rtol=1e-12)


def test_sub_exposure_and_readfits_writefits(tmp_path: Path) -> None:
    exp = make_exposure()
    sub = exp[Box2I((10, 2), (20, 15))]  # a view, not contiguous
    sub.writeFits(tmp_path / "sub.fits")
    back = Exposure.readFits(tmp_path / "sub.fits")
    assert back.getXY0() == (10, 2) and back.getBBox() == Box2I((10, 2), (20, 15))
    assert np.array_equal(back.image.array, sub.image.array, equal_nan=True)
    # the WCS of a sub-image still maps the same parent pixel to the same sky position
    np.testing.assert_allclose(back.wcs.pixel_to_world_values(15.0, 9.0), exp.wcs.pixel_to_world_values(15.0, 9.0), atol=1e-10)


def test_write_refuses_to_overwrite_and_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exp = make_exposure()
    path = tmp_path / "exp.fits"
    write_exposure(exp, path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError) as excinfo:
        write_exposure(exp, path)
    assert_one_line_error(excinfo, str(path), "overwrite=True", "--clobber")
    exp.image.array[0, 0] = -1.0
    write_exposure(exp, path, overwrite=True)
    assert read_exposure(path).image.array[0, 0] == -1.0

    # a failure in the middle of writing leaves the old file intact and no temporary file
    def broken_writeto(self: fits.HDUList, fileobj: object, **kwargs: object) -> None:
        fileobj.write(b"SIMPLE  =                    T")  # type: ignore[attr-defined]
        msg = "disk full"
        raise OSError(msg)

    current = path.read_bytes()
    monkeypatch.setattr(fits.HDUList, "writeto", broken_writeto)
    with pytest.raises(OSError, match="disk full"):
        write_exposure(exp, path, overwrite=True)
    with pytest.raises(OSError, match="disk full"):
        write_exposure(exp, tmp_path / "new.fits")
    assert path.read_bytes() == current != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.fits"]


def test_written_file_gets_normal_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = write_exposure(make_exposure(), tmp_path / "mode.fits")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_write_errors() -> None:
    with pytest.raises(TypeError, match="needs an Exposure"):
        write_exposure(np.zeros((3, 3)), "x.fits")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_exposure(make_exposure(), "/nonexistent-dir-diffim/x.fits")


# -- LSST layout: files written by LSST or by hand ------------------------------------------------


def test_lsst_real_pair(real: Path) -> None:
    folder = real / "lsst_compare_to_hotpants"
    science = read_exposure(folder / "scienceMI.fits")
    # CRVAL1A = CRVAL2A = 9 with CRPIX1A = CRPIX2A = 1: array[0, 0] is parent (9, 9)
    assert science.getXY0() == (9, 9)
    assert science.getBBox().getMax() == (201, 201)
    assert science.image.dtype == np.float32
    assert not science.mask.array.any()
    assert float(science.variance.array.min()) == 100.0
    assert science.wcs is None
    for name in ("BAD", "SAT", "INTRP", "CR", "EDGE", "DETECTED", "DETECTED_NEGATIVE"):
        assert name in mask_planes
    # LSST's template: noiseless (variance 0 on the sky, accepted in LSST files), and its MASK HDU
    # claims another origin than its IMAGE HDU; the image's wins, as in afw
    with pytest.warns(FitsReadWarning, match=r"HDU 2 MASK.*\(9, 9\).*\(24, 24\)"):
        template = read_exposure(folder / "templateMI.fits")
    assert template.getXY0() == (24, 24)
    assert float(template.variance.array.min()) == 0.0


def _lsst_hdus(image: np.ndarray, mask: np.ndarray, variance: np.ndarray, mask_cards: dict[str, int], *, names: bool = True) -> fits.HDUList:
    hdus = [fits.PrimaryHDU()]
    for label, data in (("IMAGE", image), ("MASK", mask), ("VARIANCE", variance)):
        hdu = fits.ImageHDU(data)
        if names:
            hdu.header["EXTTYPE"] = label
        if label == "MASK":
            for key, bit in mask_cards.items():
                hdu.header[f"HIERARCH MP_{key}" if len(key) > 5 else f"MP_{key}"] = bit
        hdus.append(hdu)
    return fits.HDUList(hdus)


def test_lsst_mask_bits_are_remapped_by_name(tmp_path: Path) -> None:
    shape = (6, 7)
    raw = np.zeros(shape, dtype=np.uint16)  # written as int16 + BZERO 32768, like LSST's test files
    raw[1, 1] = 1 << 5  # SAT in this file
    raw[2, 2] = 1 << 0  # CR
    raw[3, 3] = 1 << 3  # a plane diffim does not know yet
    raw[4, 4] = 1 << 15  # a bit no card names
    path = tmp_path / "remap.fits"
    cards = {"CR": 0, "IOTEST_PLANE": 3, "SAT": 5}
    _lsst_hdus(np.ones(shape, np.float32), raw, np.ones(shape, np.float32), cards).writeto(path)
    with fits.open(path) as hdul:
        assert hdul[2].header["BZERO"] == 32768
    exp = read_exposure(path)
    assert exp.mask.plane("SAT")[1, 1] and exp.mask.plane("SAT").sum() == 1
    assert exp.mask.plane("CR")[2, 2] and exp.mask.plane("CR").sum() == 1
    assert "IOTEST_PLANE" in mask_planes and exp.mask.plane("IOTEST_PLANE")[3, 3]
    assert "from file" in next(p.doc for p in mask_planes if p.name == "IOTEST_PLANE")
    assert exp.mask.plane("UNNAMED15")[4, 4]
    assert int(np.count_nonzero(exp.mask.array)) == 4


def test_lsst_layout_found_by_position(tmp_path: Path) -> None:
    shape = (5, 5)
    path = tmp_path / "noname.fits"
    hdul = _lsst_hdus(np.full(shape, 2.0, np.float32), np.zeros(shape, np.int32), np.full(shape, 3.0, np.float32), {"BAD": 0}, names=False)
    hdul.writeto(path)
    exp = read_exposure(path)
    assert float(exp.variance.array[0, 0]) == 3.0 and float(exp.image.array[0, 0]) == 2.0


# -- CCDData ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["StdDevUncertainty", "VarianceUncertainty", "InverseVariance"])
def test_read_files_written_by_ccddata(tmp_path: Path, kind: str) -> None:
    from astropy import nddata

    rng = np.random.default_rng(3)
    data = rng.normal(10.0, 1.0, (12, 9))
    var = rng.uniform(1.0, 2.0, data.shape)
    stored = {"StdDevUncertainty": np.sqrt(var), "VarianceUncertainty": var, "InverseVariance": 1.0 / var}[kind]
    if kind == "InverseVariance":
        stored[0, 0] = 0.0  # zero weight: no data
    mask = np.zeros(data.shape, dtype=bool)
    mask[5, :] = True
    ccd = nddata.CCDData(data, unit="electron", uncertainty=getattr(nddata, kind)(stored), mask=mask, wcs=make_wcs())
    ccd.header["FILTER"] = "g"
    path = tmp_path / f"{kind}.fits"
    ccd.write(path)
    exp = read_exposure(path)
    assert np.array_equal(exp.image.array, data)
    expected = var.copy()
    if kind == "InverseVariance":
        expected[0, 0] = np.inf
        assert exp.mask.plane("NO_DATA")[0, 0]
    np.testing.assert_allclose(exp.variance.array, expected, rtol=1e-12)
    assert np.array_equal(exp.mask.plane("BAD"), mask)
    assert exp.metadata["BUNIT"] == "electron" and exp.band == "g"
    assert_same_wcs(exp.wcs, make_wcs())


def test_ccddata_interop_both_ways(tmp_path: Path) -> None:
    from diffim.tasks.io import exposure_from_ccddata, exposure_to_ccddata

    exp = make_exposure()
    ccd = exposure_to_ccddata(exp)
    assert ccd.data is exp.image.array or np.shares_memory(ccd.data, exp.image.array)
    assert type(ccd.uncertainty).__name__ == "VarianceUncertainty"
    assert np.array_equal(ccd.mask, exp.mask.plane(["BAD", "SAT", "INTRP", "CR", "EDGE", "SUSPECT", "NO_DATA"]))
    assert not ccd.mask[20, 30] and str(ccd.unit) == "adu"
    # CCDData's WCS is relative to the array
    np.testing.assert_allclose(ccd.wcs.pixel_to_world_values(0.0, 0.0), exp.wcs.pixel_to_world_values(7.0, -3.0), atol=1e-10)
    back = exposure_from_ccddata(ccd)
    assert back.maskedImage == exp.maskedImage  # full bit mask restored from flags + MP_ cards
    assert back.getXY0() == (7, -3) and back.band == "r"
    assert_same_wcs(back.wcs, exp.wcs)
    # through a file written by astropy: the boolean mask becomes BAD, the rest survives
    ccd.write(tmp_path / "ccd.fits")
    from_file = read_exposure(tmp_path / "ccd.fits")
    assert np.array_equal(from_file.image.array, exp.image.array, equal_nan=True)
    assert np.array_equal(from_file.mask.plane("BAD"), ccd.mask)
    assert from_file.getXY0() == (7, -3)
    assert_same_wcs(from_file.wcs, exp.wcs)
    assert from_file.photoCalib.zeroPoint == pytest.approx(27.5)


def test_ccddata_integer_mask(tmp_path: Path) -> None:
    data = np.random.default_rng(6).normal(size=(5, 6))
    flags = np.zeros(data.shape, dtype=np.int16)
    flags[1, 2] = 1 << 2  # SAT in this file
    flags[3, 4] = 1 << 0  # CR
    mask_hdu = fits.ImageHDU(flags, name="MASK")
    mask_hdu.header["MP_CR"] = 0
    mask_hdu.header["MP_SAT"] = 2
    unc = fits.ImageHDU(np.full(data.shape, 0.5), name="UNCERT")
    fits.HDUList([fits.PrimaryHDU(data), unc, mask_hdu]).writeto(tmp_path / "bits.fits")
    exp = read_exposure(tmp_path / "bits.fits")
    assert np.all(exp.variance.array == 0.25)  # no UTYPE: standard deviation, as astropy assumes
    assert exp.mask.plane("SAT")[1, 2] and exp.mask.plane("CR")[3, 4] and exp.mask.plane("SAT").sum() == 1
    del mask_hdu.header["MP_CR"], mask_hdu.header["MP_SAT"]
    fits.HDUList([fits.PrimaryHDU(data), mask_hdu]).writeto(tmp_path / "nobits.fits")
    exp = read_exposure(tmp_path / "nobits.fits")  # no names: nonzero means BAD
    assert np.array_equal(exp.mask.plane("BAD"), flags != 0) and not exp.mask.plane("SAT").any()


def test_ccddata_unknown_uncertainty_type(tmp_path: Path) -> None:
    path = tmp_path / "utype.fits"
    unc = fits.ImageHDU(np.ones((4, 4)), name="UNCERT")
    unc.header["UTYPE"] = "Nonsense"
    fits.HDUList([fits.PrimaryHDU(np.ones((4, 4))), unc]).writeto(path)
    with pytest.raises(FitsReadError) as excinfo:
        read_exposure(path)
    assert_one_line_error(excinfo, f"{path}[HDU 1 UNCERT]", "'Nonsense'", "VarianceUncertainty")


# -- plain images ----------------------------------------------------------------------------------


def _synthetic_frame(sky: float, gain: float, read_noise_e: float, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """A 200x200 frame with stars: (observed ADU, true variance ADU²)."""
    rng = np.random.default_rng(seed)
    ny = nx = 200
    y, x = np.mgrid[0:ny, 0:nx]
    model = np.full((ny, nx), sky)
    for cx, cy, flux in ((40, 50, 2e5), (120, 80, 5e5), (160, 160, 1e5), (70, 150, 3e5)):
        model += flux / (2 * np.pi * 2.0**2) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 2.0**2))
    electrons = rng.poisson(model * gain) + rng.normal(0.0, read_noise_e, model.shape)
    return (electrons / gain).astype(np.float32), model / gain + (read_noise_e / gain) ** 2


@pytest.mark.parametrize("subtract_sky", [False, True])
def test_plain_variance_from_gain_and_read_noise(tmp_path: Path, subtract_sky: bool) -> None:
    image, truth = _synthetic_frame(sky=1000.0, gain=2.0, read_noise_e=10.0)
    if subtract_sky:
        image = image - 1000.0
    header = fits.Header({"GAIN": 2.0, "RDNOISE": 10.0})
    path = tmp_path / "plain.fits"
    fits.PrimaryHDU(image, header).writeto(path)
    var = read_exposure(path).variance.array
    ratio = var / truth
    stars = truth > 2 * truth.min()
    assert abs(np.median(ratio[~stars]) - 1) < 0.05
    assert abs(np.median(ratio[stars]) - 1) < 0.05


def test_plain_variance_from_sky_noise(tmp_path: Path) -> None:
    image, truth = _synthetic_frame(sky=500.0, gain=1.5, read_noise_e=6.0, seed=9)
    path = tmp_path / "nogain.fits"
    fits.PrimaryHDU(image).writeto(path)
    var = read_exposure(path).variance.array
    assert np.ptp(var) == 0  # a constant sky variance
    assert abs(var[0, 0] / truth.min() - 1) < 0.05
    # gain= and read_noise= options stand in for missing cards
    with_gain = read_exposure(path, gain=1.5, read_noise=6.0).variance.array
    assert abs(np.median(with_gain / truth) - 1) < 0.05


def test_plain_variance_ignores_large_scale_sky_structure(tmp_path: Path) -> None:
    # a sky gradient of 200 ADU across the frame and a broad "galaxy": the whole-image MAD counts
    # them as noise (sigma ~ 60), the per-box MAD does not
    rng = np.random.default_rng(12)
    yy, xx = np.mgrid[:256, :320]
    sky = 1000.0 + 200.0 * xx / 320 + 300.0 * np.exp(-((xx - 200) ** 2 + (yy - 120) ** 2) / (2 * 40.0**2))
    image = (sky + rng.normal(0.0, 10.0, sky.shape)).astype(np.float32)
    path = tmp_path / "gradient.fits"
    fits.PrimaryHDU(image).writeto(path)
    var = read_exposure(path).variance.array
    assert np.sqrt(var[0, 0]) == pytest.approx(10.0, rel=0.05)


def test_plain_nan_saturation_and_header(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    image = rng.normal(100.0, 3.0, (30, 40)).astype(np.float32)
    image[1, 2] = np.nan
    image[5, 6] = 5000.0
    image[7, 8] = 2500.0
    primary = fits.PrimaryHDU()
    primary.header["FILTER"] = "i DECam SDSS c0003"
    primary.header["TELESCOP"] = "Blanco"
    ext = fits.ImageHDU(image, name="SCI")
    ext.header["SATURATE"] = 4000.0
    ext.header["MAGZPT"] = 30.0
    ext.header["EXPTIME"] = 90.0
    ext.header["CHECKSUM"] = "dummy"
    path = tmp_path / "plain.fits"
    fits.HDUList([primary, ext]).writeto(path)
    exp = read_exposure(path)
    assert np.isnan(exp.image.array[1, 2]) and exp.mask.plane("NO_DATA")[1, 2]
    assert np.isinf(exp.variance.array[1, 2]) and np.isfinite(exp.variance.array[0, 0])
    assert exp.mask.plane("SAT")[5, 6] and not exp.mask.plane("SAT")[7, 8]
    assert exp.band == "i" and exp.photoCalib.zeroPoint == pytest.approx(30.0)
    assert exp.metadata["TELESCOP"] == "Blanco" and exp.metadata["EXPTIME"] == 90.0
    assert "SATURATE" in exp.metadata and "MAGZPT" in exp.metadata
    for dropped in ("CHECKSUM", "NAXIS1", "EXTNAME", "BITPIX"):
        assert dropped not in exp.metadata
    assert read_exposure(path, saturation=2000.0).mask.plane("SAT").sum() == 2
    # ESATUR (saturation after sky subtraction) wins over SATURATE
    with fits.open(path, mode="update") as hdul:
        hdul[1].header["ESATUR"] = 2000.0
    assert read_exposure(path).mask.plane("SAT").sum() == 2
    assert read_exposure(path, hdu="SCI").getDimensions() == (40, 30)
    # plain -> LSST layout -> the same exposure
    exp = read_exposure(path)
    back = read_exposure(write_exposure(exp, tmp_path / "lsst.fits"))
    assert back.maskedImage == exp.maskedImage and back.band == "i"
    assert back.metadata["TELESCOP"] == "Blanco" and back.photoCalib.zeroPoint == pytest.approx(30.0)


@pytest.mark.parametrize(
    ("card", "value", "zero_point"),
    [("MAGZERO", 25.0, 25.0), ("MAGZPT", 26.0, 26.0), ("ZP", 27.0, 27.0), ("PHOTZP", 28.0, 28.0), ("FLUXMAG0", 1e12, 30.0)],
)
def test_photometric_calibration_cards(tmp_path: Path, card: str, value: float, zero_point: float) -> None:
    hdu = fits.PrimaryHDU(np.random.default_rng(1).normal(size=(8, 8)))
    hdu.header[card] = value
    hdu.writeto(tmp_path / "zp.fits")
    assert read_exposure(tmp_path / "zp.fits").photoCalib.zeroPoint == pytest.approx(zero_point, abs=1e-9)


def test_plain_uint16_saturates_at_type_maximum(tmp_path: Path) -> None:
    raw = np.full((20, 20), 8000, dtype=np.uint16)
    raw += np.random.default_rng(0).integers(0, 200, raw.shape, dtype=np.uint16)
    raw[3, 3] = 65535
    path = tmp_path / "camera.fit"
    fits.PrimaryHDU(raw).writeto(path)  # astropy stores uint16 as int16 + BZERO 32768
    exp = read_exposure(path)
    assert exp.image.dtype == np.float32 and exp.image.array[3, 3] == 65535.0
    assert exp.mask.plane("SAT").sum() == 1 and exp.mask.plane("SAT")[3, 3]
    assert read_exposure(path, saturation=1e6).mask.plane("SAT").sum() == 0


def test_noise_weight_and_variance_maps(tmp_path: Path) -> None:
    shape = (10, 12)
    image = np.random.default_rng(4).normal(0.0, 1.0, shape).astype(np.float32)
    noise = np.full(shape, 0.5, dtype=np.float32)
    fits.PrimaryHDU(image).writeto(tmp_path / "img.fits")
    fits.PrimaryHDU(noise).writeto(tmp_path / "img.noise.fits")
    assert np.all(read_exposure(tmp_path / "img.fits", noise=tmp_path / "img.noise.fits").variance.array == 0.25)
    weight = np.full(shape, 4.0)
    weight[2, 3] = 0.0
    exp = read_exposure(tmp_path / "img.fits", weight=weight)
    assert exp.variance.array[0, 0] == 0.25 and np.isinf(exp.variance.array[2, 3])
    assert exp.mask.plane("NO_DATA")[2, 3] and exp.mask.plane("NO_DATA").sum() == 1
    assert np.all(read_exposure(tmp_path / "img.fits", variance=np.full(shape, 2.0)).variance.array == 2.0)
    with pytest.raises(ValueError, match="at most one of"):
        read_exposure(tmp_path / "img.fits", noise=noise, weight=weight)
    with pytest.raises(FitsReadError) as excinfo:
        read_exposure(tmp_path / "img.fits", noise=np.ones((3, 3)))
    assert_one_line_error(excinfo, "<noise array>", "(3, 3)", "(10, 12)")
    zero_noise = noise.copy()
    zero_noise[4, 5] = 0.0
    fits.PrimaryHDU(zero_noise).writeto(tmp_path / "zero.noise.fits")
    with pytest.raises(FitsReadError) as excinfo:
        read_exposure(tmp_path / "img.fits", noise=tmp_path / "zero.noise.fits")
    assert_one_line_error(excinfo, f"{tmp_path / 'zero.noise.fits'}[HDU 0 PRIMARY]", "zero", "x=5, y=4", "invalid_variance='flag'")
    flagged = read_exposure(tmp_path / "img.fits", noise=tmp_path / "zero.noise.fits", invalid_variance="flag")
    assert flagged.mask.plane("NO_DATA")[4, 5] and np.isinf(flagged.variance.array[4, 5])


def test_bad_options(tmp_path: Path) -> None:
    fits.PrimaryHDU(np.ones((5, 5))).writeto(tmp_path / "a.fits")
    with pytest.raises(ValueError, match="layout must be one of"):
        read_exposure(tmp_path / "a.fits", layout="fancy")
    with pytest.raises(ValueError, match="gain must be a finite number > 0"):
        read_exposure(tmp_path / "a.fits", gain=0)
    with pytest.raises(ValueError, match="invalid_variance"):
        read_exposure(tmp_path / "a.fits", invalid_variance="ignore")
    written = write_exposure(make_exposure(), tmp_path / "lsst.fits")
    with pytest.raises(ValueError, match="does not apply to LSST-layout"):
        read_exposure(written, layout="lsst", hdu=1)
    assert read_exposure(written, hdu="VARIANCE").image.array[0, 0] == make_exposure().variance.array[0, 0]


# -- PSF stamps ------------------------------------------------------------------------------------


def test_read_psf_image(tmp_path: Path) -> None:
    profile = np.exp(-0.5 * (np.arange(-4, 5) / 1.3) ** 2)
    stamp = np.outer(profile, profile).astype(np.float32)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(stamp, name="PSF")]).writeto(tmp_path / "psf.fits")
    psf = read_psf_image(tmp_path / "psf.fits")
    assert isinstance(psf, ImagePsf)
    np.testing.assert_allclose(psf.array, stamp / stamp.sum(), rtol=1e-6)
    assert read_psf_image(tmp_path / "psf.fits", hdu="PSF").array.shape == (9, 9)


def test_real_jwst_example(real: Path) -> None:
    folder = real / "sfft_jwst_nircam_a2744"
    stem = "jw01324001001-01324-o001_t001_nircam_clear-f200w_i2d_stamp"
    psf = read_psf_image(folder / f"{stem}.WebbPSF.fits")
    assert psf.array.shape == (205, 205) and psf.array.sum() == pytest.approx(1.0)
    exp = read_exposure(folder / f"{stem}.fits", noise=folder / f"{stem}.noise.fits", psf=folder / f"{stem}.WebbPSF.fits")
    noise = fits.getdata(folder / f"{stem}.noise.fits")
    nan = np.isnan(exp.image.array)
    assert nan.sum() == 5 and np.array_equal(exp.mask.plane("NO_DATA"), nan)
    np.testing.assert_allclose(exp.variance.array[~nan], noise[~nan].astype(np.float32) ** 2, rtol=1e-6)
    assert exp.band == "F200W" and exp.metadata["BUNIT"] == "MJy/sr" and exp.wcs is not None
    assert isinstance(exp.psf, ImagePsf)
    # the other epoch's noise map has one negative pixel (a resampling artefact at x=895, y=569)
    other = "jw02561001002-02561-o001_t003_nircam_clear-f200w_i2d_stamp"
    with pytest.raises(FitsReadError) as excinfo:
        read_exposure(folder / f"{other}.fits", noise=folder / f"{other}.noise.fits")
    assert_one_line_error(excinfo, f"{other}.noise.fits[HDU 0 ERR]", "1 pixel(s)", "x=895, y=569")
    flagged = read_exposure(folder / f"{other}.fits", noise=folder / f"{other}.noise.fits", invalid_variance="flag")
    assert flagged.mask.plane("NO_DATA").sum() == 1 and flagged.mask.plane("NO_DATA")[569, 895]


def test_real_decam_and_eso_frames(real: Path) -> None:
    decam = real / "sfft_decam_mini" / "DEC-OBS04a.mini.fits"
    exp = read_exposure(decam)
    assert exp.band == "i" and exp.image.dtype == np.float64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        original = WCS(fits.getheader(decam))
    np.testing.assert_allclose(exp.wcs.pixel_to_world_values(100.0, 50.0), original.pixel_to_world_values(100.0, 50.0), atol=1e-10)
    # sky-subtracted (sky ~0, GAIN 3.98): the sky variance is the measured one, ~(33 ADU)²
    assert 25.0**2 < float(np.median(exp.variance.array)) < 40.0**2
    assert "GAIN" in exp.metadata and "CD1_1" not in exp.metadata and "PV1_1" not in exp.metadata
    eso = read_exposure(real / "properimage_eso085-030" / "aligned_eso085-030-004.fit")
    raw = fits.getdata(real / "properimage_eso085-030" / "aligned_eso085-030-004.fit")
    assert eso.mask.plane("SAT").sum() == np.count_nonzero(raw == 65535) > 0


# -- bad input: one line naming the file, the HDU and the problem --------------------------------


def test_missing_extension_and_mismatched_shapes(tmp_path: Path) -> None:
    img = fits.ImageHDU(np.random.default_rng(8).normal(size=(4, 4)).astype(np.float32), name="IMAGE")
    msk = fits.ImageHDU(np.zeros((4, 4), np.int32), name="MASK")
    fits.HDUList([fits.PrimaryHDU(), img, msk]).writeto(tmp_path / "two.fits")
    with pytest.raises(FitsReadError) as excinfo:
        read_exposure(tmp_path / "two.fits")
    assert_one_line_error(excinfo, str(tmp_path / "two.fits"), "without a VARIANCE HDU", "layout='plain'")
    var = fits.ImageHDU(np.ones((4, 5), np.float32), name="VARIANCE")
    fits.HDUList([fits.PrimaryHDU(), img.copy(), msk.copy(), var]).writeto(tmp_path / "shape.fits")
    with pytest.raises(FitsReadError) as excinfo:
        read_exposure(tmp_path / "shape.fits")
    assert_one_line_error(excinfo, "[HDU 3 VARIANCE]", "(4, 5)", "(4, 4)")
    assert read_exposure(tmp_path / "two.fits", layout="plain").getDimensions() == (4, 4)


def test_bad_variance_in_lsst_file(tmp_path: Path) -> None:
    exp = make_exposure()
    exp.variance.array[20, 30] = -1.0
    path = write_exposure(exp, tmp_path / "neg.fits")
    with pytest.raises(FitsReadError) as excinfo:
        read_exposure(path)
    assert_one_line_error(excinfo, "[HDU 3 VARIANCE]", "negative -1.0", "x=37, y=17")
    flagged = read_exposure(path, invalid_variance="flag")
    assert flagged.mask.plane("NO_DATA")[20, 30]


def test_non_numeric_all_nan_and_not_an_image(tmp_path: Path) -> None:
    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=np.ones(3))], name="CAT")
    fits.HDUList([fits.PrimaryHDU(np.ones((3, 3))), table]).writeto(tmp_path / "table.fits")
    with pytest.raises(FitsReadError) as excinfo:
        read_exposure(tmp_path / "table.fits", hdu="CAT")
    assert_one_line_error(excinfo, "[HDU 1 CAT]", "table")
    fits.HDUList([fits.PrimaryHDU(), table.copy()]).writeto(tmp_path / "onlytable.fits")
    with pytest.raises(FitsReadError) as excinfo:
        read_exposure(tmp_path / "onlytable.fits")
    assert_one_line_error(excinfo, "no HDU with a 2-D image")
    fits.PrimaryHDU(np.full((6, 6), np.nan, np.float32)).writeto(tmp_path / "nan.fits")
    with pytest.raises(FitsReadError) as excinfo:
        read_exposure(tmp_path / "nan.fits")
    assert_one_line_error(excinfo, "[HDU 0 PRIMARY]", "no finite pixel")
    fits.PrimaryHDU(np.ones((2, 6, 6))).writeto(tmp_path / "cube.fits")
    with pytest.raises(FitsReadError) as excinfo:
        read_exposure(tmp_path / "cube.fits")
    assert_one_line_error(excinfo, "3-D")
    with pytest.raises(FitsReadError) as excinfo:
        read_exposure(tmp_path / "nan.fits", hdu=3)
    assert_one_line_error(excinfo, "no HDU 3", "0 PRIMARY")


def test_truncated_empty_and_not_fits_files(tmp_path: Path) -> None:
    path = write_exposure(make_exposure(shape=(100, 100)), tmp_path / "whole.fits")
    data = path.read_bytes()
    (tmp_path / "half.fits").write_bytes(data[: len(data) // 2])
    with pytest.raises(FitsReadError) as excinfo:
        read_exposure(tmp_path / "half.fits")
    assert_one_line_error(excinfo, f"{tmp_path / 'half.fits'}[HDU 2 MASK]", "truncated", str(len(data) // 2))
    (tmp_path / "cut_header.fits").write_bytes(data[: 2880 + 1000])
    with pytest.raises(FitsReadError, match="truncated|not a readable FITS"):
        read_exposure(tmp_path / "cut_header.fits")
    (tmp_path / "text.fits").write_text("hello\n" * 100)
    with pytest.raises(FitsReadError) as excinfo:
        read_exposure(tmp_path / "text.fits")
    assert_one_line_error(excinfo, str(tmp_path / "text.fits"), "not a readable FITS file")
    (tmp_path / "empty.fits").write_bytes(b"")
    with pytest.raises(FitsReadError, match="not a readable FITS file"):
        read_exposure(tmp_path / "empty.fits")
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_exposure(tmp_path / "missing.fits")


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        (np.ones((4, 5)), "5x4: an even size"),
        (np.array([[1.0, -2.0, 1.0]] * 3), "sums to 0.0"),
        (np.array([[0.0, np.nan, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]), "NaN/inf"),
    ],
)
def test_bad_psf_stamps(tmp_path: Path, stamp: np.ndarray, expected: str) -> None:
    path = tmp_path / "psf.fits"
    fits.PrimaryHDU(stamp).writeto(path)
    with pytest.raises(FitsReadError) as excinfo:
        read_psf_image(path)
    assert_one_line_error(excinfo, f"{path}[HDU 0 PRIMARY]", expected)
    fits.PrimaryHDU(np.arange(25.0).reshape(5, 5)).writeto(tmp_path / "img.fits")
    with pytest.raises(FitsReadError, match=expected.split(":")[0].replace("(", r"\(")):
        read_exposure(tmp_path / "img.fits", psf=path)


def test_bad_mask_plane_card(tmp_path: Path) -> None:
    shape = (4, 4)
    hdul = _lsst_hdus(np.ones(shape, np.float32), np.zeros(shape, np.int32), np.ones(shape, np.float32), {"BAD": 0})
    hdul[2].header["MP_SAT"] = "one"
    hdul.writeto(tmp_path / "mp.fits")
    with pytest.raises(FitsReadError) as excinfo:
        read_exposure(tmp_path / "mp.fits")
    assert_one_line_error(excinfo, "[HDU 2 MASK]", "MP_SAT = 'one'")
