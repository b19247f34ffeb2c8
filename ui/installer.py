"""Installing the dependencies QGIS does not ship (PyTorch, einops), one function per step.

The packages go with ``pip install --target`` into a folder of the plugin per Python version
(``<plugin>/python_packages/py3.11``), run by the Python interpreter QGIS itself embeds, with a constraints file that
pins QGIS's own numpy. Only what is missing is installed, and copies of packages this Python already has (jinja2,
setuptools, ...) are removed again; the folder goes at the end of ``sys.path`` when the plugin starts, so it never
shadows the packages QGIS or other plugins use. Nothing here imports torch.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

PLUGIN_DIR = Path(__file__).resolve().parent.parent
PACKAGES_ROOT = PLUGIN_DIR / "python_packages"

# What the engine needs at least, and what the installer installs (the versions the engine is tested with).
MINIMUM_VERSIONS: dict[str, str] = {"torch": "2.1", "einops": "0.6"}
# pystac-client (pure Python) is for "Search Sentinel-2…" only, so it is installed along but not required to start.
INSTALL_PINS: dict[str, str] = {"pystac-client": "0.9.1", "torch": "2.13.0", "einops": "0.8.2"}
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH_CUDA_INDEX = "https://download.pytorch.org/whl/{cuda}"  # cuda: cu118, cu121, cu124, cu126 ...
CUDA_BUILDS = ("cu126", "cu124", "cu121", "cu118")
PYPI_INDEX = "https://pypi.org/simple"
# Packages QGIS's own libraries are built against: never shadowed by copies in the target folder.
PROTECTED_PACKAGES = ("numpy",)


@dataclass(frozen=True)
class Dependency:
    """A required package and what was found of it."""

    name: str
    minimum: str
    found: Optional[str]  # installed version, None when missing

    @property
    def problem(self) -> str:
        if self.found is None:
            return f"{self.name} is not installed (needs {self.minimum} or newer)"
        return f"{self.name} {self.found} is too old (needs {self.minimum} or newer)"


def packages_dir(version: Sequence[int] = sys.version_info, root: Path = PACKAGES_ROOT) -> Path:
    """The plugin's package folder for one Python version, e.g. ``python_packages/py3.11``."""
    return root / f"py{version[0]}.{version[1]}"


def add_packages_dir_to_path(folder: Optional[Path] = None) -> bool:
    """Puts the plugin's package folder (when it exists) at the end of ``sys.path``, behind QGIS's and other plugins'
    packages, which it must not shadow; True if it was added."""
    folder = folder or packages_dir()
    if not folder.is_dir() or str(folder) in sys.path:
        return False
    sys.path.append(str(folder))
    importlib.invalidate_caches()
    return True


def version_tuple(text: str) -> tuple[int, ...]:
    """``'2.13.0+cpu'`` -> ``(2, 13, 0)``: the leading numeric release, enough to compare minimum versions."""
    match = re.match(r"\d+(?:\.\d+)*", text.strip())
    return tuple(int(p) for p in match.group(0).split(".")) if match else ()


