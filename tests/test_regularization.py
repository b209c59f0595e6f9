"""Regularization matrix H = BᵀB for delta-function kernels (spec §3.6, LSST test_basisLists)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from diffim.tasks.kernel import make_regularization_matrix, makeRegularizationMatrix
from diffim.tasks.psfMatch import PsfMatchConfigAL, PsfMatchConfigDF


def _ring(width: int, height: int) -> np.ndarray:
    y, x = np.divmod(np.arange(width * height), width)
    return (x == 0) | (x == width - 1) | (y == 0) | (y == height - 1)


def _check_psd(h: np.ndarray) -> None:
    np.testing.assert_array_equal(h, h.T)
    eigenvalues = np.linalg.eigvalsh(h)
    assert eigenvalues.min() >= -1e-10 * eigenvalues.max()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "centralDifference", "stencil": 1}, "stencil must be 5 or 9, got 1"),
        ({"kind": "centralDifference", "border_penalty": -1.0}, "border penalty must be finite and >= 0, got -1.0"),
        ({"kind": "forwardDifference", "border_penalty": -1.0}, "border penalty must be finite and >= 0"),
        ({"kind": "forwardDifference", "orders": (0,)}, "orders must be 1, 2 or 3, got \\[0\\]"),
        ({"kind": "forwardDifference", "orders": (4,)}, "orders must be 1, 2 or 3, got \\[4\\]"),
        ({"kind": "forwardDifference", "orders": ()}, "needs at least one order"),
        ({"kind": "foo"}, "unknown regularization type 'foo'; use one of 'centralDifference', 'forwardDifference'"),
    ],
)
def test_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_regularization_matrix(21, 21, **kwargs)


def test_bad_size_and_wrong_config() -> None:
    with pytest.raises(ValueError, match="size must be integers >= 1, got 0x21"):
        make_regularization_matrix(0, 21, kind="centralDifference")
    with pytest.raises(ValueError, match="PsfMatchConfigAL has no regularization settings"):
        makeRegularizationMatrix(PsfMatchConfigAL())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "centralDifference", "stencil": 5},
        {"kind": "centralDifference", "stencil": 9},
        {"kind": "centralDifference", "border_penalty": 0.0},
        {"kind": "forwardDifference", "orders": (1,)},
        {"kind": "forwardDifference", "orders": (1, 2)},
        {"kind": "forwardDifference", "orders": (1, 2, 3), "border_penalty": 0.0},
    ],
)
def test_valid_shapes_symmetric_psd(kwargs: dict[str, Any]) -> None:
    h = make_regularization_matrix(21, 21, **kwargs)
    assert h.shape == (441, 441) and h.dtype == np.float64
    _check_psd(h)
    hb = make_regularization_matrix(21, 21, fit_background=True, **kwargs)
    assert hb.shape == (442, 442)
    assert not hb[-1].any() and not hb[:, -1].any()  # the background parameter is never penalised
    np.testing.assert_array_equal(hb[:441, :441], h)


def test_config_entry_point() -> None:
    h = makeRegularizationMatrix(PsfMatchConfigDF())
    assert h.shape == (441, 441)
    np.testing.assert_array_equal(h, make_regularization_matrix(21, 21, kind="centralDifference", stencil=9, border_penalty=3.0))
    config = PsfMatchConfigDF(
        kernelSize=7,
        fitForBackground=True,
        regularizationType="forwardDifference",
        forwardRegularizationOrders=[2],
        regularizationBorderPenalty=1.5,
    )
    expected = make_regularization_matrix(7, 7, kind="forwardDifference", orders=(2,), border_penalty=1.5, fit_background=True)
    np.testing.assert_array_equal(makeRegularizationMatrix(config), expected)
    assert expected.shape == (50, 50)


@pytest.mark.parametrize("stencil", [5, 9])
def test_central_difference_kills_constants(stencil: int) -> None:
    penalty = 3.0
    h = make_regularization_matrix(21, 21, kind="centralDifference", stencil=stencil, border_penalty=penalty)
    ring = _ring(21, 21)
    flat = h @ np.ones(441)
    # interior rows of B sum to 0 (Laplacian of a constant); ring rows are penalty·e_i
    np.testing.assert_allclose(flat[~ring], 0.0, atol=1e-12)
    np.testing.assert_allclose(flat[ring], penalty**2, rtol=1e-12)


def test_central_difference_stencils_on_3x3() -> None:
    penalty = 2.0
    for stencil, row in (
        (5, [0, 1, 0, 1, -4, 1, 0, 1, 0]),
        (9, np.array([1, 4, 1, 4, -20, 4, 1, 4, 1]) / 6),
    ):
        b = penalty * np.eye(9)
        b[4] = row  # only the centre pixel is off the ring
        h = make_regularization_matrix(3, 3, kind="centralDifference", stencil=stencil, border_penalty=penalty)
        np.testing.assert_allclose(h, b.T @ b, rtol=1e-14, atol=1e-14)


def test_forward_difference_2x2_corner_gets_double_penalty() -> None:
    p = 3.0
    # pixels (x, y): 0=(0,0), 1=(1,0), 2=(0,1), 3=(1,1); B = Bx + By for order 1
    b = np.array(
        [
            [-2.0, 1.0, 1.0, 0.0],
            [0.0, p - 1.0, 0.0, 1.0],
            [0.0, 0.0, p - 1.0, 1.0],
            [0.0, 0.0, 0.0, 2 * p],
        ]
    )
    h = make_regularization_matrix(2, 2, kind="forwardDifference", orders=(1,), border_penalty=p)
    np.testing.assert_allclose(h, b.T @ b, rtol=1e-14)


def test_forward_difference_truncates_at_edge_and_sums_orders() -> None:
    p = 3.0
    # 3x1 kernel: By is p on every diagonal (top edge everywhere); Bx of order 2 drops to c1, then c0
    order2 = np.array([[p - 1.0, 2.0, -1.0], [0.0, p - 1.0, 1.0], [0.0, 0.0, 2 * p]])
    h = make_regularization_matrix(3, 1, kind="forwardDifference", orders=(2,), border_penalty=p)
    np.testing.assert_allclose(h, order2.T @ order2, rtol=1e-14)
    # orders (1, 2): B is the SUM of both orders' Bx + By, squared once
    both = np.array([[2 * p - 2.0, 3.0, -1.0], [0.0, 2 * p - 2.0, 2.0], [0.0, 0.0, 4 * p]])
    h = make_regularization_matrix(3, 1, kind="forwardDifference", orders=(1, 2), border_penalty=p)
    np.testing.assert_allclose(h, both.T @ both, rtol=1e-14)
