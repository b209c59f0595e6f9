"""Draw the figures of the algorithm page (run by the docs build; also by hand).

``python docs/make_figures.py [OUTDIR]`` writes the PNG files named in `FIGURES` (default
``docs/_figures``). Both figures are computed with diffim's own code:

* ``al_basis.png``: the default Alard-Lupton basis for a template of FWHM 3 px matched to a
  science image of FWHM 4 px (``makeKernelBasisList``), one panel per basis kernel;
* ``decorrelation.png``: the whitening filter of the decorrelation afterburner for a Gaussian
  matching kernel, for three ratios of the convolved to the unconvolved image's variance.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

__all__ = ["FIGURES", "draw_al_basis", "draw_decorrelation", "main"]

#: Files written by `main`.
FIGURES = ("al_basis.png", "decorrelation.png")


def draw_al_basis(path: Path) -> None:
    """The default AL basis for FWHM 3 -> 4 px, grouped by Gaussian.

    Parameters
    ----------
    path : pathlib.Path
        PNG file to write.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    from diffim.framework.metadata import TaskMetadata
    from diffim.tasks.kernel import makeKernelBasisList
    from diffim.tasks.psfMatch import PsfMatchConfigAL

    config = PsfMatchConfigAL()
    metadata = TaskMetadata()
    basis = makeKernelBasisList(config, 3.0, 4.0, metadata=metadata)
    sigmas = metadata.getArray("ALBasisSigGauss")
    degrees = list(config.alardDegGauss)
    counts = [(d + 1) * (d + 2) // 2 for d in degrees]
    ncol = 9
    rows_per_group = [math.ceil(c / ncol) for c in counts]
    fig, axes = plt.subplots(sum(rows_per_group), ncol, figsize=(ncol * 0.95, sum(rows_per_group) * 1.1 + 0.5),
                             squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.axis("off")
    index = 0
    row0 = 0
    for count, nrows, sigma, degree in zip(counts, rows_per_group, sigmas, degrees, strict=True):
        for j in range(count):
            ax = axes[row0 + j // ncol, j % ncol]
            ax.axis("on")
            image = basis[index].computeImage()
            limit = float(np.abs(image).max()) or 1.0
            ax.imshow(image, origin="lower", cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(f"{index}", fontsize=7, pad=2)
            index += 1
        axes[row0, 0].set_ylabel(f"σ={sigma:.2f}\ndeg {degree}", fontsize=7)
        row0 += nrows
    size = basis[0].getWidth()
    fig.suptitle(
        f"Alard–Lupton basis: {len(basis)} kernels of {size}×{size} px (template FWHM 3 px → science 4 px); "
        "basis 0 has unit sum, the others zero sum",
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.savefig(path, dpi=80)
    plt.close(fig)


def draw_decorrelation(path: Path) -> None:
    """|κ̂(k)| of a Gaussian matching kernel and the whitening filter φ(k).

    Parameters
    ----------
    path : pathlib.Path
        PNG file to write.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    from diffim.tasks.kernel import GaussianKernel

    size = 21
    sigma = math.sqrt(1.7**2 - 1.27**2)  # template FWHM 3 px -> science FWHM 4 px
    kernel = GaussianKernel(size, size, sigma).computeImage()
    kernel = kernel / kernel.sum()
    n = 256
    padded = np.zeros((n, n))
    padded[:size, :size] = kernel
    spectrum = np.abs(np.fft.rfft2(padded))[0, : n // 2 + 1]  # along k_x at k_y = 0
    k = np.fft.rfftfreq(n)
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    ax.plot(k, spectrum, color="black", label=r"$|\hat\kappa(k)|$ (matching kernel)")
    for ratio, style in ((0.1, ":"), (1.0, "--"), (10.0, "-")):
        phi = np.sqrt((1.0 + ratio) / (1.0 + ratio * spectrum**2))
        ax.plot(k, phi, style, color="tab:blue", label=rf"$\phi(k)$, $v_c/v_u$ = {ratio:g}")
    ax.set_xlabel("spatial frequency k (cycles per pixel)")
    ax.set_xlim(0, 0.5)
    ax.set_ylim(0, None)
    ax.legend(fontsize=8, loc="center right")
    ax.set_title("Decorrelation filter for a Gaussian kernel (σ = 1.13 px, unit sum)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(outdir: Path | str | None = None) -> list[Path]:
    """Write every figure.

    Parameters
    ----------
    outdir : path-like, optional
        Output folder (created); default ``docs/_figures`` next to this script.

    Returns
    -------
    paths : list of pathlib.Path
        The files written.
    """
    import matplotlib

    matplotlib.use("Agg")
    out = Path(outdir) if outdir is not None else Path(__file__).resolve().parent / "_figures"
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in FIGURES]
    draw_al_basis(paths[0])
    draw_decorrelation(paths[1])
    return paths


if __name__ == "__main__":
    for written in main(sys.argv[1] if len(sys.argv) > 1 else None):
        print(written)
