"""Kernel solutions: linear algebra, static/regularized per-candidate fits and the spatial fit (spec §4)."""

from __future__ import annotations

import types

import numpy as np
import pytest
from scipy import ndimage

from diffim.tasks.image import Box2I, MaskedImage
from diffim.tasks.kernel import Chebyshev1Function2, GaussianKernel, LinearCombinationKernel, PolynomialFunction2
from diffim.tasks.kernel.bases import makeAlardLuptonBasisList, makeDeltaFunctionBasisList
from diffim.tasks.kernel.regularization import makeRegularizationMatrix
from diffim.tasks.matching import (
    ConditionNumberType,
    KernelSolutionError,
    RegularizedKernelSolution,
    SolvedBy,
    SpatialKernelSolution,
    StaticKernelSolution,
    condition_number,
    eigen_pseudo_inverse,
    lambda_grid,
    solve_system,
)
from diffim.tasks.matching.solutions import risk_curve
from diffim.tasks.matching.regularized_solution import _regularized_family, _regularized_family_direct
from diffim.tasks.psfMatch import PsfMatchConfigAL, PsfMatchConfigDF


def _correlate(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """afw convolution (a correlation, no flip); only the valid region is meaningful."""
    return ndimage.correlate(image, kernel, mode="constant")


def _star_field(side: int, rng: np.random.Generator, n_stars: int = 5, sigma: float = 0.9) -> np.ndarray:
    yy, xx = np.mgrid[0:side, 0:side]
    image = np.zeros((side, side))
    for _ in range(n_stars):
        x0, y0 = rng.uniform(5, side - 5, 2)
        flux = rng.uniform(2000, 5000)
        image += flux * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sigma**2)) / (2 * np.pi * sigma**2)
    return image


# ------------------------------------------------------------------------------------------------
# linear algebra
# ------------------------------------------------------------------------------------------------


def test_condition_numbers_on_known_matrices() -> None:
    diag = np.diag([4.0, 2.0, 0.5])
    assert condition_number(diag, ConditionNumberType.EIGENVALUE) == pytest.approx(8.0)
    assert condition_number(diag, "SVD") == pytest.approx(8.0)
    # EIGENVALUE is the signed ratio (negative with a negative eigenvalue), SVD the magnitude ratio
    indefinite = np.array([[1.0, 0.0], [0.0, -2.0]])
    assert condition_number(indefinite, "EIGENVALUE") == pytest.approx(-0.5)
    assert condition_number(indefinite, "SVD") == pytest.approx(2.0)
    rotation = np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])
    sym = rotation @ np.diag([10.0, 0.1]) @ rotation.T
    assert condition_number(sym, "EIGENVALUE") == pytest.approx(100.0)
    assert condition_number(sym, "SVD") == pytest.approx(100.0)
    assert condition_number(np.diag([1.0, 0.0]), "EIGENVALUE") == float("inf")
    with pytest.raises(ValueError, match="unknown condition number type 'FOO'"):
        condition_number(diag, "FOO")


def test_solve_system_uses_lu_for_regular_matrices() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 6))
    m = a.T @ a
    x_true = rng.normal(size=6)
    x, solved_by = solve_system(m, m @ x_true)
    assert solved_by is SolvedBy.LU
    np.testing.assert_allclose(x, x_true, rtol=1e-10)


def test_solve_system_falls_back_to_eigen_pseudo_inverse_when_singular() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(20, 4))
    a = np.column_stack([a, a[:, 0] + a[:, 1]])  # rank 4: M is singular
    m = a.T @ a
    rhs = a.T @ rng.normal(size=20)
    x, solved_by = solve_system(m, rhs)
    assert solved_by is SolvedBy.EIGENVECTOR
    np.testing.assert_allclose(x, np.linalg.pinv(m, hermitian=True) @ rhs, rtol=1e-8, atol=1e-10)
    # the minimum-norm solution still satisfies the (consistent) normal equations
    np.testing.assert_allclose(m @ x, rhs, rtol=1e-8, atol=1e-8)
    x0, solved0 = solve_system(np.zeros((3, 3)), np.zeros(3))
    assert solved0 is SolvedBy.EIGENVECTOR and np.all(x0 == 0)


