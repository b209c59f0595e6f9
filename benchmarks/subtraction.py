"""Subtraction accuracy benchmark: ``ImagePsfMatchTask.subtractExposures`` scored against the truth.

Synthetic variants (``../shared/bench/make_pair.py``, scored by ``../shared/bench/score_diff.py``,
whose docstring defines every metric) and the real pairs of ``../shared/data/real/``::

    python benchmarks/subtraction.py                      # 2048² variants + real pairs (~6 min)
    python benchmarks/subtraction.py --size 512 --nstars 200   # quick run (~40 s)
    python benchmarks/subtraction.py --variants default,gauss --psf both --json out.json
    python benchmarks/subtraction.py --variants gauss -c kernel.active.spatialBgOrder=1 --decorrelation off

Variants (issue 5, "Accuracy"): ``default`` (Moffat β=3 pair), ``gauss`` (Gaussian PSFs),
``beta2.5`` (heavier Moffat wings), ``shift0.3`` (science shifted 0.3 px in x), ``badcols3`` (NaN
columns, the default pair otherwise: same stars and noise), ``masked`` (the default pair with
three BAD columns reading 0, a BAD template column segment and 100 cosmic-ray hits per megapixel of
+3000 ADU flagged CR: masked pixels carry garbage), ``broadtemplate`` (template FWHM 4.5 px, science 3.0-3.6
px: ``auto`` convolves the science image).

Each variant is read with ``diffim.tasks.io.read_exposure`` (variance: make_pair's model maps,
``--variance truth``, or estimated from GAIN/RDNOISE, ``--variance image``). The files carry no PSF,
so the task estimates both PSFs (``--psf estimated``, the realistic case); ``--psf given`` passes
the truth instead (template: an ``ImagePsf`` of the pixel-integrated truth profile; science: a
``GridImagePsf`` of truth stamps on a 5×5 grid). Each case runs twice, ``doDecorrelation`` off
(score_diff's ``[model]`` RMS assumes the undecorrelated noise: use it from that row) and on.

Per row: kernel sum (the science/template flux ratio: ``spatialKernelSum``, or its inverse when the
science is convolved) and its error, the implied scale (score_diff (a)), residual RMS medians
(model- and self-normalised; all stars S/N≥20 and bright S/N≥200), transient S/N efficiency
(median, and minimum over unblended transients), false positives at 5σ, the background noise ratio,
the task's metadata (mode, nGoodCandidates, NFalsePositives*) and the run time of
``subtractExposures``. An ``ideal`` row (science minus its noiseless static model: what a perfect
subtraction gives on this noise realisation) is scored for each variant.

Caveat for ``broadtemplate`` (and every ``convolveScience`` row): the difference has the
*template* PSF and noise ``η·V_S + r²·V_T``, while score_diff assumes the template was convolved:
the science PSF and ``V_S + r²·η·V_T``. Its ``[model]`` RMS and transient S/N "ideal" do not
apply, and neither does its ``[self]`` RMS: that only rescales the same assumed variance map by
the background noise ratio, which fixes its level but not its shape around stars (the kernel's
``η`` is on the wrong image). The meaningful RMS of these rows is the one against the task's own
variance plane, column "rms task" (``nrms_task``), and it is the one ``check_row`` judges them by.
The implied scale and the kernel sum apply as for the other variants.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.stats import sigma_clipped_stats
from diffim.tasks import ImagePsfMatchTask
from diffim.tasks.image import Exposure
from diffim.tasks.io import read_exposure

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
BENCH = SHARED / "bench"
REAL = SHARED / "data" / "real"

#: variant name -> make_pair options (``masked`` reuses the default pair and masks it).
VARIANTS: dict[str, list[str]] = {
    "default": [],
    "gauss": ["--psf", "gauss"],
    "beta2.5": ["--beta", "2.5"],
    "shift0.3": ["--shift-x", "0.3"],
    "badcols3": ["--bad-columns", "3"],
    "masked": [],
    "broadtemplate": ["--tfwhm", "4.5", "--sfwhm", "3.0"],
}

#: Targets of issue 5 (Gaussian kernel-sum target; Moffat: no worse than HOTPANTS' -1.2 %).
TARGETS = {"nrms": 1.03, "nrms_bright": 1.05, "scale": 0.003, "ksum_gauss": 0.003, "ksum_moffat": 0.012,
           "snr": 0.90, "fp": 10, "robust": 0.02}


def _load(name: str) -> ModuleType:
    """Import a bench script by path (they are not packages)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    if spec is None or spec.loader is None:
        msg = f"cannot import {BENCH / (name + '.py')}; is ../shared next to the repository?"
        raise FileNotFoundError(msg)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------ synthetic pairs
