"""The frozen desktop bundle and the Linux release archive (docs/install.md), run as a user would.

The session fixture runs `make release`, which rebuilds the PyInstaller bundle only when one of its
sources changed. Every program here is the *frozen* one from dist/imapcrypt/, started with a PATH
without the test venv and a temporary HOME: nothing of the venv or the repository is on its path.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from imapcrypt import __version__
from imapcrypt.keys import manage as keys
from imapcrypt.openpgp.binary import find_gpg
from imapcrypt.openpgp.gnupg import GnuPG
from tests.fixtures.keys import make_home, remove_home
from tests.fixtures.mailbox import Mailbox
from tests.fixtures.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "dist" / "imapcrypt"
WORK = ROOT / "build" / "pyinstaller" / "imapcrypt"
TRAY_SECONDS = 5.0


@pytest.fixture(scope="session")
def release() -> Path:
    """The Linux release archive, built (with the bundle) by `make release` if not up to date."""
    done = subprocess.run(
        ["make", "--no-print-directory", "release"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"make release failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    archives = sorted((ROOT / "dist").glob(f"imapcrypt-{__version__}-linux-*.tar.gz"))
    assert len(archives) == 1, archives
    return archives[0]


@pytest.fixture(scope="session")
def bundle(release: Path) -> Path:
    """The frozen one-folder bundle (dist/imapcrypt/)."""
    return BUNDLE


def frozen_env(home: Path, **extra: str) -> dict[str, str]:
    """A user's environment: HOME and the runtime dir in tmp, PATH without the test venv, no keyring."""
    venv_bin = Path(sys.prefix, "bin").resolve()
    path = [p for p in os.environ["PATH"].split(os.pathsep) if p and Path(p).resolve() != venv_bin]
    runtime = home.parent / f"{home.name}-run"
    runtime.mkdir(mode=0o700, exist_ok=True)
    return {
        "PATH": os.pathsep.join(path),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "XDG_RUNTIME_DIR": str(runtime),
        # Never the developer's keyring; imapcrypt then uses password_command (as in conftest.py).
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        **extra,
    }


