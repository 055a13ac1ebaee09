"""The wallet's key file: its JSON format, its optional encryption, and how it touches the disk.

Whoever reads this file can spend the wallet's coins, so it is written the way ssh writes private
keys: created with mode 0600 (owner read/write only) *before* a byte of it exists, and never
loaded when group or others may read or write it. It is written atomically (a private temporary
file in the same directory, flushed, then renamed over the old one), so a crash leaves the old
file or the new one, never half of one.

All keys derive from one seed (:mod:`node.wallet.wallet`), so the file holds the seed and how
many keys have been handed out. The format, version 1 (one JSON object, UTF-8)::

    field         type               meaning
    format        string             always "forklab-wallet"
    version       integer            1; other versions are refused, never guessed at
    network       string             "regtest", "demo" or "main": a wallet is for one chain
    encryption    null or object     null: the secrets below are in the clear; else see below
    seed          hex string         (clear files) the seed, 1 to 128 bytes
    count         integer            (clear files) keys handed out so far, 1 to 100,000
    ciphertext    hex string         (encrypted files) the canonical JSON {"count": .., "seed": ..}
                                     encrypted; same limits

    encryption    type               meaning
    kdf           string             always "scrypt"
    n, r, p       integers           scrypt's cost parameters (n a power of two, 2^10..2^20)
    salt          hex string         16 random bytes, new for each file
    cipher        string             always "hmac-sha256-ctr+hmac-sha256"
    nonce         hex string         16 random bytes, new for each write
    mac           hex string         32 bytes, see below

Encryption uses only the standard library. ``scrypt(passphrase, salt, n, r, p)`` gives 64 bytes:
an encryption key and a MAC key of 32 each. The keystream is HMAC-SHA256(encryption key, nonce ||
block counter as 8 bytes big-endian), XORed with the plaintext (a stream cipher from a PRF, as
in counter mode). The MAC is HMAC-SHA256(MAC key, 8-byte length of the header || header ||
ciphertext), where the header is the canonical JSON of every other field (``mac`` and
``ciphertext`` left out). It is checked, in constant time, before anything is decrypted:
encrypt-then-MAC, so a wrong passphrase and a file altered in any field are both caught and
reported as such, never decrypted into garbage.

What this module does not do: derive keys or know about coins (:mod:`node.wallet.wallet`),
hold the passphrase (only the derived keys, while a :class:`KeyFile` is open), or defend
against an attacker who can already run code as the same user.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import stat
import tempfile
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.core.errors import WalletError

FORMAT = "forklab-wallet"
VERSION = 1
KDF = "scrypt"
CIPHER = "hmac-sha256-ctr+hmac-sha256"

MAX_FILE_SIZE = 64 * 1024
"""No valid key file comes near this; a bigger file is refused before it is parsed."""

MAX_SEED_SIZE = 128
MAX_KEY_COUNT = 100_000
SALT_SIZE = 16
NONCE_SIZE = 16
MAC_SIZE = 32
_KEY_SIZE = 32


@dataclass(frozen=True)
class ScryptParams:
    """scrypt's cost: memory is 128 * n * r bytes, time grows with n * r * p."""

    n: int = 1 << 17
    r: int = 8
    p: int = 1

    def check(self) -> None:
        """WalletError unless the parameters are within what this module agrees to compute.

        The bounds keep a crafted file from asking for gigabytes of memory or minutes of work.
        """
        n, r, p = self.n, self.r, self.p
        for name, value in (("n", n), ("r", r), ("p", p)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise WalletError(f"scrypt parameter {name} must be an integer")
        if not (1 << 10) <= n <= (1 << 20) or n & (n - 1):
            raise WalletError(f"scrypt n must be a power of two from 2^10 to 2^20, got {n}")
        if not 1 <= r <= 16 or not 1 <= p <= 4 or 128 * n * r > (1 << 28):
            raise WalletError(f"scrypt r={r}, p={p} with n={n} is out of the accepted range")


DEFAULT_SCRYPT = ScryptParams()
"""2^17, 8, 1: OWASP's recommendation for scrypt; 128 MiB and a few tenths of a second."""


@dataclass(frozen=True)
class WalletSecrets:
    """What the key file keeps: enough to re-derive every key of the wallet."""

    network: str
    seed: bytes = field(repr=False)
    count: int
    """Keys handed out so far (addresses shown to the user); the wallet watches all of them."""

    def __post_init__(self) -> None:
        if not 1 <= len(self.seed) <= MAX_SEED_SIZE:
            raise WalletError(f"a wallet seed is 1 to {MAX_SEED_SIZE} bytes, got {len(self.seed)}")
        if not 1 <= self.count <= MAX_KEY_COUNT:
            raise WalletError(f"a wallet has 1 to {MAX_KEY_COUNT} keys, not {self.count}")


@dataclass(frozen=True)
class FileKey:
    """The keys derived from a passphrase for one file: kept to rewrite it, not the passphrase."""

    params: ScryptParams
    salt: bytes
    encryption_key: bytes = field(repr=False)
    mac_key: bytes = field(repr=False)

    @classmethod
    def derive(cls, passphrase: str, salt: bytes, params: ScryptParams = DEFAULT_SCRYPT) -> FileKey:
        """Run scrypt. The passphrase is NFC-normalised so it types the same on every system."""
        if not passphrase:
            raise WalletError("an empty passphrase encrypts nothing; choose one or use none")
        params.check()
        if len(salt) != SALT_SIZE:
            raise WalletError(f"the salt is {SALT_SIZE} bytes, got {len(salt)}")
        try:
            secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
        except UnicodeEncodeError:
            raise WalletError("the passphrase is not valid Unicode text") from None
        derived = hashlib.scrypt(
            secret,
            salt=salt,
            n=params.n,
            r=params.r,
            p=params.p,
            maxmem=128 * params.r * (params.n + params.p + 2) + 4096,
            dklen=2 * _KEY_SIZE,
        )
        return cls(params, salt, derived[:_KEY_SIZE], derived[_KEY_SIZE:])


# -- encoding


def encode_keyfile(
    secrets: WalletSecrets, *, key: FileKey | None = None, nonce: bytes = b""
) -> bytes:
    """The file's bytes: in the clear when ``key`` is None, else encrypted under a fresh nonce."""
    document: dict[str, Any] = {"format": FORMAT, "version": VERSION, "network": secrets.network}
    if key is None:
        document.update(encryption=None, seed=secrets.seed.hex(), count=secrets.count)
        return _dump(document)
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"the nonce is {NONCE_SIZE} bytes, got {len(nonce)}")
    document["encryption"] = {
        "kdf": KDF,
        "n": key.params.n,
        "r": key.params.r,
        "p": key.params.p,
        "salt": key.salt.hex(),
        "cipher": CIPHER,
        "nonce": nonce.hex(),
    }
    plaintext = _canonical({"count": secrets.count, "seed": secrets.seed.hex()})
    ciphertext = _xor_keystream(key.encryption_key, nonce, plaintext)
    document["encryption"]["mac"] = _mac(key.mac_key, document, ciphertext).hex()
    document["ciphertext"] = ciphertext.hex()
    return _dump(document)


