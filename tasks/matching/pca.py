"""Principal components of the candidates' kernel images (afw's ``ImagePca`` + ip_diffim's ``KernelPca``)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["KernelPca", "MAX_EIGEN_IMAGES"]

#: Eigenimages kept at most (as afw).
MAX_EIGEN_IMAGES = 100


class KernelPca:
    """Collect kernel images, optionally subtract their mean, and find their principal components.

    ``analyze`` diagonalises the Gram matrix ``R_ij = <im_i, im_j> / n`` (eigenvalues in descending
    order) and forms eigenimages ``Σ_j Q_ji im_j``; each eigenimage is then divided by its extreme
    value (the signed value of largest magnitude) so that pixel becomes +1, as LSST's KernelPca does.
    """

    def __init__(self) -> None:
        self._images: list[np.ndarray] = []
        self._weights: list[float] = []
        self._mean: np.ndarray | None = None
        self._eigen_values: np.ndarray | None = None
        self._eigen_images: list[np.ndarray] = []

    def addImage(self, image: Any, weight: float = 1.0) -> None:  # noqa: N802 - LSST name
        array = np.array(image, dtype=float)
        if self._images and array.shape != self._images[0].shape:
            msg = f"kernel images must share a shape: {array.shape} vs {self._images[0].shape}"
            raise ValueError(msg)
        self._images.append(array)
        self._weights.append(float(weight))

    def getImageList(self) -> list[np.ndarray]:  # noqa: N802
        return list(self._images)

    def __len__(self) -> int:
        return len(self._images)

    def subtractMean(self) -> None:  # noqa: N802 - LSST name
        """Store the (weighted) mean image and subtract it from every image."""
        if not self._images:
            msg = "no kernel images to take the mean of"
            raise RuntimeError(msg)
        weights = np.asarray(self._weights)
        stack = np.stack(self._images)
        self._mean = np.tensordot(weights, stack, axes=1) / weights.sum()
        self._images = [image - self._mean for image in self._images]

    def getMean(self) -> np.ndarray | None:  # noqa: N802 - LSST name
        return None if self._mean is None else self._mean.copy()

    def analyze(self) -> None:
        """Eigen-decompose the images' Gram matrix."""
        n = len(self._images)
        if n == 0:
            msg = "no kernel images to analyse"
            raise RuntimeError(msg)
        if n == 1:
            self._eigen_values = np.array([1.0])
            self._eigen_images = [self._images[0].copy()]
        else:
            flat = np.stack([image.ravel() for image in self._images])
            gram = flat @ flat.T / n
            values, vectors = np.linalg.eigh(gram)
            order = np.argsort(values)[::-1][:MAX_EIGEN_IMAGES]
            self._eigen_values = values[order]
            self._eigen_images = [(vectors[:, j] @ flat).reshape(self._images[0].shape) for j in order]
        normalised = []
        for image in self._eigen_images:
            extreme = image.flat[np.argmax(np.abs(image))]
            normalised.append(image / extreme if extreme != 0 else image)
        self._eigen_images = normalised

    def getEigenValues(self) -> np.ndarray:  # noqa: N802 - LSST name
        if self._eigen_values is None:
            msg = "call analyze() first"
            raise RuntimeError(msg)
        return self._eigen_values.copy()

    def getEigenImages(self) -> list[np.ndarray]:  # noqa: N802 - LSST name
        return [image.copy() for image in self._eigen_images]

    def getEigenKernels(self) -> list[np.ndarray]:  # noqa: N802 - LSST name
        """``[mean (when subtracted)] + eigenimages``: the images of the PCA basis kernels."""
        kernels = [] if self._mean is None else [self._mean.copy()]
        return kernels + self.getEigenImages()
