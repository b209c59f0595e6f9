"""Tests for diffim.framework.debug: DebugInfo, aliases, lsstDebug compatibility, load_debug."""

from __future__ import annotations

import copy
import importlib
import logging
import multiprocessing
import pickle
import sys
import textwrap
import types
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from diffim.framework import debug

REPO_DEBUG_FILE = Path(__file__).resolve().parents[1] / "debug.py"

sys.path.insert(0, str(Path(__file__).parent))
from _reference_debug import REFERENCE_DEBUG_PY as LSST_DEBUG_PY  # noqa: E402

# A stand-in for LSST's own lsstDebug module (module-globals semantics), for the "real one
# installed" path.
FAKE_REAL_LSSTDEBUG = """\
import sys


class Info:
    def __init__(self, modname):
        self.__dict__["_dict"] = sys.modules[modname].__dict__

    def __getattr__(self, what):
        return self._dict.get(what, False)

    def __setattr__(self, what, value):
        self._dict[what] = value


getInfo = Info
"""


@pytest.fixture(autouse=True)
def clean_debug_state() -> Iterator[None]:
    """Start and end every test with no flags, the original Info, frame 1, no shim."""
    aliases = debug.debug_aliases()
    debug.reset_debug()
    sys.modules.pop("lsstDebug", None)
    yield
    debug.reset_debug()
    sys.modules.pop("lsstDebug", None)
    for lsst_prefix in debug.debug_aliases():
        debug.remove_alias(lsst_prefix)
    for lsst_prefix, our_prefix in aliases.items():
        debug.add_alias(our_prefix, lsst_prefix)


def _write(directory: Path, text: str, name: str = "debug.py") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _assert_reference_flags(info: debug.DebugInfo) -> None:
    assert info.display is True
    assert info.maskTransparency == 80
    assert info.displayCandidates is True
    assert not info.displayKernelBasis
    assert info.displayKernelMosaic is True
    assert not info.plotKernelSpatialModel
    assert info.plotKernelCoefficients is True
    assert info.showBadCandidates is True


# ------------------------------------------------------------------ DebugInfo and the registry


def test_unset_attributes_read_false_and_setting_works() -> None:
    info = debug.Info("some.module")
    assert info.display is False
    assert info.anything_at_all is False
    info.display = {"child": 2}
    assert debug.Info("some.module").display == {"child": 2}
    assert info.as_dict() == {"display": {"child": 2}}
    assert "some.module" in repr(info) and "display={'child': 2}" in repr(info)


def test_no_keyerror_and_no_module_global_pollution() -> None:
    assert debug.Info("not.an.imported.module").display is False
    log_module = importlib.import_module("diffim.framework.log")
    debug.Info("diffim.framework.log").displayMarker = True
    assert not hasattr(log_module, "displayMarker")


def test_dunder_lookups_are_not_flags_and_copy_pickle_work() -> None:
    info = debug.Info("pickled.mod")
    info.display = True
    with pytest.raises(AttributeError):
        info.__missing_protocol__  # noqa: B018
    for clone in (pickle.loads(pickle.dumps(info)), copy.copy(info), copy.deepcopy(info)):
        assert clone.display is True
        assert clone.unset is False


def test_frame_default_and_getdebugframe() -> None:
    assert debug.frame == 1
    assert debug.getDebugFrame({"child": 3}, "child") == 3
    assert debug.getDebugFrame({"child": 3}, "other") is None
    assert debug.getDebugFrame(True, "child") is None
    assert debug.getDebugFrame(False, "child") is None


def test_alias_shares_one_object() -> None:
    debug.add_alias("diffim.testtasks", "lsst.test.diffim")
    ours = debug.Info("diffim.testtasks.psfMatch")
    theirs = debug.Info("lsst.test.diffim.psfMatch")
    assert ours is theirs
    theirs.display = True
    assert debug.debug_info("diffim.testtasks.psfMatch").display is True
    assert debug.Info("lsst.test.diffimx.psfMatch") is not ours  # prefix must end at a dot


