"""The Python packages: sdist and wheel build and pass `twine check`; the wheel installs with pipx
(a fresh venv where pipx is missing) and gives a working CLI, tray and demo (docs/install.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from imapcrypt import __version__

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[1]


def run(command: list[str], timeout: float = 600, **kwargs: object) -> str:
    """Run `command`, fail with its output unless it exits 0, return its output."""
    done = subprocess.run(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
        **kwargs,  # type: ignore[call-overload]
    )
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout[-6000:]}"
    return str(done.stdout)


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sdist, and the wheel built from it (python -m build's default), in a temporary folder."""
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)])
    return out / f"imapcrypt-{__version__}.tar.gz", out / f"imapcrypt-{__version__}-py3-none-any.whl"


def test_sdist_and_wheel_pass_twine_check(packages: tuple[Path, Path]) -> None:
    sdist, wheel = packages
    run([sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)])


def test_the_wheel_holds_the_package_data_and_both_entry_points(packages: tuple[Path, Path]) -> None:
    sdist, wheel = packages
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        info = f"imapcrypt-{__version__}.dist-info"
        entry_points = whl.read(f"{info}/entry_points.txt").decode()
        metadata = whl.read(f"{info}/METADATA").decode()
    assert "imapcrypt/py.typed" in names
    icons = {p.name for p in (ROOT / "ui" / "icons").glob("*.svg")}
    assert {f"imapcrypt_ui/icons/{name}" for name in icons} <= names
    assert "imapcrypt = imapcrypt.cli.main:main" in entry_points
    assert "imapcrypt-tray = imapcrypt_ui.app:main" in entry_points
    assert "Requires-Dist: pymap" in metadata  # the demo works from any install
    with tarfile.open(sdist) as tar:
        assert f"imapcrypt-{__version__}/ui/icons/idle.svg" in tar.getnames()


def test_the_installed_wheel_runs_the_cli_the_tray_and_the_demo(
    packages: tuple[Path, Path], tmp_path: Path
) -> None:
    _, wheel = packages
    bin_dir = tmp_path / "bin"
    pipx = shutil.which("pipx")
    # pip's cache stays the user's (PyPI downloads are reused); everything installed stays in tmp_path.
    if pipx:
        env = {**os.environ, "PIPX_HOME": str(tmp_path / "pipx"), "PIPX_BIN_DIR": str(bin_dir)}
        run([pipx, "install", str(wheel)], env=env)
    else:
        run([sys.executable, "-m", "venv", str(tmp_path / "venv")])
        run([str(tmp_path / "venv" / "bin" / "pip"), "install", "--quiet", str(wheel)])
        bin_dir = tmp_path / "venv" / "bin"
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8"}
    assert run([str(bin_dir / "imapcrypt"), "--version"], env=env).strip() == f"imapcrypt {__version__}"
    assert run([str(bin_dir / "imapcrypt-tray"), "--version"], env=env).strip() == f"imapcrypt {__version__}"
    out = run([str(bin_dir / "imapcrypt"), "demo"], env=env, timeout=180)
    assert "0 plaintext" in out
    assert "byte for byte" in out
