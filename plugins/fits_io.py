"""Built-in I/O plugin: FITS files for the launcher's exposures, kernels, backgrounds, PSFs, tables.

Registered through the ``diffim`` entry-point group like any third-party I/O plugin; it stays
import-light (the readers and writers load when a file is read or written).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from diffim.framework.plugins import hookimpl

EXPOSURE = "diffim.tasks.image.Exposure"
KERNEL = "diffim.tasks.kernel.LinearCombinationKernel"
BACKGROUND = "diffim.tasks.kernel.SpatialFunction"
PSF = "diffim.tasks.psf.Psf"
TABLE = "astropy.table.Table"


@hookimpl(trylast=True)  # a plugin registered later can take a type over
def diffim_read_input(type_name: str, path: Path, options: Mapping[str, Any]) -> object | None:
    if type_name == EXPOSURE:
        from diffim.tasks.io import read_exposure

        return read_exposure(path, **dict(options))
    if type_name == PSF:
        from diffim.tasks.io import read_psf_image

        return read_psf_image(path)
    if type_name == KERNEL:
        from diffim.tasks.io import read_kernel

        return read_kernel(path)
    if type_name == TABLE:
        from astropy.table import Table

        return Table.read(path)
    return None


@hookimpl(trylast=True)
def diffim_write_output(type_name: str, value: object, path: Path) -> Path | None:
    target = Path(str(path) + ".fits")
    if type_name == EXPOSURE:
        from diffim.tasks.io import write_exposure

        return write_exposure(value, target, overwrite=True)  # type: ignore[arg-type]
    if type_name == KERNEL:
        from diffim.tasks.io import write_kernel

        return write_kernel(value, target)  # type: ignore[arg-type]
    if type_name == BACKGROUND:
        from diffim.tasks.io import write_spatial_function

        return write_spatial_function(value, target)  # type: ignore[arg-type]
    if type_name == TABLE:
        from astropy.io import fits

        from diffim.tasks.io.write import write_hdulist_atomic

        table = value.copy(copy_data=False)  # type: ignore[attr-defined]
        table.meta.clear()  # run options and column docs: not FITS cards (they are in the metadata)
        table_hdu = fits.table_to_hdu(table)
        return write_hdulist_atomic(fits.HDUList([fits.PrimaryHDU(), table_hdu]), target, overwrite=True)
    return None