def test_solve_system_with_non_finite_matrix_returns_nan() -> None:
    m = np.eye(3)
    m[1, 1] = np.nan
    x, solved_by = solve_system(m, np.ones(3))
    assert solved_by is SolvedBy.NONE and np.all(np.isnan(x))


def test_eigen_pseudo_inverse_truncation() -> None:
    m = np.diag([1e6, 1e3, 1.0, 0.0])
    pinv, kept = eigen_pseudo_inverse(m)
    np.testing.assert_allclose(np.diag(pinv), [1e-6, 1e-3, 1.0, 0.0])
    assert kept.shape == (4, 3)
    pinv, kept = eigen_pseudo_inverse(m, max_condition=1e4)
    np.testing.assert_allclose(np.diag(pinv), [1e-6, 1e-3, 0.0, 0.0])
    assert kept.shape == (4, 2)


# ------------------------------------------------------------------------------------------------
# static solution
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def al_basis() -> list:
    return makeAlardLuptonBasisList(5, 2, (1.0, 2.5), (2, 1))  # 6 + 3 = 9 bases, 11x11


def _al_pair(basis: list, coefficients: np.ndarray, background: float, side: int = 41, seed: int = 2, xy0=(100, 200)):
    rng = np.random.default_rng(seed)
    template = _star_field(side, rng, n_stars=6) + rng.normal(0, 5.0, (side, side))  # rich texture
    kernel = np.tensordot(coefficients, np.stack([k.computeImage() for k in basis]), axes=1)
    science = _correlate(template, kernel) + background
    return MaskedImage(template, variance=1.0, xy0=xy0), MaskedImage(science, variance=1.0, xy0=xy0), kernel


def test_static_solution_recovers_an_al_kernel_and_background(al_basis: list) -> None:
    coefficients = np.array([0.9, 0.1, -0.05, 0.02, 0.01, -0.03, 0.2, 0.05, -0.04])
    template, science, kernel = _al_pair(al_basis, coefficients, background=12.5)
    solution = StaticKernelSolution(al_basis, True)
    assert not solution.isSolved() and solution.getSolvedBy() is SolvedBy.NONE
    solution.build(template, science, np.full(template.shape, 2.0))
    solution.solve()
    assert solution.getSolvedBy() is SolvedBy.LU
    np.testing.assert_allclose(solution.getSolution()[:-1], coefficients, rtol=1e-8, atol=1e-9)
    assert solution.getBackground() == pytest.approx(12.5, abs=1e-7)
    # renormalized AL basis: the kernel sum is the first coefficient
    assert solution.getKsum() == pytest.approx(coefficients[0], abs=1e-9)
    np.testing.assert_allclose(solution.getKernelImage(), kernel, atol=1e-10)
    kern, bg = solution.getSolutionPair()
    assert isinstance(kern, LinearCombinationKernel) and not kern.isSpatiallyVarying()
    assert bg == solution.getBackground()
    assert solution.getGoodBBox() == Box2I((105, 205), (31, 31))


def test_static_solution_normal_equations_match_explicit_correlation(al_basis: list) -> None:
    rng = np.random.default_rng(5)
    template = rng.normal(size=(25, 27))
    science = rng.normal(size=(25, 27))
    variance = rng.uniform(0.5, 2.0, size=(25, 27))
    solution = StaticKernelSolution(al_basis, True)
    solution.build(MaskedImage(template, variance=1.0), MaskedImage(science, variance=1.0), variance)
    good = (slice(5, 20), slice(5, 22))  # shrinkBBox of a 27x25 stamp by an 11x11 kernel
    columns = [_correlate(template, k.computeImage())[good].ravel() for k in al_basis] + [np.ones(15 * 17)]
    c = np.column_stack(columns)
    w = 1.0 / variance[good].ravel()
    np.testing.assert_allclose(solution.getM(), c.T @ (w[:, None] * c), rtol=1e-10)
    np.testing.assert_allclose(solution.getB(), c.T @ (w * science[good].ravel()), rtol=1e-10)
    assert np.array_equal(solution.getM(), solution.getM().T)