def run(
    command: list[str], env: dict[str, str], timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a program to its end and return what it printed (stderr folded into stdout)."""
    return subprocess.run(
        command,
        env=env,
        cwd=cwd or Path(env["HOME"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def test_frozen_programs_say_their_version(bundle: Path, home: Path) -> None:
    for program in ("imapcrypt", "imapcrypt-tray"):
        done = run([str(bundle / program), "--version"], frozen_env(home))
        assert (done.returncode, done.stdout.strip()) == (0, f"imapcrypt {__version__}")


def test_frozen_demo_runs_end_to_end(bundle: Path, home: Path) -> None:
    done = run([str(bundle / "imapcrypt"), "demo"], frozen_env(home), timeout=180)
    assert done.returncode == 0, done.stdout
    assert "0 plaintext" in done.stdout
    assert "byte for byte" in done.stdout
    assert "Traceback" not in done.stdout


@pytest.fixture(scope="module")
def doctor_key() -> Iterator[tuple[GnuPG, str]]:
    gpg = make_home("icbd-")
    try:
        yield gpg, keys.generate_key(gpg, "Bundle <bundle@example.org>", "").fingerprint
    finally:
        remove_home(gpg)


def test_frozen_doctor_checks_the_test_dovecot(
    bundle: Path, home: Path, mailbox: Mailbox, doctor_key: tuple[GnuPG, str]
) -> None:
    gpg, fingerprint = doctor_key
    config = home / "config.toml"
    config.write_text(
        f"""
data_dir = "{home / "data"}"
[gnupg]
home = "{gpg.home}"

[[account]]
name = "test"
host = "127.0.0.1"
port = {mailbox.port}
security = "plain"
username = "{mailbox.user}"
password_command = "echo {mailbox.password}"
recipients = ["{fingerprint}"]
"""
    )
    done = run([str(bundle / "imapcrypt"), "--config", str(config), "doctor"], frozen_env(home))
    assert done.returncode == 0, done.stdout
    assert f"OK    login: logged in as {mailbox.user}" in done.stdout
    assert f"OK    recipient {fingerprint}" in done.stdout
    assert f"OK    gpg: {find_gpg()}, gpg (GnuPG) 2." in done.stdout
    assert "OK    encryption: " in done.stdout  # the bundle carries the in-process OpenPGP writer
    assert done.stdout.rstrip().splitlines()[-1].startswith("0 FAIL")


def test_frozen_doctor_without_gpg_says_how_to_install_it(bundle: Path, home: Path) -> None:
    config = home / "config.toml"
    config.write_text(
        f'data_dir = "{home}"\n[[account]]\nname = "x"\nhost = "127.0.0.1"\nport = 9\nsecurity = "plain"\n'
        f'username = "u"\npassword_command = "true"\nrecipients = ["{"A" * 40}"]\n'
    )
    env = frozen_env(home, PATH=str(home))  # no gpg, no shell tools
    done = run([str(bundle / "imapcrypt"), "--config", str(config), "doctor"], env)
    assert done.returncode == 1, done.stdout
    assert "FAIL  gpg: no GnuPG (gpg) on PATH (fix: install GnuPG: `sudo apt install gnupg`" in done.stdout


def test_frozen_tray_runs_offscreen_without_an_error(bundle: Path, home: Path) -> None:
    env = frozen_env(home, QT_QPA_PLATFORM="offscreen")
    log = home.parent / "tray.log"
    with log.open("w") as out:
        tray = subprocess.Popen(
            [str(bundle / "imapcrypt-tray")],
            env=env,
            cwd=home,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            # Its single-instance lock is taken once Qt is up, just before the wizard opens.
            lock = Path(env["XDG_RUNTIME_DIR"], "imapcrypt-tray.lock")
            wait_for(lambda: lock.exists() or tray.poll() is not None, 60, "the tray's instance lock")
            assert tray.poll() is None, log.read_text()
            with pytest.raises(subprocess.TimeoutExpired):
                tray.wait(timeout=TRAY_SECONDS)  # still running 5 s later
        finally:
            tray.terminate()
            tray.wait(timeout=30)
    output = log.read_text()
    assert "traceback" not in output.lower(), output
    assert "error" not in output.lower(), output


def _sources(toc: object) -> Iterator[str]:
    """Every source path in a PyInstaller TOC file's data (nested tuples and lists)."""
    if isinstance(toc, tuple) and len(toc) == 3 and all(isinstance(x, str) for x in toc):
        yield toc[1]
    elif isinstance(toc, (tuple, list)):
        for item in toc:
            yield from _sources(item)


def test_bundle_is_lean_and_takes_nothing_from_the_build_machines_home(bundle: Path) -> None:
    internal = bundle / "_internal"
    plugins = internal / "PySide6" / "Qt" / "plugins"
    assert {p.name for p in (plugins / "platforms").iterdir()} == {
        "libqxcb.so",
        "libqwayland.so",
        "libqoffscreen.so",
    }
    assert (plugins / "iconengines" / "libqsvgicon.so").exists()
    assert {p.name for p in (internal / "imapcrypt_ui" / "icons").iterdir()} == {
        p.name for p in (ROOT / "ui" / "icons").glob("*.svg")
    }
    names = {p.name for p in internal.rglob("*")}
    for unused in (
        "QtNetwork.abi3.so",
        "libQt6Network.so.6",
        "libQt6Qml.so.6",
        "libqgtk3.so",
        "translations",
    ):
        assert unused not in names
    # Every collected file comes from this repository, the build venv, the Python installation or the
    # system's libraries: none from the home folder (dotfiles, caches, keys).
    allowed = [ROOT, Path(sys.prefix), Path(sys.base_prefix), Path("/usr"), Path("/lib"), Path("/lib64")]
    sources = [
        src
        for toc in (*WORK.glob("PYZ-*.toc"), *WORK.glob("COLLECT-*.toc"))
        for src in _sources(ast.literal_eval(toc.read_text()))
        if src.startswith("/")
    ]
    assert len(sources) > 500
    strays = [s for s in sources if not any(Path(s).is_relative_to(a) for a in allowed)]
    assert strays == []
    for path in bundle.rglob("*"):
        if path.is_symlink():  # PyInstaller links libraries into _internal/: to files it holds
            assert path.resolve(strict=True).is_relative_to(bundle.resolve()), path


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_release_archive_installs_per_user_and_uninstalls_without_a_trace(
    release: Path, tmp_path: Path, home: Path
) -> None:
    with tarfile.open(release) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    (unpacked,) = (tmp_path / "unpacked").iterdir()
    (home / ".local" / "bin").mkdir(parents=True)
    (home / ".config" / "imapcrypt").mkdir(parents=True)
    (home / ".config" / "imapcrypt" / "config.toml").write_text("# the user's own\n")
    before = _tree(home)
    env = frozen_env(home, XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / ".config"))
    prefix = home / ".local" / "lib" / "imapcrypt"
    launcher = home / "data" / "applications" / "imapcrypt.desktop"
    icon = home / "data" / "icons" / "hicolor" / "scalable" / "apps" / "imapcrypt.svg"
    autostart = home / ".config" / "autostart" / "imapcrypt-tray.desktop"
    unit = home / ".config" / "systemd" / "user" / "imapcrypt.service"

    done = run(["sh", str(unpacked / "install.sh"), "--no-autostart"], env)
    assert done.returncode == 0, done.stdout
    assert launcher.exists()
    assert icon.exists()
    assert unit.exists()
    assert not autostart.exists()
    # An upgrade over it, now with autostart.
    done = run(["sh", str(unpacked / "install.sh"), "--autostart"], env)
    assert done.returncode == 0, done.stdout
    assert autostart.exists()
    tray = prefix / "imapcrypt-tray"
    assert f"Exec={tray}\n" in launcher.read_text()
    assert f"Exec={tray}\n" in autostart.read_text()
    assert f"ExecStart={prefix / 'imapcrypt'} --daemon\n" in unit.read_text()

    validated = run(["desktop-file-validate", str(launcher), str(autostart)], env)
    assert validated.returncode == 0, validated.stdout
    assert "error" not in validated.stdout.lower(), validated.stdout
    if shutil.which("systemd-analyze"):
        verified = run(["systemd-analyze", "--user", "verify", str(unit)], env)
        assert verified.returncode == 0, verified.stdout

    for program in ("imapcrypt", "imapcrypt-tray"):
        done = run([str(home / ".local" / "bin" / program), "--version"], env)
        assert (done.returncode, done.stdout.strip()) == (0, f"imapcrypt {__version__}")

    done = run([str(prefix / "uninstall.sh")], env)
    assert done.returncode == 0, done.stdout
    assert _tree(home) == before
    assert (home / ".config" / "imapcrypt" / "config.toml").read_text() == "# the user's own\n"