def decode_keyfile(data: bytes, *, passphrase: str | None) -> tuple[WalletSecrets, FileKey | None]:
    """The secrets in a key file's bytes, and the file key if it is encrypted.

    Every fault is a WalletError saying what is wrong: not a key file, another version, an
    encrypted file without a passphrase, a wrong passphrase (or an altered file).
    """
    if len(data) > MAX_FILE_SIZE:
        raise WalletError(f"{len(data)} bytes is far too large for a key file")
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise WalletError(f"not a forklab key file: not JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise WalletError(f'not a forklab key file: no "format": "{FORMAT}"')
    version = document.get("version")
    if type(version) is not int or version != VERSION:
        raise WalletError(
            f"key file version {version!r} is not supported; this forklab reads version {VERSION}"
        )
    network = _field(document, "network", str)
    encryption = document.get("encryption", "missing")
    if encryption is None:
        _only(document, {"format", "version", "network", "encryption", "seed", "count"})
        return _secrets(network, document), None
    if not isinstance(encryption, dict):
        raise WalletError('the key file\'s "encryption" must be null or an object')
    _only(document, {"format", "version", "network", "encryption", "ciphertext"})
    _only(encryption, {"kdf", "n", "r", "p", "salt", "cipher", "nonce", "mac"})
    if encryption.get("kdf") != KDF or encryption.get("cipher") != CIPHER:
        raise WalletError(f"unknown encryption: this forklab reads {KDF} with {CIPHER}")
    params = ScryptParams(
        _field(encryption, "n", int), _field(encryption, "r", int), _field(encryption, "p", int)
    )
    params.check()
    salt = _hex_field(encryption, "salt", SALT_SIZE, SALT_SIZE)
    nonce = _hex_field(encryption, "nonce", NONCE_SIZE, NONCE_SIZE)
    mac = _hex_field(encryption, "mac", MAC_SIZE, MAC_SIZE)
    ciphertext = _hex_field(document, "ciphertext", 1, MAX_FILE_SIZE)
    if passphrase is None:
        raise WalletError("the key file is encrypted: its passphrase is needed")
    key = FileKey.derive(passphrase, salt, params)
    header = dict(document, encryption=dict(encryption))
    del header["ciphertext"], header["encryption"]["mac"]
    if not hmac.compare_digest(_mac(key.mac_key, header, ciphertext), mac):
        raise WalletError("wrong passphrase (or the key file was altered)")
    plaintext = _xor_keystream(key.encryption_key, nonce, ciphertext)
    try:
        inner = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise WalletError(f"the decrypted key file is not JSON ({exc})") from None
    if not isinstance(inner, dict):
        raise WalletError("the decrypted key file is not a JSON object")
    _only(inner, {"seed", "count"})
    return _secrets(network, inner), key


def _secrets(network: str, fields: dict[str, Any]) -> WalletSecrets:
    seed = _hex_field(fields, "seed", 1, MAX_SEED_SIZE)
    count = _field(fields, "count", int)
    return WalletSecrets(network, seed, count)


def _field(fields: dict[str, Any], name: str, kind: type) -> Any:
    value = fields.get(name)
    # bool is an int in Python; JSON's true must not pass for 1.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise WalletError(f'the key file\'s "{name}" is missing or not a {kind.__name__}')
    return value


def _hex_field(fields: dict[str, Any], name: str, low: int, high: int) -> bytes:
    text = _field(fields, name, str)
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise WalletError(f'the key file\'s "{name}" is not hex') from None
    if not low <= len(value) <= high:
        raise WalletError(f'the key file\'s "{name}" is {len(value)} bytes, not {low}..{high}')
    return value


def _only(fields: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(fields) - allowed
    if unknown:
        raise WalletError(f"unknown fields in the key file: {', '.join(sorted(map(str, unknown)))}")


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _dump(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def _mac(mac_key: bytes, header: dict[str, Any], ciphertext: bytes) -> bytes:
    encoded = _canonical(header)
    message = len(encoded).to_bytes(8, "big") + encoded + ciphertext
    return hmac.new(mac_key, message, hashlib.sha256).digest()


def _xor_keystream(encryption_key: bytes, nonce: bytes, data: bytes) -> bytes:
    stream = bytearray()
    for counter in range((len(data) + 31) // 32):
        block = nonce + counter.to_bytes(8, "big")
        stream += hmac.new(encryption_key, block, hashlib.sha256).digest()
    return bytes(a ^ b for a, b in zip(data, stream, strict=False))


# -- the disk


class KeyFile:
    """An open key file: where it is and, if encrypted, the key to rewrite it with.

    ``randbytes`` (``secrets.token_bytes`` in the node) supplies salts and nonces.
    """

    def __init__(self, path: Path, key: FileKey | None) -> None:
        self.path = path
        self._key = key

    @property
    def encrypted(self) -> bool:
        return self._key is not None

    @classmethod
    def create(
        cls,
        path: Path,
        secrets: WalletSecrets,
        *,
        passphrase: str | None,
        randbytes: Callable[[int], bytes],
        scrypt: ScryptParams = DEFAULT_SCRYPT,
    ) -> KeyFile:
        """Write a new key file; WalletError if ``path`` exists (a wallet is never overwritten)."""
        key = None
        if passphrase is not None:
            key = FileKey.derive(passphrase, _random(randbytes, SALT_SIZE), scrypt)
        keyfile = cls(path, key)
        keyfile._write(secrets, randbytes, replace=False)
        return keyfile

    @classmethod
    def open(cls, path: Path, *, passphrase: str | None) -> tuple[KeyFile, WalletSecrets]:
        """Read a key file, refusing one that group or others may read or write."""
        secrets, key = decode_keyfile(read_private_file(path), passphrase=passphrase)
        return cls(path, key), secrets

    def save(self, secrets: WalletSecrets, *, randbytes: Callable[[int], bytes]) -> None:
        """Replace the file with ``secrets``, encrypted as before under a new nonce."""
        self._write(secrets, randbytes, replace=True)

    def _write(
        self, secrets: WalletSecrets, randbytes: Callable[[int], bytes], *, replace: bool
    ) -> None:
        nonce = _random(randbytes, NONCE_SIZE) if self._key is not None else b""
        write_private_file(self.path, encode_keyfile(secrets, key=self._key, nonce=nonce), replace)


def _random(randbytes: Callable[[int], bytes], size: int) -> bytes:
    value = randbytes(size)
    if len(value) != size:
        raise ValueError(f"randbytes({size}) returned {len(value)} bytes")
    return value


def write_private_file(path: Path, data: bytes, replace: bool) -> None:
    """Write ``data`` to ``path`` with mode 0600, atomically.

    The temporary file is created 0600 (``mkstemp`` does, and ``fchmod`` makes sure whatever
    the umask), filled and flushed to disk, then renamed over ``path`` (``replace``) or
    hard-linked to it, which fails if ``path`` exists, so creating never clobbers a wallet
    (where the filesystem has no hard links, an existence check and a rename instead).
    """
    directory = path.parent
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise WalletError(f"cannot write the key file in {directory}: {exc.strerror}") from None
    try:
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if replace:
                os.replace(temporary, path)
            else:
                _publish_new(temporary, path)
        except FileExistsError:
            raise WalletError(f"{path} already exists; refusing to overwrite a wallet") from None
        except OSError as exc:
            raise WalletError(f"cannot write the key file {path}: {exc.strerror}") from None
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)
    _fsync_directory(directory)


def _publish_new(temporary: str, path: Path) -> None:
    """Give the finished file its name, failing with FileExistsError if the name is taken."""
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise
    except OSError as exc:
        # Some filesystems (FAT, certain network and container mounts) have no hard links;
        # there, check and rename, which leaves a tiny window instead of none.
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, "exists", str(path)) from None
        os.replace(temporary, path)


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory itself is on disk.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_private_file(path: Path) -> bytes:
    """The bytes of ``path``, which must be a regular file only its owner may read or write."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise WalletError(f"no key file at {path}") from None
    except OSError as exc:
        raise WalletError(f"cannot open the key file {path}: {exc.strerror}") from None
    try:
        # fstat the open file, not the path: no window to swap the file between check and read.
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise WalletError(f"{path} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise WalletError(
                f"{path} has mode {mode:04o}: other users may read or change it, so its keys "
                f"may be compromised; refusing to load it. If it is yours, run: chmod 600 {path}"
            )
        if info.st_size > MAX_FILE_SIZE:
            raise WalletError(f"{path} is {info.st_size} bytes, far too large for a key file")
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read(MAX_FILE_SIZE + 1)
    except OSError as exc:
        raise WalletError(f"cannot read the key file {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
