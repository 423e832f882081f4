"""Secrets: account passwords, GnuPG passphrases and the per-installation id secret.

They come from the OS keyring or from a command the user configured (`password_command`,
`passphrase_command`), never from the configuration file, and they are never logged.
"""

from __future__ import annotations

import os
import secrets as random_source
import subprocess
from collections.abc import Callable
from pathlib import Path

import keyring
import keyring.backend
import keyring.backends.fail
import keyring.errors

from imapcrypt.config.model import Account
from imapcrypt.errors import CredentialsError
from imapcrypt.openpgp.gnupg import normalise_fingerprint
from imapcrypt.private import private_dir

SERVICE = "imapcrypt"
ID_SECRET_ENTRY = "id-secret"  # noqa: S105 - the keyring entry's name, not a secret
ID_SECRET_BYTES = 32
SERVE_PASSWORD_ENTRY = "serve-password"  # noqa: S105 - the keyring entry's name, not a secret
COMMAND_TIMEOUT = 60


def keyring_problem(backend: keyring.backend.KeyringBackend | None = None) -> str | None:
    """Why the keyring backend (default: the one keyring chose) cannot hold secrets safely, or None.

    A backend that writes secrets unencrypted to a file is no OS keyring: imapcrypt refuses it.
    """
    backend = backend or keyring.get_keyring()
    name = f"{type(backend).__module__}.{type(backend).__name__}"
    if isinstance(backend, keyring.backends.fail.Keyring) or getattr(backend, "priority", 1) <= 0:
        return f"no usable OS keyring ({name})"
    if "plaintext" in name.lower():
        return f"{name} stores secrets unencrypted on disk"
    return None


def _keyring() -> keyring.backend.KeyringBackend:
    backend = keyring.get_keyring()
    problem = keyring_problem(backend)
    if problem:
        raise keyring.errors.NoKeyringError(problem)
    return backend


def keyring_backend() -> keyring.backend.KeyringBackend:
    """The OS keyring, refused (NoKeyringError) when it cannot hold secrets safely (keyring_problem)."""
    return _keyring()


def run_secret_command(command: str, what: str) -> str:
    """The first line a user's secret command prints (as `sh -c`, like mutt and aerc run them)."""
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", command], capture_output=True, timeout=COMMAND_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise CredentialsError(
            f"the {what} did not finish within {COMMAND_TIMEOUT}s",
            f"run the account's {what} by hand to see why",
        ) from None
    # The command is named, never quoted (its line may hold a secret, `echo hunter2` say), and only
    # the exit status goes into the message: the command's output may be the secret itself.
    if done.returncode != 0:
        raise CredentialsError(
            f"the {what} failed with exit status {done.returncode}",
            f"run the account's {what} by hand to see why",
        )
    lines = done.stdout.decode("utf-8", "replace").splitlines()
    if not lines or not lines[0]:
        raise CredentialsError(f"the {what} printed nothing", f"make the account's {what} print the secret")
    return lines[0]


def account_password(account: Account) -> str:
    """The account's password: from `password_command` if set, else from the OS keyring."""
    if account.password_command:
        return run_secret_command(account.password_command, "password_command")
    try:
        password = _keyring().get_password(SERVICE, account.keyring_user)
    except keyring.errors.KeyringError as exc:
        raise CredentialsError(
            f"no usable OS keyring for the password of {account.keyring_user} ({type(exc).__name__})",
            "set password_command in the account, or run a Secret Service (e.g. gnome-keyring)",
        ) from None
    if password is None:
        raise CredentialsError(
            f"no password for {account.keyring_user} in the OS keyring",
            "store it with `imapcrypt init`, or set password_command in the account",
        )
    return password


def store_account_password(account: Account, password: str) -> None:
    """Put the account's password into the OS keyring."""
    try:
        _keyring().set_password(SERVICE, account.keyring_user, password)
    except keyring.errors.KeyringError as exc:
        raise CredentialsError(
            f"could not store the password in the OS keyring ({type(exc).__name__})",
            "set password_command in the account instead",
        ) from None


def forget_account_password(account: Account) -> None:
    """Remove the account's password from the OS keyring (a set-up undone); nothing there is fine."""
    try:
        _keyring().delete_password(SERVICE, account.keyring_user)
    except keyring.errors.KeyringError:  # PasswordDeleteError included: it was not there
        return


def id_secret(data_dir: Path) -> bytes:
    """The per-installation secret under which message ids are computed (created on first use).

    It lives in the OS keyring. On a headless machine without a keyring it falls back to a file only
    the user can read in the data dir (`doctor` warns): the id must stay stable across runs, or
    re-runs would not recognise their own copies.
    """
    stored, _ = _installation_secret(
        ID_SECRET_ENTRY, data_dir / "id-secret", lambda: random_source.token_hex(ID_SECRET_BYTES)
    )
    return bytes.fromhex(stored)


def serve_password(data_dir: Path) -> tuple[str, Path | None]:
    """The per-installation password of `imapcrypt serve` (created on first use), and the file that holds
    it when there is no OS keyring (None: the keyring holds it). Like the id secret, it falls back to a
    file only the user can read in the data dir, so a headless machine can still serve."""
    path = data_dir / "serve-password"
    return _installation_secret(SERVE_PASSWORD_ENTRY, path, lambda: random_source.token_urlsafe(18))


def _installation_secret(entry: str, path: Path, make: Callable[[], str]) -> tuple[str, Path | None]:
    try:
        backend = _keyring()
        stored = backend.get_password(SERVICE, entry)
        if stored is None:
            stored = make()
            backend.set_password(SERVICE, entry, stored)
        return stored, None
    except keyring.errors.KeyringError:
        return _file_secret(path, make), path


def _file_secret(path: Path, make: Callable[[], str]) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    private_dir(path.parent)
    value = make()
    temp = path.with_suffix(".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
        handle.flush()
        os.fsync(handle.fileno())
    # Two first runs racing: the rename makes one of them win whole; both then read the winner.
    if not path.exists():
        temp.replace(path)
    else:
        temp.unlink()
    return path.read_text().strip()


# Secret-key passphrases: in the OS keyring only when the user asked (`keys ... --remember`). By
# default gpg-agent/pinentry or the tray asks; the daemon never needs one (encrypting uses public keys).
def _entry(fingerprint: str) -> str:
    return f"passphrase:{normalise_fingerprint(fingerprint)}"


def remembered_passphrase(fingerprint: str) -> str | None:
    """The passphrase the user asked to remember for this key, or None (also when no keyring works)."""
    try:
        return _keyring().get_password(SERVICE, _entry(fingerprint))
    except keyring.errors.KeyringError:
        return None


def remember_passphrase(fingerprint: str, passphrase: str) -> None:
    """Store the key's passphrase in the OS keyring; CredentialsError if there is no usable keyring."""
    try:
        _keyring().set_password(SERVICE, _entry(fingerprint), passphrase)
    except keyring.errors.KeyringError as exc:
        raise CredentialsError(
            f"could not store the passphrase in the OS keyring ({type(exc).__name__})",
            "set passphrase_command in the account instead, or type it when asked",
        ) from None


def forget_passphrase(fingerprint: str) -> bool:
    """Remove a remembered passphrase; False if none was stored."""
    try:
        _keyring().delete_password(SERVICE, _entry(fingerprint))
    except keyring.errors.PasswordDeleteError:
        return False
    except keyring.errors.KeyringError as exc:
        raise CredentialsError(
            f"the OS keyring refused ({type(exc).__name__})", "check the keyring"
        ) from None
    return True