def make_variant(name: str, size: int, workdir: Path, nstars: int = 0) -> Path:
    """Generate the make_pair files of a variant (cached in ``workdir``); returns the folder."""
    base = "default" if name == "masked" else name
    outdir = workdir / f"{base}_{size}_{nstars or 'n'}"
    if not (outdir / "truth.json").exists():
        with contextlib.redirect_stdout(io.StringIO()):
            _load("make_pair").main(["--outdir", str(outdir), "--size", str(size), "--nstars", str(nstars),
                                     "--write-models", *VARIANTS[base]])
    return outdir


def _truth_psfs(truth: dict[str, Any]) -> tuple[Any, Any]:
    """The truth PSFs as diffim models: template ImagePsf, science GridImagePsf (5×5 nodes)."""
    from diffim.tasks.psf import GridImagePsf, ImagePsf

    mp = _load("make_pair")
    ny, nx = truth["shape"]
    tp, sp = truth["psf_template"], truth["psf_science"]
    radius = math.ceil(5 * max(tp["fwhm"], sp["fwhm0"] * (1 + sp["fwhm_grad"])))
    _, _, stamp = mp.psf_stamp(0.0, 0.0, tp["fwhm"], 0.0, 0.0, tp["model"], tp["beta"], radius)
    template_psf = ImagePsf(stamp)
    xs = np.linspace(0, nx - 1, 5)
    ys = np.linspace(0, ny - 1, 5)
    stamps = np.empty((5, 5, 2 * radius + 1, 2 * radius + 1))
    for j, y in enumerate(ys):
        for i, x in enumerate(xs):
            fw, e, th = mp.science_psf_params(sp, x, y, nx, ny)
            stamps[j, i] = mp.psf_stamp(0.0, 0.0, fw, e, th, sp["model"], sp["beta"], radius)[2]
    return template_psf, GridImagePsf(stamps, xs, ys)