def test_alias_added_late_merges_existing_flags() -> None:
    debug.Info("lsst.late.mod").early = 1
    debug.Info("diffim.late.mod").other = 2
    debug.add_alias("diffim.late", "lsst.late")
    merged = debug.Info("diffim.late.mod")
    assert merged is debug.Info("lsst.late.mod")
    assert (merged.early, merged.other) == (1, 2)


def test_user_replaced_info_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    def user_info(name: str) -> object:
        di = debug.getInfo(name)
        if name == "pkg.mod":
            di.flag = 7
        return di

    monkeypatch.setattr(debug, "Info", user_info)
    assert debug.getInfo is not user_info
    assert debug.debug_info("pkg.mod").flag == 7
    assert debug.debug_info("pkg.other").flag is False


def test_user_info_returning_foreign_object_is_copied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(debug, "Info", lambda name: types.SimpleNamespace(display=name == "pkg.mod"))
    assert debug.debug_info("pkg.mod").display is True
    assert debug.debug_info("pkg.mod") is debug.getInfo("pkg.mod")


def test_reset_debug_restores_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    debug.Info("x.y").display = True
    monkeypatch.setattr(debug, "Info", lambda name: None)
    monkeypatch.setattr(debug, "frame", 9)
    sys.modules["debug"] = types.ModuleType("debug")
    debug.reset_debug()
    assert debug.Info is debug.getInfo
    assert debug.frame == 1
    assert "debug" not in sys.modules
    assert debug.Info("x.y").display is False


# ------------------------------------------------------------------ lsstDebug compatibility


def test_shim_makes_import_lsstdebug_ours() -> None:
    assert debug.install_lsstdebug_shim() is True
    assert debug.install_lsstdebug_shim() is True  # idempotent
    import lsstDebug

    assert lsstDebug is debug
    assert lsstDebug.getInfo("a.b") is debug.Info("a.b")


def test_reference_debug_py_verbatim(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _write(tmp_path, LSST_DEBUG_PY)
    debug.frame = 5
    caplog.set_level(logging.INFO, logger="diffim.framework.debug")
    loaded = debug.load_debug(path)
    assert loaded == str(path.resolve())
    assert any(str(path.resolve()) in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)

    import lsstDebug

    assert lsstDebug is debug
    assert debug.frame == 1  # the file's ``lsstDebug.frame = 1``
    assert debug.Info.__name__ == "DebugInfo"  # the file replaced Info ...
    assert debug.getInfo is not debug.Info  # ... and getInfo still is the original
    debug.add_alias("diffim.tasks", "lsst.ip.diffim")
    info = debug.debug_info("diffim.tasks.psfMatch")
    _assert_reference_flags(info)
    assert debug.getInfo("lsst.ip.diffim.psfMatch") is info
    assert debug.debug_info("diffim.tasks.imagePsfMatch").display is False


def test_reference_debug_py_found_in_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, LSST_DEBUG_PY)
    monkeypatch.chdir(tmp_path)
    loaded = debug.load_debug()
    assert loaded is not None and Path(loaded).resolve() == (tmp_path / "debug.py").resolve()
    assert debug.debug_info("lsst.ip.diffim.psfMatch").maskTransparency == 80


def test_real_lsstdebug_is_left_alone_and_consulted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    _write(real_dir, FAKE_REAL_LSSTDEBUG, name="lsstDebug.py")
    monkeypatch.syspath_prepend(str(real_dir))
    assert debug.install_lsstdebug_shim() is False
    assert "lsstDebug" not in sys.modules

    # Without a user file: the real Info reads module globals, for imported modules only.
    import lsstDebug as real

    module = types.ModuleType("fake_mod_for_debug")
    module.display = "frame-7"
    monkeypatch.setitem(sys.modules, "fake_mod_for_debug", module)
    assert debug.debug_info("fake_mod_for_debug").display == "frame-7"
    assert debug.debug_info("fake_mod_for_debug").displayOther is False
    assert debug.debug_info("never.imported").display is False  # real KeyError is swallowed

    # With the LSST user file patching the real module.
    real_info_class = real.Info
    debug.load_debug(_write(tmp_path, LSST_DEBUG_PY))
    assert sys.modules["lsstDebug"] is real
    assert real.Info.__name__ == "DebugInfo"
    debug.add_alias("diffim.tasks", "lsst.ip.diffim")
    _assert_reference_flags(debug.debug_info("diffim.tasks.psfMatch"))
    assert real.getInfo is real_info_class  # lent only for the duration of the call


