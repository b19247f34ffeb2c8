"""The dependency installer: what is missing, which interpreter, the pip command, a real install into a target."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

from cropmapper.ui import installer


def test_finds_installed_and_missing_packages():
    found = {d.name: d for d in installer.check_dependencies({"torch": "2.1", "einops": "0.6"})}
    assert installer.version_tuple(found["torch"].found) >= (2, 1)
    assert found["einops"].found == importlib.metadata.version("einops")
    assert installer.missing_dependencies({"torch": "2.1", "einops": "0.6"}) == []
    missing = installer.missing_dependencies({"torch": "999.0", "surely-not-a-package-xyz": "1.0"})
    assert [d.name for d in missing] == ["torch", "surely-not-a-package-xyz"]
    assert "too old" in missing[0].problem and "not installed" in missing[1].problem


def test_version_tuple_ignores_local_suffixes():
    assert installer.version_tuple("2.13.0+cpu") == (2, 13, 0)
    assert installer.version_tuple("0.8.2") > installer.version_tuple("0.6")
    assert installer.version_tuple("garbage") == ()


def test_packages_folder_is_per_python_version(tmp_path):
    folder = installer.packages_dir((3, 11, 2), root=tmp_path)
    assert folder == tmp_path / "py3.11"
    assert installer.add_packages_dir_to_path(folder) is False  # does not exist yet
    folder.mkdir()
    try:
        assert installer.add_packages_dir_to_path(folder) is True
        assert sys.path[-1] == str(folder)  # behind QGIS's and other plugins' packages
        assert installer.add_packages_dir_to_path(folder) is False  # only once
    finally:
        sys.path.remove(str(folder))


def test_interpreter_candidates_per_os():
    none = lambda name: None  # noqa: E731 - no PATH lookups
    linux = installer.python_candidates("/usr/bin/qgis", None, "/usr", "linux", (3, 11), which=none)
    assert linux[0] == "/usr/bin/python3.11"
    windows = installer.python_candidates(
        r"C:\OSGeo4W\bin\qgis-bin.exe", None, r"C:\OSGeo4W\apps\Python39", "win32", (3, 9), which=none
    )
    assert windows[0].endswith("Python39/python.exe") or windows[0].endswith("Python39\\python.exe")
    mac = installer.python_candidates(
        "/Applications/QGIS.app/Contents/MacOS/QGIS", None, "/Applications/QGIS.app/Contents/Frameworks/Python.framework/Versions/3.9",
        "darwin", (3, 9), which=none,
    )
    assert "/Applications/QGIS.app/Contents/MacOS/bin/python3" in mac
    # A real Python interpreter (venv, python.exe) is taken as it is.
    assert installer.python_candidates("/x/.venv/bin/python", None, "/x/.venv", "linux", (3, 11), which=none)[0] == (
        "/x/.venv/bin/python"
    )


def test_find_python_inside_qgis_is_not_qgis(monkeypatch):
    """Inside QGIS sys.executable is the qgis binary: the installer must find the Python QGIS embeds instead."""
    monkeypatch.setattr(sys, "executable", "/usr/bin/qgis")
    monkeypatch.setattr(sys, "_base_executable", "/usr/bin/qgis", raising=False)
    python = installer.find_python()
    assert Path(python).name.startswith("python")
    assert installer.interpreter_version(python) == sys.version_info[:2]
    # That interpreter is the one QGIS's Python libraries belong to: it can import qgis.core.
    out = subprocess.run([python, "-c", "import qgis.core; print('ok')"], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_constraints_pin_qgis_numpy_only(tmp_path):
    path = installer.write_constraints(tmp_path)
    pins = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    assert pins == [f"numpy=={importlib.metadata.version('numpy')}"]


def test_pip_command_cpu_and_cuda(tmp_path):
    constraints = tmp_path / "c.txt"
    cpu = installer.pip_command("/usr/bin/python3.11", tmp_path / "py3.11", installer.requirement_specs(), constraints)
    assert cpu[:4] == ["/usr/bin/python3.11", "-m", "pip", "install"]
    assert cpu[cpu.index("--target") + 1] == str(tmp_path / "py3.11")
    assert cpu[cpu.index("--constraint") + 1] == str(constraints)
    assert cpu[cpu.index("--index-url") + 1] == "https://download.pytorch.org/whl/cpu"
    assert cpu[-2:] == ["torch==2.13.0", "einops==0.8.2"]
    assert not any("rasterio" in part or "pyproj" in part for part in cpu)
    cuda = installer.pip_command("python", tmp_path, ["torch==2.13.0"], cuda="cu121")
    assert cuda[cuda.index("--index-url") + 1] == "https://download.pytorch.org/whl/cu121"
    plain = installer.pip_command("python", tmp_path, ["einops"], index_url=None)
    assert "--index-url" not in plain


@pytest.mark.timeout(300)
def test_installs_a_pure_python_package_into_a_target(tmp_path):
    target = installer.packages_dir(sys.version_info, root=tmp_path / "python_packages")
    lines: list[str] = []
    result = installer.install(
        target=target, requirements=["einops==0.8.2"], index_url=None, extra_args=["--no-deps"], log=lines.append
    )
    try:
        assert result.ok, "\n".join(lines)
        assert lines[0].startswith("$ ") and "--target" in lines[0]
        assert (target / "einops" / "__init__.py").is_file()
        assert list(target.glob("einops-0.8.2.dist-info"))
        assert str(target) == sys.path[-1]  # usable at once, shadowing nothing
        assert not list(target.glob("numpy*"))
    finally:
        if str(target) in sys.path:
            sys.path.remove(str(target))


@pytest.mark.timeout(300)
def test_installer_dialog_runs_pip_in_a_task_with_a_visible_log(tmp_path, wait_for):
    from cropmapper.ui.installer_dialog import InstallerDialog

    dialog = InstallerDialog(missing=installer.missing_dependencies({"surely-not-a-package-xyz": "1.0"}))
    assert "surely-not-a-package-xyz is not installed" in dialog.info.text()
    results = []
    dialog.installed.connect(results.append)
    target = tmp_path / "py"
    dialog.start(target=target, requirements=["einops==0.8.2"], index_url=None, extra_args=["--no-deps"])
    assert not dialog.install_button.isEnabled()
    try:
        wait_for(lambda: results, timeout=240)
    finally:
        if str(target) in sys.path:
            sys.path.remove(str(target))
    assert results[0].ok, dialog.log_view.toPlainText()
    log = dialog.log_view.toPlainText()
    assert "--target" in log and "einops" in log
    # torch and einops are imported in this test session: QGIS would need a restart to use new copies.
    assert results[0].restart and "Restart QGIS" in dialog.status.text()
    assert dialog.install_button.isEnabled()
    dialog.close()


def test_copies_of_packages_python_has_are_removed_and_the_folder_goes_last(tmp_path):
    """pip --target brings torch's dependencies (jinja2, MarkupSafe, ...) even when QGIS has them: they must go, and
    the folder must not be first on sys.path, where its copies would shadow other plugins' packages."""
    target = tmp_path / "py"
    target.mkdir()
    jinja2 = importlib.metadata.version("jinja2")  # QGIS's Python has it (Debian: python3-jinja2)
    _fake_dist(target, "Jinja2", "jinja2", jinja2)  # the copy pip --target leaves
    (target / "jinja2" / "__pycache__").mkdir()
    (target / "jinja2" / "__pycache__" / "late.cpython-311.pyc").write_bytes(b"")  # compiled later: not in RECORD
    own, info = _fake_dist(target, "surely-missing-pkg", "surely_missing_pkg", "1.0")
    removed = installer.remove_duplicates(target, keep=["einops"])
    assert removed == [f"Jinja2 {jinja2}"]
    assert not (target / "jinja2").exists() and not list(target.glob("[Jj]inja2-*"))
    assert (own / "__init__.py").is_file() and info.is_dir()  # what this Python lacks stays
    _fake_dist(target, "Jinja2", "jinja2", "999.0")  # newer than this Python's: torch may need it, it stays
    assert installer.remove_duplicates(target, keep=[]) == [] and (target / "jinja2").is_dir()

    try:
        assert installer.add_packages_dir_to_path(target) is True
        assert sys.path[-1] == str(target) and sys.path.index(str(target)) > 0
    finally:
        sys.path.remove(str(target))


def _fake_dist(target: Path, name: str, package: str, version: str) -> tuple[Path, Path]:
    """A package folder and its .dist-info with a RECORD, as pip --target writes them."""
    folder = target / package
    folder.mkdir(exist_ok=True)
    (folder / "__init__.py").write_text("")
    info = target / f"{package}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "RECORD").write_text(f"{package}/__init__.py,,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n")
    return folder, info