def _add_masks(template: Exposure, science: Exposure, seed: int = 7) -> None:
    """The ``masked`` variant: BAD columns reading 0, a BAD template segment, CR hits of +3000 ADU (100/Mpix)."""
    rng = np.random.default_rng(seed)
    ny, nx = science.image.array.shape
    bad = np.zeros((ny, nx), dtype=bool)
    for column in rng.choice(np.arange(50, nx - 50), size=3, replace=False):
        bad[int(rng.integers(0, ny // 2)):, column] = True
    science.image.array[bad] = 0.0
    science.mask.set_plane("BAD", bad)
    cr = np.zeros((ny, nx), dtype=bool)
    n_cr = round(100 * nx * ny / 1e6)  # 100 hits per megapixel
    cr[rng.integers(0, ny, n_cr), rng.integers(0, nx, n_cr)] = True
    science.image.array[cr] += 3000.0
    science.mask.set_plane("CR", cr)
    tbad = np.zeros((ny, nx), dtype=bool)
    tbad[: ny // 3, int(rng.integers(50, nx - 50))] = True
    template.image.array[tbad] = 0.0
    template.mask.set_plane("BAD", tbad)


def read_variant(name: str, outdir: Path, variance: str, psf: str) -> tuple[Exposure, Exposure, dict[str, Any]]:
    """Template, science and truth of a variant, read with ``read_exposure``."""
    truth = json.loads((outdir / "truth.json").read_text())
    options: dict[str, dict[str, Any]] = {"template": {}, "science": {}}
    if variance == "truth":
        for label, option in options.items():
            option["variance"] = outdir / f"{label}_var.fits"
    if psf == "given":
        options["template"]["psf"], options["science"]["psf"] = _truth_psfs(truth)
    template = read_exposure(outdir / "template.fits", **options["template"])
    science = read_exposure(outdir / "science.fits", **options["science"])
    if name == "masked":
        _add_masks(template, science)
    return template, science, truth


def score(diff: np.ndarray, outdir: Path, kernel_sum: float | None, mask: np.ndarray | None,
          tag: str) -> dict[str, Any]:
    """score_diff.py on a difference array (``mask``: extra bad pixels, e.g. BAD/CR planes)."""
    path = outdir / f"diff_{tag}.fits"
    fits.writeto(path, np.asarray(diff, dtype=np.float32), overwrite=True)
    argv = [str(path), str(outdir / "truth.json"), "--out", str(outdir / f"score_{tag}.json")]
    if kernel_sum is not None:
        argv += ["--kernel-sum", repr(float(kernel_sum))]
    if mask is not None and mask.any():
        fits.writeto(outdir / f"mask_{tag}.fits", mask.astype(np.uint8), overwrite=True)
        argv += ["--mask", str(outdir / f"mask_{tag}.fits")]
    with contextlib.redirect_stdout(io.StringIO()):
        _load("score_diff").main(argv)
    return json.loads((outdir / f"score_{tag}.json").read_text())


def _summary(s: dict[str, Any]) -> dict[str, Any]:
    """The score_diff figures the tables show."""
    unblended = [t["snr"] / t["snr_expected"] for t in s.get("c_transients", []) if not t["blended"]]
    return {
        "implied_scale": s["a_implied_scale_median"],
        "nrms_model": s["a_nrms_model_median"], "nrms_model_bright": s["a_nrms_model_bright_median"],
        "nrms_self": s["a_nrms_self_median"], "nrms_self_bright": s["a_nrms_self_bright_median"],
        "snr_eff_median": s.get("c_snr_efficiency_median"),
        "snr_eff_min_unblended": min(unblended) if unblended else None,
        "snr_eff_unblended": unblended,
        "fp": s["d_false_positives"], "transients_detected": s["d_transients_detected"],
        "bg_sigma_ratio": s["bg_sigma_ratio"], "bg_offset_sigma": s["bg_offset_sigma"],
        "bg_box_rms_sigma": s["bg_box_rms_sigma"], "n_stars": s["a_n_stars"], "n_bright": s["a_n_bright"],
    }


def nrms_against(diff: np.ndarray, variance: np.ndarray, truth: dict[str, Any], bad: np.ndarray | None = None,
                 border: int = 40) -> dict[str, Any]:
    """score_diff's per-star normalised RMS (a), but against ``variance`` (e.g. the task's variance plane).

    Same stars (static, unsaturated, 15 px inside the border, science S/N >= 20; bright: >= 200), same
    aperture (1.5 FWHM), a star skipped when its aperture has a bad (non-finite or ``bad``) pixel.
    """
    ny, nx = truth["shape"]
    cols = truth["stars_columns"]
    stars = {c: np.array([row[i] for row in truth["stars"]]) for i, c in enumerate(cols)}
    noise = truth["noise"]["science"]
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(diff) & np.isfinite(variance) & (variance > 0)
    if bad is not None:
        ok &= ~bad
    fw_all = stars["fwhm_sci"]
    snr = stars["flux_science"] / np.sqrt(4 * math.pi * (fw_all / 2.3548) ** 2 * noise["sky_sigma_adu"] ** 2
                                          + stars["flux_science"] / noise["gain"])
    x_all, y_all = stars["x"], stars["y"]
    use = (~stars["variable"].astype(bool)) & (~stars["saturated"].astype(bool)) & (snr >= 20)
    use &= (x_all > border + 15) & (x_all < nx - border - 16) & (y_all > border + 15) & (y_all < ny - border - 16)
    values, bright = [], []
    for k in np.nonzero(use)[0]:
        x, y, r = x_all[k], y_all[k], 1.5 * fw_all[k]
        i0, i1 = math.floor(y - r), math.ceil(y + r) + 1
        j0, j1 = math.floor(x - r), math.ceil(x + r) + 1
        yy, xx = np.mgrid[i0:i1, j0:j1]
        aperture = (xx - x) ** 2 + (yy - y) ** 2 <= r * r
        if not ok[i0:i1, j0:j1][aperture].all():
            continue
        d, v = diff[i0:i1, j0:j1][aperture], variance[i0:i1, j0:j1][aperture]
        value = math.sqrt(float(np.mean(d * d / v)))
        values.append(value)
        if snr[k] >= 200:
            bright.append(value)
    return {"median": float(np.median(values)) if values else None,
            "bright": float(np.median(bright)) if bright else None}


def ideal_row(name: str, outdir: Path, science: Exposure, truth: dict[str, Any]) -> dict[str, Any]:
    """Science minus its noiseless static model (variables and transients stay): the best possible."""
    model = fits.getdata(outdir / "science_model_static.fits").astype(np.float64)
    diff = science.image.array.astype(np.float64) - model
    mask = _extra_mask(science) if name == "masked" else None
    s = score(diff, outdir, None, mask, f"ideal_{name}")
    return {"variant": name, "psf": "-", "decorrelation": "-", "mode": "ideal", "kernel_sum": truth["photometric_ratio"],
            **_summary(s)}


def _extra_mask(exposure: Any) -> np.ndarray:
    """BAD and CR pixels (the ``masked`` variant's injected planes) as a boolean array."""
    return exposure.mask.plane(["BAD", "CR"])


def run_case(name: str, template: Exposure, science: Exposure, truth: dict[str, Any], outdir: Path, *,
             psf: str, decorrelation: bool, overrides: list[str]) -> dict[str, Any]:
    """One subtraction, scored: a table row."""
    config = ImagePsfMatchTask.ConfigClass()
    config.doDecorrelation = decorrelation
    if overrides:
        config.override(*overrides)
    task = ImagePsfMatchTask(config=config)
    start = time.perf_counter()
    result = task.subtractExposures(template, science)
    seconds = time.perf_counter() - start
    md = task.metadata
    ratio = md["photometricRatio"]
    diff = result.subtractedExposure
    mask = _extra_mask(diff) if name == "masked" else None
    tag = f"{name}_{psf}_{'dec' if decorrelation else 'raw'}"
    s = score(diff.image.array, outdir, ratio, mask, tag)
    true_ratio = truth["photometric_ratio"]
    image = np.asarray(diff.image.array, dtype=np.float64)
    task_rms = nrms_against(image, np.asarray(diff.variance.array, dtype=np.float64), truth, mask)
    noise_free_scale = None
    if not decorrelation and md["mode"] == "convolveTemplate":
        # D - (S - model) = model - K*T - bg: the subtraction's own flux error, without the science
        # noise that makes score_diff's implied scale scatter by ~0.3 % at 2048² (see the ideal rows)
        model = fits.getdata(outdir / "science_model_static.fits").astype(np.float64)
        residual = image - (science.image.array.astype(np.float64) - model)
        noise_free_scale = score(residual, outdir, ratio, mask, tag + "_nf")["a_implied_scale_median"]

    def get(key: str) -> Any:
        return md.get(key, None)

    return {
        "variant": name, "psf": psf, "decorrelation": "on" if decorrelation else "off", "mode": get("mode"),
        "kernel_sum": ratio, "kernel_sum_err": ratio / true_ratio - 1.0,
        "spatialKernelSum": get("spatialKernelSum"), **_summary(s),
        "implied_scale_err": (None if s["a_implied_scale_median"] is None
                              else s["a_implied_scale_median"] / true_ratio - 1.0),
        "implied_scale_noise_free": noise_free_scale,
        "implied_scale_noise_free_err": None if noise_free_scale is None else noise_free_scale / true_ratio - 1.0,
        "nrms_task": task_rms["median"], "nrms_task_bright": task_rms["bright"],
        "nGoodCandidates": get("nGoodCandidates"), "nKernelSources": get("nKernelSources"),
        "ALKernelSize": get("ALKernelSize"),
        "templatePsfFwhm": get("templatePsfFwhm"), "sciencePsfFwhm": get("sciencePsfFwhm"),
        "NFalsePositivesTotal": get("NFalsePositivesTotal"),
        "NFalsePositivesRefAssociated": get("NFalsePositivesRefAssociated"),
        "NFalsePositivesSrcAssociated": get("NFalsePositivesSrcAssociated"),
        "NFalsePositivesUnassociated": get("NFalsePositivesUnassociated"),
        "seconds": seconds, "overrides": list(overrides),
    }


def _against_ideal(row: dict[str, Any], ideal: dict[str, Any]) -> None:
    """Transient S/N efficiency per transient relative to the ideal subtraction on the same noise.

    score_diff's S/N "expected" is a background-only figure; the ideal difference itself scores
    0.87-1.0 per transient on one noise realisation, so ours/ideal isolates what the subtraction loses.
    """
    ours, best = row["snr_eff_unblended"], ideal["snr_eff_unblended"]
    ratios = [a / b for a, b in zip(ours, best)] if len(ours) == len(best) and best else []
    row["snr_vs_ideal"] = ratios
    row["snr_vs_ideal_median"] = float(np.median(ratios)) if ratios else None
    row["snr_vs_ideal_min"] = min(ratios) if ratios else None
    row["ideal_snr_min"] = ideal["snr_eff_min_unblended"]
    ideal_scale = row["ideal_implied_scale"] = ideal["implied_scale"]
    row["implied_scale_vs_ideal"] = (None if ideal_scale is None or row["implied_scale"] is None
                                     else row["implied_scale"] / ideal_scale - 1.0)


# ------------------------------------------------------------------ checks against the targets
def check_row(row: dict[str, Any], truth_model: str) -> list[str]:
    """Targets a row misses (empty: all met). The model RMS is judged on decorrelation-off rows only."""
    misses = []
    if row["mode"] == "ideal":
        return misses
    if row["mode"] == "convolveScience":
        # score_diff's variance model assumes the template is convolved: use the task's variance plane
        rms, bright = row["nrms_task"], row["nrms_task_bright"]
    elif row["decorrelation"] == "off":
        rms, bright = row["nrms_model"], row["nrms_model_bright"]
    else:
        rms, bright = row["nrms_self"], row["nrms_self_bright"]
    if rms is not None and rms > TARGETS["nrms"]:
        misses.append(f"rms {rms:.3f}")
    if bright is not None and bright > TARGETS["nrms_bright"]:
        misses.append(f"bright {bright:.3f}")
    if row["implied_scale_err"] is None:
        misses.append("scale n/a")
    elif abs(row["implied_scale_err"]) > TARGETS["scale"]:
        ideal = row.get("ideal_implied_scale")
        note = "" if ideal is None else f" (ideal {100 * (ideal / 1.3 - 1):+.2f}%)"
        misses.append(f"scale {100 * row['implied_scale_err']:+.2f}%{note}")
    limit = TARGETS["ksum_gauss"] if truth_model == "gauss" else TARGETS["ksum_moffat"]
    if abs(row["kernel_sum_err"]) > limit:
        misses.append(f"ksum {100 * row['kernel_sum_err']:+.2f}%")
    if row["snr_eff_min_unblended"] is not None and row["snr_eff_min_unblended"] < TARGETS["snr"]:
        ideal = row.get("ideal_snr_min")
        note = "" if ideal is None else f" (ideal {ideal:.3f})"
        misses.append(f"snr {row['snr_eff_min_unblended']:.3f}{note}")
    if row["fp"] > TARGETS["fp"]:
        misses.append(f"fp {row['fp']}")
    return misses


ROBUST_KEYS = ("kernel_sum", "implied_scale", "implied_scale_noise_free", "nrms_model", "nrms_model_bright",
               "nrms_task", "nrms_task_bright", "snr_eff_median", "snr_eff_min_unblended", "snr_vs_ideal_median",
               "snr_vs_ideal_min")


RAW_SNR_KEYS = ("snr_eff_median", "snr_eff_min_unblended")


def robustness(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Relative change of each figure of ``badcols3``/``masked`` against ``default`` (same psf/decorrelation)."""
    out = []
    base = {(r["psf"], r["decorrelation"]): r for r in rows if r["variant"] == "default"}
    for r in rows:
        if r["variant"] not in ("badcols3", "masked") or (r["psf"], r["decorrelation"]) not in base:
            continue
        b = base[(r["psf"], r["decorrelation"])]
        changes = {k: (r[k] / b[k] - 1.0) for k in ROBUST_KEYS
                   if r.get(k) is not None and b.get(k) not in (None, 0)}
        changes["fp"] = r["fp"] - b["fp"]
        # raw S/N efficiencies move by ~2 % with the blank positions score_diff samples (the ideal rows
        # move as much): judged through the ratio to the ideal instead
        worst = max((abs(v) for k, v in changes.items() if k not in ("fp", *RAW_SNR_KEYS)), default=0.0)
        out.append({"variant": r["variant"], "psf": r["psf"], "decorrelation": r["decorrelation"],
                    "changes": changes, "worst": worst, "ok": worst <= TARGETS["robust"]})
    return out


# ------------------------------------------------------------------ real pairs
def _clipped(diff: Any) -> dict[str, float]:
    """Sigma-clipped (3σ, 5 iterations) mean/median/std of the finite pixels, and of D/sqrt(V)."""
    image = np.asarray(diff.image.array, dtype=np.float64)
    variance = np.asarray(diff.variance.array, dtype=np.float64)
    good = np.isfinite(image) & np.isfinite(variance) & (variance > 0)
    mean, median, std = sigma_clipped_stats(image[good], sigma=3.0, maxiters=5)
    chi = image[good] / np.sqrt(variance[good])
    chi_mean, _, chi_std = sigma_clipped_stats(chi, sigma=3.0, maxiters=5)
    return {"mean": float(mean), "median": float(median), "std": float(std), "chi_mean": float(chi_mean),
            "chi_std": float(chi_std), "good_frac": float(good.mean())}


def _n_sources(image: np.ndarray, fwhm: float) -> int:
    """Peaks at |Z| >= 5 of the Gaussian-matched-filtered difference, Z self-calibrated.

    As score_diff (d): the filtered image is divided by its own robust sigma, so correlated noise
    (a difference without decorrelation, another method's output) is judged fairly; non-finite
    pixels (and a filter radius around them) are left out; one peak per (2·FWHM+1)² box.
    """
    from scipy import ndimage

    data = np.asarray(image, dtype=np.float64)
    bad = ~np.isfinite(data)
    sigma = fwhm / 2.3548
    filtered = ndimage.gaussian_filter(np.where(bad, 0.0, data), sigma)
    bad = ndimage.binary_dilation(bad, iterations=math.ceil(2 * sigma))
    values = filtered[~bad]
    scale = 1.4826 * float(np.median(np.abs(values - np.median(values))))
    z = np.where(bad, 0.0, np.abs(filtered - np.median(values)) / scale)
    size = int(2 * round(fwhm) + 1)
    return int(((z == ndimage.maximum_filter(z, size=size)) & (z >= 5.0)).sum())


def real_pairs() -> list[dict[str, Any]]:
    """The real pairs: (label, template loader, science loader, config overrides, comparison difference)."""
    decam = REAL / "sfft_decam_mini"
    eso = REAL / "properimage_eso085-030"
    jwst = REAL / "sfft_jwst_nircam_a2744"
    jref = "jw01324001001-01324-o001_t001_nircam_clear-f200w_i2d_stamp"
    jsci = "jw02561001002-02561-o001_t003_nircam_clear-f200w_i2d_stamp"
    # 256² DECam cutouts hold ~10 usable stars: a constant kernel and background (as `diffim demo`)
    sparse = ["kernel.active.spatialKernelOrder=0", "kernel.active.spatialBgOrder=0"]
    # the science noise map has one negative pixel (x=895, y=569): read_exposure refuses it unless told
    jopt = {"invalid_variance": "flag"}
    return [
        {"label": "DECam OBS04a - OBS18a", "template": (decam / "DEC-OBS18a.mini.fits", {}),
         "science": (decam / "DEC-OBS04a.mini.fits", {}), "overrides": sparse, "compare": None},
        {"label": "DECam stack04 - stack18", "template": (decam / "sfft_ref_Stack-DEC-OBS18.fits", {}),
         "science": (decam / "sfft_ref_Stack-DEC-OBS04.fits", {}), "overrides": sparse,
         "compare": decam / "sfft_ref_FinalDifference.fits"},
        # the default isolation/blend cuts leave 3 kernel sources on the stacks (one with a flux ratio
        # 1.16 where most stars have 1.02) and a kernel sum of 1.19; relaxed, 7 sources give 1.03
        {"label": "DECam stack04 - stack18, isolation/blend cuts off",
         "template": (decam / "sfft_ref_Stack-DEC-OBS18.fits", {}),
         "science": (decam / "sfft_ref_Stack-DEC-OBS04.fits", {}),
         "overrides": [*sparse, "selectKernelCandidates.requireIsolated=False", "selectKernelCandidates.rejectBlended=False"],
         "compare": decam / "sfft_ref_FinalDifference.fits"},
        # sfft's difference is not decorrelated: compare pixel statistics with ours undecorrelated too
        {"label": "DECam stack04 - stack18, no decorrelation",
         "template": (decam / "sfft_ref_Stack-DEC-OBS18.fits", {}),
         "science": (decam / "sfft_ref_Stack-DEC-OBS04.fits", {}), "overrides": [*sparse, "doDecorrelation=False"],
         "compare": decam / "sfft_ref_FinalDifference.fits"},
        {"label": "ESO 085-030 005 - 004 (null)", "template": (eso / "aligned_eso085-030-004.fit", {}),
         "science": (eso / "aligned_eso085-030-005.fit", {}), "overrides": [], "compare": None},
        {"label": "JWST F200W A2744 (WebbPSF)",
         "template": (jwst / f"{jref}.fits", {**jopt, "noise": jwst / f"{jref}.noise.fits", "psf": jwst / f"{jref}.WebbPSF.fits"}),
         "science": (jwst / f"{jsci}.fits", {**jopt, "noise": jwst / f"{jsci}.noise.fits", "psf": jwst / f"{jsci}.WebbPSF.fits"}),
         "overrides": [], "compare": None, "count_fwhm": 2.15},
        {"label": "JWST F200W A2744 (PSF estimated)",
         "template": (jwst / f"{jref}.fits", {**jopt, "noise": jwst / f"{jref}.noise.fits"}),
         "science": (jwst / f"{jsci}.fits", {**jopt, "noise": jwst / f"{jsci}.noise.fits"}),
         # the estimated FWHM can be wrong (the detection fallback): count peaks at the WebbPSF FWHM
         "overrides": [], "compare": None, "count_fwhm": 2.15},
    ]


def run_real(case: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """One real pair end to end (decorrelation on, as a user runs it)."""
    row: dict[str, Any] = {"pair": case["label"]}
    try:
        template = read_exposure(case["template"][0], **case["template"][1])
        science = read_exposure(case["science"][0], **case["science"][1])
        config = ImagePsfMatchTask.ConfigClass()
        config.override(*case["overrides"], *overrides)
        task = ImagePsfMatchTask(config=config)
        start = time.perf_counter()
        result = task.subtractExposures(template, science)
        row["seconds"] = time.perf_counter() - start
    except Exception as err:  # noqa: BLE001 - the table reports the failure
        row["error"] = f"{type(err).__name__}: {err}"
        return row
    md = task.metadata
    diff = result.subtractedExposure
    fwhm = case.get("count_fwhm") or (md["sciencePsfFwhm"] if md["mode"] == "convolveTemplate"
                                      else md["templatePsfFwhm"])
    row.update({
        "shape": list(diff.image.array.shape), "mode": md["mode"], "kernel_sum": md["photometricRatio"],
        "spatialKernelSum": md["spatialKernelSum"], "nGoodCandidates": md["nGoodCandidates"],
        "ALWingGauss": md.get("ALWingGauss", None), "ALKernelSize": md.get("ALKernelSize", None),
        "templatePsfFwhm": md["templatePsfFwhm"], "sciencePsfFwhm": md["sciencePsfFwhm"],
        "NFalsePositivesTotal": md["NFalsePositivesTotal"],
        "NFalsePositivesUnassociated": md["NFalsePositivesUnassociated"],
        "n_dia_sources": len(result.diaSources) if result.diaSources is not None else None,
        "n_5sigma_selfcal": _n_sources(diff.image.array, fwhm),
        **{f"diff_{k}": v for k, v in _clipped(diff).items()},
    })
    if case["compare"] is not None:
        # the other method's difference, on the pixels both have
        other = fits.getdata(case["compare"]).astype(np.float64)
        ours = np.asarray(diff.image.array, dtype=np.float64)
        both = np.isfinite(other) & np.isfinite(ours)
        _, _, s_other = sigma_clipped_stats(other[both], sigma=3.0, maxiters=5)
        _, _, s_ours = sigma_clipped_stats(ours[both], sigma=3.0, maxiters=5)
        row.update({"compare_std_ours": float(s_ours), "compare_std_other": float(s_other),
                    "compare_n_5sigma_ours": _n_sources(np.where(both, ours, np.nan), fwhm),
                    "compare_n_5sigma_other": _n_sources(np.where(both, other, np.nan), fwhm),
                    "compare_abs_max_ours": float(np.nanmax(np.abs(np.where(both, ours, np.nan)))),
                    "compare_abs_max_other": float(np.nanmax(np.abs(np.where(both, other, np.nan))))})
    return row


# ------------------------------------------------------------------ printing
def _f(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def print_tables(rows: list[dict[str, Any]], robust: list[dict[str, Any]], real: list[dict[str, Any]],
                 models: dict[str, str]) -> None:
    print("\n## Synthetic variants (score_diff; truth ratio 1.300)\n")
    print("spatialKernelSum = the task's metadata (template→science, or science→template when the science is "
          "convolved); kernel sum = science/template flux ratio from the kernel; scale = score_diff implied scale "
          "(nf: on D - (S - model), free of the science noise); rms = normalised residual RMS median/bright "
          "against score_diff's model variance, self-normalised, and the task's variance plane; S/N = transient "
          "efficiency median/min (unblended) and min of ours/ideal per transient.\n")
    print("| variant | psf | decorr | mode | spatialKernelSum | kernel sum (err) | implied scale (err) | scale nf (err) | "
          "rms model | rms self | rms task | S/N eff med/min | S/N vs ideal min | FP 5σ | bg σ ratio | nGood | "
          "NFP tot/ref/src/unassoc | s | misses |")
    print("|" + "---|" * 19)
    for r in rows:
        ideal = r["mode"] == "ideal"
        ks = "1.300 (truth)" if ideal else f"{r['kernel_sum']:.4f} ({100 * r['kernel_sum_err']:+.2f}%)"
        scale = (_f(r["implied_scale"], ".4f") if ideal or r["implied_scale"] is None
                 else f"{r['implied_scale']:.4f} ({100 * r['implied_scale_err']:+.2f}%)")
        nf = r.get("implied_scale_noise_free")
        nf_text = "-" if nf is None else f"{nf:.4f} ({100 * r['implied_scale_noise_free_err']:+.2f}%)"
        nfp = "-" if ideal else (f"{r['NFalsePositivesTotal']}/{r['NFalsePositivesRefAssociated']}/"
                                 f"{r['NFalsePositivesSrcAssociated']}/{r['NFalsePositivesUnassociated']}")
        misses = check_row(r, models[r["variant"]])
        print(f"| {r['variant']} | {r['psf']} | {r['decorrelation']} | {r['mode']} | "
              f"{_f(r.get('spatialKernelSum'), '.4f')} | {ks} | {scale} | {nf_text} | "
              f"{_f(r['nrms_model'], '.3f')}/{_f(r['nrms_model_bright'], '.3f')} | "
              f"{_f(r['nrms_self'], '.3f')}/{_f(r['nrms_self_bright'], '.3f')} | "
              f"{_f(r.get('nrms_task'), '.3f')}/{_f(r.get('nrms_task_bright'), '.3f')} | "
              f"{_f(r['snr_eff_median'], '.3f')}/{_f(r['snr_eff_min_unblended'], '.3f')} | "
              f"{_f(r.get('snr_vs_ideal_min'), '.3f')} | {r['fp']} | "
              f"{r['bg_sigma_ratio']:.3f} | {_f(r.get('nGoodCandidates'), 'd')} | {nfp} | "
              f"{_f(r.get('seconds'), '.1f')} | {', '.join(misses) if misses else ('-' if ideal else 'none')} |")
    if robust:
        print("\n## NaN columns / masked pixels against the default pair (relative change; target ≤ 2 %)\n")
        print("| variant | psf | decorr | " + " | ".join(ROBUST_KEYS) + " | ΔFP | worst | ok |")
        print("|" + "---|" * (len(ROBUST_KEYS) + 6))
        for r in robust:
            ch = r["changes"]
            cells = " | ".join(f"{100 * ch[k]:+.2f}%" if k in ch else "-" for k in ROBUST_KEYS)
            print(f"| {r['variant']} | {r['psf']} | {r['decorrelation']} | {cells} | {ch['fp']:+d} | "
                  f"{100 * r['worst']:.2f}% | {'yes' if r['ok'] else 'NO'} |")
    if real:
        print("\n## Real pairs (decorrelation on unless said; clipped statistics: 3σ, 5 iterations)\n")
        print("| pair | mode | FWHM t/s | kernel sum | nGood | D clipped mean/std | D/√V clipped mean/std | "
              "5σ sources (QA counted/unassoc; all dia; self-calibrated peaks) | vs other method | s |")
        print("|" + "---|" * 10)
        for r in real:
            if "error" in r:
                print(f"| {r['pair']} | FAILED: {r['error']} |" + " |" * 8)
                continue
            other = "-"
            if "compare_std_other" in r:
                other = (f"clipped std ours {r['compare_std_ours']:.4g} / sfft {r['compare_std_other']:.4g}; "
                         f"5σ sources ours {r['compare_n_5sigma_ours']} / sfft {r['compare_n_5sigma_other']}; "
                         f"max|D| {r['compare_abs_max_ours']:.4g} / {r['compare_abs_max_other']:.4g}")
            print(f"| {r['pair']} | {r['mode']} | {r['templatePsfFwhm']:.2f}/{r['sciencePsfFwhm']:.2f} | "
                  f"{r['kernel_sum']:.4f} | {r['nGoodCandidates']} | {r['diff_mean']:.3g}/{r['diff_std']:.4g} | "
                  f"{r['diff_chi_mean']:+.3f}/{r['diff_chi_std']:.3f} | {r['NFalsePositivesTotal']}/"
                  f"{r['NFalsePositivesUnassociated']}; {r['n_dia_sources']}; {r['n_5sigma_selfcal']} | {other} | "
                  f"{r['seconds']:.1f} |")


# ------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns (and with ``--json`` writes) every row."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2048, help="make_pair image side (default 2048; 512 is quick)")
    parser.add_argument("--nstars", type=int, default=0,
                        help="stars per pair (default make_pair's 800*(size/2048)^2; 512² then has only 50)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma list of {', '.join(VARIANTS)}, or 'none' (default: all)")
    parser.add_argument("--psf", choices=["estimated", "given", "both"], default="estimated",
                        help="PSFs the task gets: estimated by the task (default), the truth, or both")
    parser.add_argument("--decorrelation", choices=["off", "on", "both"], default="both")
    parser.add_argument("--variance", choices=["truth", "image"], default="truth",
                        help="variance planes: make_pair's model maps (default) or estimated from GAIN/RDNOISE")
    parser.add_argument("-c", "--config", action="append", default=[], metavar="FIELD=VALUE",
                        help="config override as `diffim run -c` (repeatable), e.g. kernel.active.kernelSize=31")
    parser.add_argument("--no-real", action="store_true", help="skip the real pairs")
    parser.add_argument("--no-ideal", action="store_true", help="skip the ideal (oracle) rows")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where pairs and differences go (default: a temporary folder, removed)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write every row to this JSON file")
    args = parser.parse_args(argv)

    if not BENCH.exists():
        parser.error(f"the shared bench scripts are not at {BENCH}; put ../shared beside the repository")
    names = [] if args.variants == "none" else [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {unknown!r}; choose from {', '.join(VARIANTS)}")
    psfs = ["estimated", "given"] if args.psf == "both" else [args.psf]
    decorrelations = {"off": [False], "on": [True], "both": [False, True]}[args.decorrelation]

    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="diffim-sub-")))
        workdir.mkdir(parents=True, exist_ok=True)
        rows: list[dict[str, Any]] = []
        models: dict[str, str] = {}
        ideals: dict[str, dict[str, Any]] = {}
        for name in names:
            outdir = make_variant(name, args.size, workdir, args.nstars)
            for psf in psfs:
                template, science, truth = read_variant(name, outdir, args.variance, psf)
                models[name] = truth["psf_science"]["model"]
                if psf == psfs[0] and not args.no_ideal:
                    ideals[name] = ideal_row(name, outdir, science, truth)
                    rows.append(ideals[name])
                for decorrelation in decorrelations:
                    row = run_case(name, template, science, truth, outdir, psf=psf, decorrelation=decorrelation,
                                   overrides=args.config)
                    if name in ideals:
                        _against_ideal(row, ideals[name])
                    rows.append(row)
                    print(f"{name:14s} psf={psf:9s} decorrelation={row['decorrelation']:3s} "
                          f"ksum {row['kernel_sum']:.4f} ({100 * row['kernel_sum_err']:+.2f}%) "
                          f"scale {_f(row['implied_scale'], '.4f')} "
                          f"rms {_f(row['nrms_model'], '.3f')}/{_f(row['nrms_model_bright'], '.3f')} "
                          f"snr {_f(row['snr_eff_min_unblended'], '.3f')} fp {row['fp']} {row['seconds']:.1f}s",
                          file=sys.stderr, flush=True)
        robust = robustness([r for r in rows if r["mode"] != "ideal"])
        real = []
        if not args.no_real and REAL.exists():
            for case in real_pairs():
                real.append(run_real(case, args.config))
                print(f"real: {real[-1]['pair']} done", file=sys.stderr, flush=True)
    print_tables(rows, robust, real, models)
    out = {"size": args.size, "nstars": args.nstars, "variance": args.variance, "overrides": args.config, "rows": rows,
           "robustness": robust, "real": real, "targets": TARGETS}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float))
    return out


if __name__ == "__main__":
    main()