def test_static_solution_without_background(al_basis: list) -> None:
    coefficients = np.linspace(1.0, 0.1, len(al_basis))
    template, science, _ = _al_pair(al_basis, coefficients, background=0.0)
    solution = StaticKernelSolution(al_basis, False)
    solution.build(template, science, np.ones(template.shape))
    solution.solve()
    assert solution.getM().shape == (9, 9)
    assert solution.getBackground() == 0.0
    np.testing.assert_allclose(solution.getSolution(), coefficients, rtol=1e-8)


def test_static_solution_ids_are_unique_and_increasing(al_basis: list) -> None:
    ids = [StaticKernelSolution(al_basis, True).getId() for _ in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3


@pytest.mark.parametrize(
    ("bad", "match"),
    [(0.0, "variance equals 0.0.*cannot inverse-variance weight"), (-1.0, "variance less than 0.0"),
     (np.nan, "non-finite")],
)
def test_static_solution_rejects_bad_variance(al_basis: list, bad: float, match: str) -> None:
    template, science, _ = _al_pair(al_basis, np.ones(len(al_basis)), 0.0, side=31)
    variance = np.ones(template.shape)
    variance[15, 15] = bad
    solution = StaticKernelSolution(al_basis, True)
    with pytest.raises(KernelSolutionError, match=match):
        solution.build(template, science, variance)
    # a bad variance outside the fitted region (the kernel-wide border) does not matter
    variance = np.ones(template.shape)
    variance[0, 0] = 0.0
    solution.build(template, science, variance)


def test_static_solution_nan_coefficients_raise(al_basis: list) -> None:
    template, science, _ = _al_pair(al_basis, np.ones(len(al_basis)), 0.0, side=31)
    template.image.array[15, 15] = np.nan
    solution = StaticKernelSolution(al_basis, True)
    solution.build(template, science, np.ones(template.shape))
    with pytest.raises(KernelSolutionError, match="NaN/inf coefficients"):
        solution.solve()
    assert not solution.isSolved()


def test_static_solution_misuse_errors(al_basis: list) -> None:
    solution = StaticKernelSolution(al_basis, True)
    with pytest.raises(KernelSolutionError, match="call build"):
        solution.getM()
    with pytest.raises(KernelSolutionError, match="call build"):
        solution.solve()
    with pytest.raises(KernelSolutionError, match="not solved"):
        solution.getKernel()
    small = MaskedImage(np.zeros((7, 7)), variance=1.0)
    with pytest.raises(KernelSolutionError, match="smaller than the 11x11 kernel"):
        solution.build(small, small, np.ones((7, 7)))
    a = MaskedImage(np.zeros((21, 21)), variance=1.0)
    b = MaskedImage(np.zeros((21, 21)), variance=1.0, xy0=(1, 0))
    with pytest.raises(KernelSolutionError, match="must cover the same pixels"):
        solution.build(a, b, np.ones((21, 21)))
    with pytest.raises(KernelSolutionError, match="shape"):
        solution.build(a, a, np.ones((20, 21)))
    with pytest.raises(KernelSolutionError, match="at least one basis"):
        StaticKernelSolution([], True)


# ------------------------------------------------------------------------------------------------
# regularized solution
# ------------------------------------------------------------------------------------------------

KS, SIDE, NOISE = 11, 41, 1.0


@pytest.fixture(scope="module")
def noisy_df() -> dict:
    """A noisy delta-function problem with a known smooth kernel (noise-free template)."""
    rng = np.random.default_rng(4)
    truth = GaussianKernel(KS, KS, 1.5, 2.0).array
    template = _star_field(SIDE, rng)
    science = _correlate(template, truth) + rng.normal(0.0, NOISE, template.shape)
    cfg = PsfMatchConfigDF()
    cfg.fitForBackground = True
    cfg.kernelSize = KS
    cfg.lambdaMin, cfg.lambdaMax, cfg.lambdaStep = -1.0, 8.0, 0.25
    basis = makeDeltaFunctionBasisList(KS, KS)
    stamps = (MaskedImage(template, variance=1e-8), MaskedImage(science, variance=NOISE**2))
    plain = StaticKernelSolution(basis, True)
    plain.build(*stamps, np.full(template.shape, NOISE**2))
    plain.solve()
    return {"cfg": cfg, "basis": basis, "stamps": stamps, "truth": truth, "H": makeRegularizationMatrix(cfg),
            "error0": _kernel_error(plain, truth)}


def _kernel_error(solution: StaticKernelSolution, truth: np.ndarray) -> float:
    return float(((solution.getKernelImage() - truth) ** 2).sum())


def _regularized(problem: dict, **overrides: object) -> RegularizedKernelSolution:
    cfg = problem["cfg"].model_copy(deep=True)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    solution = RegularizedKernelSolution(problem["basis"], True, problem["H"], cfg)
    solution.build(*problem["stamps"], np.full(problem["stamps"][0].shape, NOISE**2))
    solution.solve()
    return solution


def test_absolute_and_relative_lambda(noisy_df: dict) -> None:
    absolute = _regularized(noisy_df, lambdaType="absolute", lambdaValue=0.2)
    assert absolute.getLambda() == 0.2
    m = absolute.getM()
    relative = _regularized(noisy_df, lambdaType="relative", lambdaScaling=1e-4)
    assert relative.getLambda() == pytest.approx(1e-4 * np.trace(m) / np.trace(noisy_df["H"]), rel=1e-12)
    # regularizing a smooth true kernel helps: both beat the unregularized fit
    assert _kernel_error(absolute, noisy_df["truth"]) < noisy_df["error0"]
    assert _kernel_error(relative, noisy_df["truth"]) < 0.5 * noisy_df["error0"]
    with pytest.raises(KernelSolutionError, match="no risk curve"):
        absolute.getRiskCurve()


@pytest.mark.parametrize(("mode", "max_cond"), [("minimizeUnbiasedRisk", 5e6), ("minimizeBiasedRisk", 1e3)])
def test_risk_modes_choose_an_interior_lambda_that_helps(noisy_df: dict, mode: str, max_cond: float) -> None:
    solution = _regularized(noisy_df, lambdaType=mode, maxConditionNumber=max_cond)
    lambdas, risks = solution.getRiskCurve()
    assert lambdas.size == 37 and np.all(np.isfinite(risks))
    lam = solution.getLambda()
    assert lambdas[0] < lam < lambdas[-1]
    assert lam == lambdas[np.argmin(risks)]
    error = _kernel_error(solution, noisy_df["truth"])
    assert error < 0.1 * noisy_df["error0"]
    # and it is close to the best lambda of the grid (known only because the truth is known)
    family, _ = _regularized_family(solution.getM(), solution.getB(), noisy_df["H"], lambdas, np.eye(KS * KS + 1))
    best = ((family[:, :-1] - noisy_df["truth"].ravel()) ** 2).sum(axis=1).min()
    assert error < 3.0 * best


def test_biased_risk_truncation_changes_the_risk(noisy_df: dict) -> None:
    unbiased = _regularized(noisy_df, lambdaType="minimizeUnbiasedRisk")
    biased = _regularized(noisy_df, lambdaType="minimizeBiasedRisk", maxConditionNumber=1e3)
    assert not np.allclose(unbiased.getRiskCurve()[1], biased.getRiskCurve()[1])
    # with a limit above cond(M) nothing is truncated: biased == unbiased
    loose = _regularized(noisy_df, lambdaType="minimizeBiasedRisk", maxConditionNumber=1e30)
    np.testing.assert_allclose(loose.getRiskCurve()[1], unbiased.getRiskCurve()[1], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("max_condition", [None, 1e3])
def test_risk_is_an_unbiased_estimate_of_the_kernel_error(max_condition: float | None) -> None:
    """Averaged over noise realisations, risk(λ) + ‖Pa‖² equals the expected squared kernel error.

    Noise is drawn in B (``Cov(B) = M`` for inverse-variance weights); the class's own risk curve
    is checked to be the same function of (M, B).
    """
    ks, side, n_real = 5, 21, 4000
    rng = np.random.default_rng(11)
    truth = GaussianKernel(ks, ks, 1.0, 1.3).array
    template = _star_field(side, rng, n_stars=3)
    clean = _correlate(template, truth)
    cfg = PsfMatchConfigDF()
    cfg.fitForBackground, cfg.kernelSize = True, ks
    cfg.lambdaMin, cfg.lambdaMax, cfg.lambdaStep = 0.0, 6.0, 1.0
    cfg.lambdaType = "minimizeUnbiasedRisk" if max_condition is None else "minimizeBiasedRisk"
    cfg.maxConditionNumber = max_condition or 5e6
    h = makeRegularizationMatrix(cfg)
    solution = RegularizedKernelSolution(makeDeltaFunctionBasisList(ks, ks), True, h, cfg)
    science = clean + rng.normal(0.0, 1.0, clean.shape)
    solution.build(MaskedImage(template, variance=1e-8), MaskedImage(science, variance=1.0), np.ones(clean.shape))
    solution.solve()
    m, lambdas = solution.getM(), solution.getRiskCurve()[0]
    np.testing.assert_allclose(
        solution.getRiskCurve()[1],
        risk_curve(m, solution.getB(), h, lambdas, max_condition=max_condition, fit_background=True),
    )
    # P: the eigenvectors of M kept by the (possibly truncated) pseudo-inverse; G = P N P
    _, kept = eigen_pseudo_inverse(m, max_condition)
    select = np.diag(np.r_[np.ones(m.shape[0] - 1), 0.0])
    loss = kept @ kept.T @ select @ kept @ kept.T
    a_true = np.append(truth.ravel(), 0.0)
    b_samples = m @ a_true + rng.normal(size=(n_real, m.shape[0])) @ np.linalg.cholesky(m).T
    estimated = risk_curve(m, b_samples, h, lambdas, max_condition=max_condition, fit_background=True)
    estimated += a_true @ loss @ a_true
    expected = []
    for lam in lambdas:
        inverse = np.linalg.inv(m + lam * h)
        bias = (inverse @ m - np.eye(m.shape[0])) @ a_true
        expected.append(np.trace(loss @ inverse @ m @ inverse) + bias @ loss @ bias)
    spread = estimated.std(axis=0) / np.sqrt(n_real)
    assert np.all(np.abs(estimated.mean(axis=0) - np.array(expected)) < 4 * spread)


def test_simultaneous_diagonalisation_matches_per_lambda_solves(noisy_df: dict) -> None:
    solution = _regularized(noisy_df, lambdaType="absolute")
    m, b, h = solution.getM(), solution.getB(), noisy_df["H"]
    lambdas = np.array([0.0, 0.3, 10.0, 1e4])
    loss = np.diag(np.r_[np.ones(m.shape[0] - 1), 0.0])
    fast = _regularized_family(m, b, h, lambdas, loss)
    slow = _regularized_family_direct(m, b, h, lambdas, loss)
    np.testing.assert_allclose(fast[0], slow[0], rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(fast[1], slow[1], rtol=1e-6)


def test_regularized_getm_is_unregularized(noisy_df: dict) -> None:
    solution = _regularized(noisy_df, lambdaType="absolute", lambdaValue=0.5)
    plain = StaticKernelSolution(noisy_df["basis"], True)
    plain.build(*noisy_df["stamps"], np.full(noisy_df["stamps"][0].shape, NOISE**2))
    np.testing.assert_array_equal(solution.getM(), plain.getM())
    np.testing.assert_allclose(solution.getM(includeHmat=True), plain.getM() + 0.5 * noisy_df["H"])


def test_regularization_matrix_shape_checks(noisy_df: dict) -> None:
    n = KS * KS
    padded = RegularizedKernelSolution(noisy_df["basis"], True, np.eye(n), noisy_df["cfg"])
    assert padded.getH().shape == (n + 1, n + 1) and padded.getH()[-1].sum() == 0
    with pytest.raises(KernelSolutionError, match="regularization matrix has shape"):
        RegularizedKernelSolution(noisy_df["basis"], True, np.eye(5), noisy_df["cfg"])


def test_lambda_grid() -> None:
    cfg = PsfMatchConfigDF()
    grid = lambda_grid(cfg)  # log, -1..2 step 0.1, inclusive
    assert grid.size == 31
    assert grid[0] == pytest.approx(0.1) and grid[-1] == pytest.approx(100.0)
    cfg.lambdaStepType = "linear"
    with pytest.raises(KernelSolutionError, match="must not go below 0"):
        lambda_grid(cfg)
    cfg.lambdaMin, cfg.lambdaMax, cfg.lambdaStep = 0.0, 1.0, 0.25
    np.testing.assert_allclose(lambda_grid(cfg), [0.0, 0.25, 0.5, 0.75, 1.0])
    bad = types.SimpleNamespace(lambdaMin=0.0, lambdaMax=1.0, lambdaStep=0.5, lambdaStepType="cubic")
    with pytest.raises(KernelSolutionError, match="unknown lambdaStepType 'cubic'"):
        lambda_grid(bad)


def test_unknown_lambda_type_and_bad_values(noisy_df: dict) -> None:
    fields = {name: getattr(noisy_df["cfg"], name) for name in type(noisy_df["cfg"]).model_fields}
    for lambda_type, extra, match in [
        ("foo", {}, "unknown lambdaType 'foo'"),
        ("absolute", {"lambdaValue": -1.0}, "lambdaValue must be >= 0"),
    ]:
        cfg = types.SimpleNamespace(**{**fields, "lambdaType": lambda_type, **extra})
        solution = RegularizedKernelSolution(noisy_df["basis"], True, noisy_df["H"], cfg)
        solution.build(*noisy_df["stamps"], np.ones(noisy_df["stamps"][0].shape))
        with pytest.raises(KernelSolutionError, match=match):
            solution.solve()
    cfg = types.SimpleNamespace(**{**fields, "lambdaType": "relative"})
    solution = RegularizedKernelSolution(noisy_df["basis"], True, np.zeros_like(noisy_df["H"]), cfg)
    solution.build(*noisy_df["stamps"], np.ones(noisy_df["stamps"][0].shape))
    with pytest.raises(KernelSolutionError, match=r"needs tr\(H\) > 0"):
        solution.solve()


# ------------------------------------------------------------------------------------------------
# spatial solution
# ------------------------------------------------------------------------------------------------

REGION = Box2I((0, 0), (510, 510))


@pytest.fixture(scope="module")
def delta_pair_constraints() -> tuple[list, list]:
    """(M, B) of 25 delta-pair candidates fitted with the default 27-term AL basis."""
    basis = makeAlardLuptonBasisList(10, 3, (0.7, 1.5, 3.0), (4, 2, 2))
    template = np.zeros((51, 51))
    template[25, 25] = 1.0
    science = template.copy()
    out = {}
    for fit_bg in (False, True):
        solution = StaticKernelSolution(basis, fit_bg)
        solution.build(MaskedImage(template, variance=1.0), MaskedImage(science, variance=1.0), np.ones((51, 51)))
        out[fit_bg] = (solution.getM(), solution.getB())
    positions = [(x, y) for x in (1, 11, 21, 31, 41) for y in (1, 11, 21, 31, 41)]
    return basis, positions, out


@pytest.mark.parametrize("order", [0, 1, 2])
def test_spatial_kernel_parameter_shapes(delta_pair_constraints: tuple, order: int) -> None:
    basis, positions, constraints = delta_pair_constraints
    cfg = PsfMatchConfigAL()
    cfg.spatialKernelOrder = order
    cfg.fitForBackground = False
    solution = SpatialKernelSolution(
        basis, Chebyshev1Function2.from_bbox(order, REGION), Chebyshev1Function2.from_bbox(0, REGION), cfg
    )
    assert solution.hasConstantFirstTerm()
    m, b = constraints[False]
    for x, y in positions:
        solution.addConstraint(x, y, m, b)
    solution.solve()
    kernel, background = solution.getSolutionPair()
    n_terms = (order + 1) * (order + 2) // 2
    if order == 0:
        assert not kernel.isSpatiallyVarying()
        assert kernel.getKernelParameters().shape == (27,)
    else:
        params = kernel.getSpatialParameters()
        assert kernel.isSpatiallyVarying() and params.shape == (27, n_terms)
        assert np.all(params[0, 1:] == 0.0)
        assert isinstance(kernel.getSpatialFunction(), Chebyshev1Function2)
    assert background.getNParameters() == 1 and background.getParameters()[0] == 0.0
    assert solution.getNConstraints() == 25


@pytest.mark.parametrize(("sko", "bgo"), [(0, 0), (1, 0), (0, 1), (1, 1), (2, 2)])
def test_spatial_background_parameter_counts(delta_pair_constraints: tuple, sko: int, bgo: int) -> None:
    basis, positions, constraints = delta_pair_constraints
    cfg = PsfMatchConfigAL()
    cfg.fitForBackground = True
    solution = SpatialKernelSolution(
        basis, Chebyshev1Function2.from_bbox(sko, REGION), Chebyshev1Function2.from_bbox(bgo, REGION), cfg
    )
    m, b = constraints[True]
    for x, y in positions:
        solution.addConstraint(x, y, m, b)
    solution.solve()
    background = solution.getBackground()
    assert background.getNParameters() == (bgo + 1) * (bgo + 2) // 2
    assert solution.getNUnknowns() == 26 * (sko + 1) * (sko + 2) // 2 + 1 + (bgo + 1) * (bgo + 2) // 2
    assert np.isfinite(solution.getConditionNumber("EIGENVALUE"))


@pytest.mark.parametrize(("cft", "fit_bg"), [(True, True), (False, True), (True, False), (False, False)])
def test_structured_accumulation_equals_dense_design(cft: bool, fit_bg: bool) -> None:
    rng = np.random.default_rng(7)
    basis = makeDeltaFunctionBasisList(2, 2)
    cfg = PsfMatchConfigDF()
    cfg.fitForBackground = fit_bg
    solution = SpatialKernelSolution(
        basis, Chebyshev1Function2.from_bbox(2, REGION), Chebyshev1Function2.from_bbox(1, REGION), cfg,
        constant_first_term=cft,
    )
    n = 4 + int(fit_bg)
    dense_m = np.zeros((solution.getNUnknowns(),) * 2)
    dense_b = np.zeros(solution.getNUnknowns())
    for _ in range(4):
        x, y = rng.uniform(0, 509, 2)
        a = rng.normal(size=(8, n))
        q, w = a.T @ a, rng.normal(size=n)
        solution.addConstraint(x, y, q, w)
        phi = solution.design_matrix(x, y)
        dense_m += phi.T @ q @ phi
        dense_b += phi.T @ w
    np.testing.assert_allclose(solution.getM(), dense_m, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(solution.getB(), dense_b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cft", [True, False])
def test_spatial_solution_recovers_a_varying_kernel(al_basis: list, cft: bool) -> None:
    """Local (M, B) of noiseless candidates from a known spatial model give back that model exactly."""
    rng = np.random.default_rng(9)
    region = Box2I((0, 0), (300, 200))
    kfunc = Chebyshev1Function2.from_bbox(1, region)
    bgfunc = Chebyshev1Function2.from_bbox(1, region)
    nb = len(al_basis)
    params = rng.normal(0.0, 0.05, size=(nb, 3))
    params[0] = [1.0, 0.0, 0.0] if cft else [1.0, 0.1, -0.05]
    bg_params = np.array([3.0, 0.5, -0.25])
    truth = LinearCombinationKernel(al_basis, spatialFunction=kfunc)
    truth.setSpatialParameters(params)
    bg_truth = bgfunc.copy_with(bg_params)
    cfg = PsfMatchConfigAL()
    cfg.fitForBackground = True
    solution = SpatialKernelSolution(al_basis, kfunc, bgfunc, cfg, constant_first_term=cft)
    for x, y in [(20, 20), (150, 30), (280, 25), (30, 100), (160, 110), (270, 100), (40, 180), (150, 170), (290, 185)]:
        template = _star_field(31, rng, n_stars=4) + rng.normal(0.0, 3.0, (31, 31))
        science = _correlate(template, truth.computeImage(x, y)) + bg_truth(x, y)
        xy0 = (x - 15, y - 15)
        local = StaticKernelSolution(al_basis, True)
        local.build(MaskedImage(template, variance=1.0, xy0=xy0), MaskedImage(science, variance=1.0, xy0=xy0),
                    np.ones((31, 31)))
        solution.addConstraint(x, y, local.getM(), local.getB())
    solution.solve()
    kernel, background = solution.getSolutionPair()
    np.testing.assert_allclose(kernel.getSpatialParameters(), params, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(background.getParameters(), bg_params, rtol=1e-6, atol=1e-7)
    assert solution.getKsum(150.0, 100.0) == pytest.approx(truth.computeSum(150.0, 100.0), abs=1e-8)


def test_spatial_single_pca_basis_and_polynomial_model() -> None:
    basis = [GaussianKernel(5, 5, 1.0)]
    cfg = PsfMatchConfigDF()  # usePcaForSpatialKernel=True -> constant first term
    cfg.fitForBackground = False
    solution = SpatialKernelSolution(basis, PolynomialFunction2(1), PolynomialFunction2(2), cfg)
    assert solution.hasConstantFirstTerm() and solution.getNUnknowns() == 1
    for x in (0.0, 10.0):
        solution.addConstraint(x, 5.0, np.array([[2.0]]), np.array([3.0]))
    solution.solve()
    kernel, background = solution.getSolutionPair()
    np.testing.assert_allclose(kernel.getSpatialParameters(), [[1.5, 0.0, 0.0]])
    assert isinstance(background, PolynomialFunction2) and background.getNParameters() == 1
    assert background(3.0, 4.0) == 0.0


def test_spatial_solution_errors(al_basis: list) -> None:
    cfg = PsfMatchConfigAL()
    cfg.fitForBackground = True
    kfunc = Chebyshev1Function2.from_bbox(1, REGION)
    with pytest.raises(KernelSolutionError, match="no background spatial function"):
        SpatialKernelSolution(al_basis, kfunc, None, cfg)
    solution = SpatialKernelSolution(al_basis, kfunc, Chebyshev1Function2.from_bbox(0, REGION), cfg)
    with pytest.raises(KernelSolutionError, match="no constraints"):
        solution.solve()
    with pytest.raises(KernelSolutionError, match="expects 10 local unknowns"):
        solution.addConstraint(1.0, 1.0, np.eye(9), np.ones(9))
    solution.addConstraint(1.0, 1.0, np.full((10, 10), np.nan), np.ones(10))
    with pytest.raises(KernelSolutionError, match="condition number"):
        solution.solve()