# ------------------------------------------------------------------ load_debug


def test_repo_debug_py_sets_flags() -> None:
    debug.load_debug(REPO_DEBUG_FILE)
    psf = debug.debug_info("diffim.tasks.psfMatch")
    _assert_reference_flags(psf)
    image = debug.debug_info("diffim.tasks.imagePsfMatch")
    assert image.display and image.displayTemplate and image.displaySciIm
    assert image.displaySpatialCells and image.displayDiffIm
    assert debug.frame == 1
    debug.add_alias("diffim.tasks", "lsst.ip.diffim")
    assert debug.debug_info("lsst.ip.diffim.psfMatch") is psf


def test_reload_executes_file_again(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
        from diffim.framework import debug
        info = debug.getInfo("count.mod")
        info.count = info.count + 1
        """,
    )
    debug.load_debug(path)
    debug.load_debug(path)
    assert debug.getInfo("count.mod").count == 2


def test_raising_debug_file_single_line_error(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
        import lsstDebug
        lsstDebug.frame = 2

        x = undefined_name
        """,
    )
    with pytest.raises(debug.DebugFileError) as info:
        debug.load_debug(path)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"debug file {str(path.resolve())!r} failed at line 4: NameError:")
    assert "undefined_name" in text and "--debug" in text
    assert isinstance(info.value.__cause__, NameError)
    assert isinstance(info.value, RuntimeError)
    assert "debug" not in sys.modules


def test_error_inside_function_reports_innermost_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """\
        def configure():
            raise ValueError("bad\\nflag")

        configure()
        """,
    )
    with pytest.raises(debug.DebugFileError, match=r"failed at line 2: ValueError: bad flag —"):
        debug.load_debug(path)


def test_syntax_error_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "import lsstDebug\ndef broken(:\n    pass\n")
    with pytest.raises(debug.DebugFileError) as info:
        debug.load_debug(path)
    text = str(info.value)
    assert "\n" not in text
    assert f"debug file {str(path.resolve())!r} failed at line 2: SyntaxError:" in text
    assert isinstance(info.value.__cause__, SyntaxError)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope.py"
    with pytest.raises(debug.DebugFileError, match=rf"debug file {str(missing)!r} not found"):
        debug.load_debug(missing)
    with pytest.raises(debug.DebugFileError, match="is not a file"):
        debug.load_debug(tmp_path)


def test_no_debug_module_warns_and_returns_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Keep only sys.path entries without a debug module (e.g. drop the repo root under python -m).
    kept = [p for p in sys.path if not (Path(p or ".") / "debug.py").exists()]
    monkeypatch.setattr(sys, "path", kept)
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="diffim.framework.debug"):
        assert debug.load_debug() is None
    assert any("No 'debug' module found" in r.getMessage() for r in caplog.records)


def test_custom_log_receives_messages(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _write(tmp_path, "x = 1\n")
    caplog.set_level(logging.INFO, logger="diffim.test.debuglog")
    debug.load_debug(path, log=logging.getLogger("diffim.test.debuglog"))
    assert [r.name for r in caplog.records] == ["diffim.test.debuglog"]


def test_load_in_spawn_worker() -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        loaded = pool.submit(debug.load_debug, str(REPO_DEBUG_FILE)).result(timeout=60)
        info = pool.submit(debug.debug_info, "diffim.tasks.psfMatch").result(timeout=60)
    assert Path(loaded).resolve() == REPO_DEBUG_FILE.resolve()  # debug.py links to the demo data copy
    assert isinstance(info, debug.DebugInfo)
    _assert_reference_flags(info)


def test_reference_debug_text_is_the_seed_page_verbatim() -> None:
    seed = Path(__file__).resolve().parents[1].parent / "shared" / "seeds" / "000_1e1e8d5c4477b2d3.txt"
    if not seed.is_file():
        pytest.skip(f"reference page {seed} is absent (it lives beside the repository)")
    page = " ".join(seed.read_text().split())
    assert " ".join(LSST_DEBUG_PY.split()) in page