def installed_version(name: str) -> Optional[str]:
    """The version of the distribution ``name`` visible on ``sys.path``, None when missing (never imports it)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_dependencies(
    minimum: Optional[dict[str, str]] = None, version_of: Callable[[str], Optional[str]] = installed_version
) -> list[Dependency]:
    """Every required package with its installed version."""
    minimum = MINIMUM_VERSIONS if minimum is None else minimum
    return [Dependency(name, low, version_of(name)) for name, low in minimum.items()]


def missing_dependencies(minimum: Optional[dict[str, str]] = None) -> list[Dependency]:
    """The required packages that are missing or older than their minimum version."""
    return [
        dep
        for dep in check_dependencies(minimum)
        if dep.found is None or version_tuple(dep.found) < version_tuple(dep.minimum)
    ]


def python_candidates(
    executable: str,
    base_executable: Optional[str],
    exec_prefix: str,
    platform: str,
    version: Sequence[int],
    which: Callable[[str], Optional[str]] = shutil.which,
) -> list[str]:
    """Paths that may be the Python interpreter QGIS embeds, most likely first.

    Inside QGIS ``sys.executable`` is QGIS itself (``qgis``, ``qgis-bin.exe``, ``QGIS.app/Contents/MacOS/QGIS``), so the
    interpreter is found next to the Python installation QGIS runs (``sys.exec_prefix``), then on PATH by its
    exact version.
    """
    major_minor = f"{version[0]}.{version[1]}"
    candidates: list[str] = []
    for path in (executable, base_executable):
        if path and re.match(r"python(\d+(\.\d+)?)?(\.exe)?$", Path(path).name, re.IGNORECASE):
            candidates.append(path)
    if platform.startswith("win"):
        candidates += [os.path.join(exec_prefix, "python.exe"), os.path.join(exec_prefix, "python3.exe")]
    else:
        candidates += [
            os.path.join(exec_prefix, "bin", f"python{major_minor}"),
            os.path.join(exec_prefix, "bin", "python3"),
        ]
        if platform == "darwin":  # QGIS.app: Contents/MacOS/bin/python3
            candidates.append(os.path.join(os.path.dirname(executable), "bin", "python3"))
    for name in (f"python{major_minor}", "python3", "python"):
        found = which(name)
        if found:
            candidates.append(found)
    unique: list[str] = []
    for path in candidates:
        if path not in unique:
            unique.append(path)
    return unique


def interpreter_version(python: str) -> Optional[tuple[int, int]]:
    """The (major, minor) version of the interpreter at ``python``, None if it cannot run."""
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            **_no_window(),
        )
    except (OSError, subprocess.SubprocessError):
        return None
    parts = version_tuple(out.stdout) if out.returncode == 0 else ()
    return (parts[0], parts[1]) if len(parts) >= 2 else None


def find_python() -> str:
    """The interpreter QGIS runs: the first candidate that exists and has the same major.minor version.

    Raises ``RuntimeError`` with a plain message when none is found.
    """
    version = sys.version_info
    for path in python_candidates(
        sys.executable, getattr(sys, "_base_executable", None), sys.exec_prefix, sys.platform, version
    ):
        if os.path.isfile(path) and interpreter_version(path) == (version[0], version[1]):
            return path
    raise RuntimeError(
        f"Cannot find the Python {version[0]}.{version[1]} interpreter that QGIS uses (looked in {sys.exec_prefix}). "
        "Install PyTorch and einops with that Python's pip instead."
    )


def write_constraints(folder: Path) -> Path:
    """Writes a pip constraints file pinning QGIS's own numpy; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["# QGIS's own libraries are built against these: keep them."]
    for name in PROTECTED_PACKAGES:
        found = installed_version(name)
        if found:
            lines.append(f"{name}=={found}")
    path = folder / "constraints.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def requirement_specs(pins: Optional[dict[str, str]] = None) -> list[str]:
    """``['pystac-client==0.9.1', 'torch==2.13.0', 'einops==0.8.2']``."""
    pins = INSTALL_PINS if pins is None else pins
    return [f"{name}=={version}" if version else name for name, version in pins.items()]


def pip_command(
    python: str,
    target: Path,
    requirements: Sequence[str],
    constraints: Optional[Path] = None,
    cuda: Optional[str] = None,
    index_url: Optional[str] = "torch",
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The pip command line that installs ``requirements`` into ``target``.

    ``index_url='torch'`` takes PyTorch's CPU wheel index (or the CUDA one when ``cuda`` is e.g. ``'cu121'``) with PyPI
    as the extra index; ``None`` uses pip's configured index alone.
    """
    command = [
        python, "-m", "pip", "install",
        "--upgrade", "--target", str(target),
        "--disable-pip-version-check", "--no-input", "--no-warn-script-location", "--prefer-binary",
    ]  # fmt: skip
    if constraints is not None:
        command += ["--constraint", str(constraints)]
    if index_url == "torch":
        command += ["--index-url", TORCH_CUDA_INDEX.format(cuda=cuda) if cuda else TORCH_CPU_INDEX]
        command += ["--extra-index-url", PYPI_INDEX]
    elif index_url:
        command += ["--index-url", index_url]
    return command + list(extra_args) + list(requirements)


def pip_environment() -> dict[str, str]:
    """The environment for pip: without QGIS's PYTHONHOME/PYTHONPATH overrides that would confuse it."""
    env = dict(os.environ)
    for key in ("PIP_TARGET", "PIP_PREFIX", "PIP_USER", "PYTHONPATH"):
        env.pop(key, None)
    env["PYTHONNOUSERSITE"] = "1"
    return env


def run_pip(
    command: Sequence[str], log: Callable[[str], None], cancelled: Callable[[], bool] = lambda: False
) -> int:
    """Runs pip, passing each output line to ``log``; kills it when ``cancelled()``. Returns pip's exit code."""
    log("$ " + " ".join(command))
    process = subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env=pip_environment(),
        **_no_window(),
    )
    assert process.stdout is not None
    for line in process.stdout:
        log(line.rstrip())
        if cancelled():
            process.kill()
            process.wait()
            log("Cancelled.")
            return -1
    return process.wait()


def remove_protected_copies(target: Path) -> list[str]:
    """Deletes copies of QGIS's own packages (numpy) that pip may have put into ``target``; returns what it removed."""
    removed = []
    for name in PROTECTED_PACKAGES:
        for path in list(target.glob(name)) + list(target.glob(f"{name}-*.dist-info")) + list(target.glob(f"{name}.libs")):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


def remove_duplicates(target: Path, keep: Sequence[str] = tuple(INSTALL_PINS)) -> list[str]:
    """Deletes from ``target`` the distributions (pip's dependencies of torch: jinja2, MarkupSafe, setuptools, ...) that
    this Python already has elsewhere at the same or a newer version, except ``keep``; returns their names.

    ``pip --target`` ignores what is installed outside the target, so it brings copies of packages QGIS already has.
    """
    elsewhere_paths = [p for p in sys.path if Path(p or ".").resolve() != target.resolve()]
    elsewhere = {}
    for dist in importlib.metadata.distributions(path=elsewhere_paths):
        name = _normalise(dist.metadata.get("Name") or "")
        if name and name not in elsewhere:
            elsewhere[name] = dist.version
    kept = {_normalise(name) for name in keep}
    removed = []
    for dist in importlib.metadata.distributions(path=[str(target)]):
        name = _normalise(dist.metadata.get("Name") or "")
        other = elsewhere.get(name)
        if not name or name in kept or other is None or version_tuple(other) < version_tuple(dist.version):
            continue
        label = f"{dist.metadata['Name']} {dist.version}"
        tops = set()
        for file in dist.files or []:  # RECORD lists the package's files and the .dist-info's own
            path = Path(dist.locate_file(file)).resolve()
            if target.resolve() in path.parents:
                tops.add(target / path.relative_to(target.resolve()).parts[0])
                path.unlink(missing_ok=True)
        for top in tops:  # what RECORD does not list: byte code compiled later
            if top.is_dir() and not any(f.is_file() and "__pycache__" not in f.parts for f in top.rglob("*")):
                shutil.rmtree(top, ignore_errors=True)
        removed.append(label)
    return removed


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def needs_restart(names: Sequence[str] = tuple(MINIMUM_VERSIONS)) -> bool:
    """True when one of the packages was already imported in this QGIS session: only a restart loads the new one."""
    return any(name in sys.modules for name in names)


@dataclass
class InstallResult:
    ok: bool
    message: str
    restart: bool


def install(
    target: Optional[Path] = None,
    cuda: Optional[str] = None,
    requirements: Optional[Sequence[str]] = None,
    index_url: Optional[str] = "torch",
    extra_args: Sequence[str] = (),
    log: Callable[[str], None] = print,
    cancelled: Callable[[], bool] = lambda: False,
    python: Optional[str] = None,
) -> InstallResult:
    """All steps: find the interpreter, write constraints, run pip, remove shadowing copies, update ``sys.path``."""
    target = target or packages_dir()
    if requirements is None:  # what is missing; everything when nothing is (a reinstall, e.g. for a CUDA build)
        missing = {dep.name for dep in missing_dependencies()}
        requirements = requirement_specs({n: v for n, v in INSTALL_PINS.items() if n in missing} or None)
    requirements = list(requirements)
    restart = needs_restart()
    try:
        python = python or find_python()
    except RuntimeError as exc:
        return InstallResult(False, str(exc), False)
    target.mkdir(parents=True, exist_ok=True)
    constraints = write_constraints(target.parent / f".constraints-{target.name}")
    code = run_pip(pip_command(python, target, requirements, constraints, cuda, index_url, extra_args), log, cancelled)
    if code != 0:
        if cancelled():
            return InstallResult(False, "The installation was cancelled.", False)
        return InstallResult(False, f"pip failed (exit code {code}); see the log above.", False)
    for name in remove_protected_copies(target):
        log(f"Removed {name} from {target}: QGIS's own copy is used.")
    for name in remove_duplicates(target, keep=[r.split("=")[0] for r in requirements]):
        log(f"Removed {name} from {target}: this Python has it already.")
    add_packages_dir_to_path(target)
    if restart:
        return InstallResult(True, "Installed. Restart QGIS to use the new packages.", True)
    return InstallResult(True, "Installed. CropMapper can be used now (no restart needed).", False)


def _no_window() -> dict:
    """On Windows, keeps a console window from flashing up for each subprocess."""
    if sys.platform.startswith("win"):
        return {"creationflags": getattr(subprocess, "CREATE_NO_WINDOW", 0)}
    return {}
