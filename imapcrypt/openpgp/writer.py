"""The OpenPGP packets of a format v1 message, written in process (RFC 4880 §5, RFC 6637).

Only what docs/format.md's profile needs: PKESK v3 for RSA and ECDH (Curve25519, NIST P curves), a
SEIPD v1 packet with MDC, inside it a ZLIB Compressed Data packet (or none) holding a binary Literal
Data packet. Every cryptographic operation is one of `cryptography`'s (OpenSSL's) primitives: RSA
PKCS#1 v1.5, X25519/ECDH, the concatenation KDF, AES key wrap, AES-CFB and SHA-1; this module only
lays out their inputs and outputs as RFC 4880 and RFC 6637 say. Why not Sequoia for this: docs/format.md.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash

TAG_PKESK, TAG_COMPRESSED, TAG_LITERAL, TAG_SEIPD, TAG_MDC = 1, 8, 11, 18, 19
ALGO_RSA, ALGO_RSA_E, ALGO_ECDH = 1, 2, 18
# Symmetric algorithm ids (RFC 4880 §9.2) this writer uses, with their key sizes: AES only.
AES_KEY_BYTES = {7: 16, 8: 24, 9: 32}
_ZLIB = 2
_AES_BLOCK = 16

# RFC 6637 §11 / RFC 4880bis: curve OIDs (DER body, without tag and length) of the ECDH keys handled.
_CV25519 = bytes.fromhex("2b060104019755010501")
_NIST = {
    bytes.fromhex("2a8648ce3d030107"): ec.SECP256R1(),
    bytes.fromhex("2b81040022"): ec.SECP384R1(),
    bytes.fromhex("2b81040023"): ec.SECP521R1(),
}
_KDF_HASHES: dict[int, type[hashes.HashAlgorithm]] = {
    8: hashes.SHA256,
    9: hashes.SHA384,
    10: hashes.SHA512,
}


class UnsupportedKeyError(ValueError):
    """A recipient (sub)key this writer does not handle (ElGamal, Brainpool, v5/v6 keys ...)."""


PublicKey = rsa.RSAPublicKey | x25519.X25519PublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class RecipientKey:
    """The public part of one encryption (sub)key, parsed from its key packet's body and loaded.

    Loading checks the material (an RSA modulus and exponent, a point on its curve), so a key that
    cannot be encrypted to fails when the plan is made, never in the middle of a run.
    """

    key_id: bytes  # 8 bytes: the low 64 bits of the v4 fingerprint
    fingerprint: bytes  # 20 bytes (v4)
    algorithm: int
    public: PublicKey
    curve_oid: bytes = b""  # ECDH only: the curve's OID and the KDF parameters (RFC 6637 §9)
    kdf: bytes = b""

    @classmethod
    def parse(cls, body: bytes) -> RecipientKey:
        """The key in a v4 Public-Key or Public-Subkey packet body, or UnsupportedKeyError."""
        if len(body) < 6 or body[0] != 4:
            raise UnsupportedKeyError("only version 4 keys are encrypted to in process")
        fingerprint = hashlib.sha1(b"\x99" + struct.pack(">H", len(body)) + body).digest()  # noqa: S324
        algorithm = body[5]
        try:
            if algorithm in (ALGO_RSA, ALGO_RSA_E):
                n, pos = _read_mpi(body, 6)
                e, _ = _read_mpi(body, pos)
                numbers = rsa.RSAPublicNumbers(int.from_bytes(e, "big"), int.from_bytes(n, "big"))
                return cls(fingerprint[-8:], fingerprint, algorithm, numbers.public_key())
            if algorithm == ALGO_ECDH:
                oid = body[7 : 7 + body[6]]
                point, pos = _read_mpi(body, 7 + body[6])
                kdf = body[pos + 1 : pos + 1 + body[pos]]
                if len(kdf) != 3 or kdf[0] != 1 or kdf[1] not in _KDF_HASHES or kdf[2] not in AES_KEY_BYTES:
                    raise UnsupportedKeyError(f"ECDH KDF parameters {kdf.hex()} are not supported")
                return cls(fingerprint[-8:], fingerprint, algorithm, _ecdh_public(oid, point), oid, kdf)
        except IndexError as exc:
            raise UnsupportedKeyError("the key packet is cut short") from exc
        except ValueError as exc:  # cryptography refused the modulus, exponent or point
            raise UnsupportedKeyError(f"the key's public material is not valid: {exc}") from exc
        raise UnsupportedKeyError(f"public-key algorithm {algorithm} is not encrypted to in process")


def _ecdh_public(oid: bytes, point: bytes) -> PublicKey:
    """The ECDH public key on a curve this writer handles (Curve25519: 0x40 and 32 native octets)."""
    if oid == _CV25519:
        if len(point) != 33 or point[0] != 0x40:
            raise UnsupportedKeyError("a Curve25519 point must be 0x40 and 32 octets")
        public = x25519.X25519PublicKey.from_public_bytes(point[1:])
        # A low-order point makes every exchange fail (an all-zero secret): find out now, not per message.
        x25519.X25519PrivateKey.generate().exchange(public)
        return public
    if oid in _NIST:
        return ec.EllipticCurvePublicKey.from_encoded_point(_NIST[oid], point)
    raise UnsupportedKeyError(f"ECDH curve {oid.hex()} is not encrypted to in process")


def encrypt(
    data: bytes, keys: Iterable[RecipientKey], cipher: int, zlib_level: int | None, created: int
) -> bytes:
    """A binary OpenPGP message of `data` for every key: PKESK v3s, then SEIPD v1 with MDC.

    `cipher` is the symmetric algorithm id (AES), `zlib_level` None for no compression, `created` the
    literal data's date (seconds since the epoch; gpg writes the time of encryption).
    """
    session_key = os.urandom(AES_KEY_BYTES[cipher])
    pkesks = [_pkesk(key, cipher, session_key) for key in keys]
    literal_body = b"b\x00" + struct.pack(">I", created)  # binary, no file name, then the data
    literal_head = _header(TAG_LITERAL, len(literal_body) + len(data)) + literal_body
    if zlib_level is None:
        inner = [literal_head, data]
    else:
        compressor = zlib.compressobj(zlib_level)
        stream = compressor.compress(literal_head) + compressor.compress(data) + compressor.flush()
        inner = [_header(TAG_COMPRESSED, 1 + len(stream)), bytes([_ZLIB]), stream]
    return b"".join([*pkesks, *_seipd(inner, cipher, session_key)])


def _seipd(inner: list[bytes], cipher: int, session_key: bytes) -> list[bytes]:
    """The SEIPD v1 packet (RFC 4880 §5.13) around `inner`, in pieces: no copy of the whole."""
    prefix = os.urandom(_AES_BLOCK)
    prefix += prefix[-2:]  # the quick check: the last two octets repeated
    mdc_head = bytes([0xC0 | TAG_MDC, 20])
    digest = hashlib.sha1(prefix)  # noqa: S324 - the MDC is SHA-1 by definition (RFC 4880 §5.14)
    for piece in inner:
        digest.update(piece)
    digest.update(mdc_head)
    # SEIPD v1 is AES in full-block CFB mode with a zero IV; the random prefix takes the IV's role.
    encryptor = Cipher(algorithms.AES(session_key), CFB(bytes(_AES_BLOCK))).encryptor()
    parts = [encryptor.update(prefix), *(encryptor.update(p) for p in inner)]
    parts += [encryptor.update(mdc_head + digest.digest()), encryptor.finalize()]
    length = 1 + sum(len(p) for p in parts)
    return [_header(TAG_SEIPD, length), b"\x01", *parts]


def _pkesk(key: RecipientKey, cipher: int, session_key: bytes) -> bytes:
    """The PKESK v3 packet (RFC 4880 §5.1) that gives `session_key` to `key`."""
    checksum = struct.pack(">H", sum(session_key) & 0xFFFF)
    plain = bytes([cipher]) + session_key + checksum
    if isinstance(key.public, rsa.RSAPublicKey):
        fields = _mpi(key.public.encrypt(plain, padding.PKCS1v15()))
    else:
        fields = _ecdh(key, plain)
    body = b"\x03" + key.key_id + bytes([key.algorithm]) + fields
    return _header(TAG_PKESK, len(body)) + body


def _ecdh(key: RecipientKey, plain: bytes) -> bytes:
    """RFC 6637 §8: an ephemeral key, the shared secret through the KDF, the session key wrapped."""
    if isinstance(key.public, x25519.X25519PublicKey):
        ephemeral = x25519.X25519PrivateKey.generate()
        shared = ephemeral.exchange(key.public)
        ephemeral_point = b"\x40" + ephemeral.public_key().public_bytes_raw()
    elif isinstance(key.public, ec.EllipticCurvePublicKey):
        nist_ephemeral = ec.generate_private_key(key.public.curve)
        shared = nist_ephemeral.exchange(ec.ECDH(), key.public)  # the x coordinate, as RFC 6637 wants
        ephemeral_point = nist_ephemeral.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    else:
        raise UnsupportedKeyError("not an ECDH key")
    oid, kdf = key.curve_oid, key.kdf
    # RFC 6637 §7: Param = OID, algorithm, KDF parameters, "Anonymous Sender    ", fingerprint.
    param = bytes([len(oid)]) + oid + bytes([ALGO_ECDH, len(kdf)]) + kdf
    param += b"Anonymous Sender    " + key.fingerprint
    kek = ConcatKDFHash(_KDF_HASHES[kdf[1]](), AES_KEY_BYTES[kdf[2]], param).derive(shared)
    pad = 8 - len(plain) % 8  # PKCS #5 padding to the 8-octet granularity of the key wrap
    wrapped = keywrap.aes_key_wrap(kek, plain + bytes([pad]) * pad)
    return _mpi(ephemeral_point) + bytes([len(wrapped)]) + wrapped


def _mpi(value: bytes) -> bytes:
    """An MPI (RFC 4880 §3.2): bit count, then the big-endian octets without leading zeros."""
    value = value.lstrip(b"\x00")
    bits = (len(value) - 1) * 8 + value[0].bit_length() if value else 0
    return struct.pack(">H", bits) + value


def _read_mpi(body: bytes, pos: int) -> tuple[bytes, int]:
    """The octets of the MPI at `pos` and the position after it."""
    size = (int.from_bytes(body[pos : pos + 2], "big") + 7) // 8
    end = pos + 2 + size
    if end > len(body):
        raise IndexError(pos)
    return body[pos + 2 : end], end


def _header(tag: int, length: int) -> bytes:
    """A new-format packet header with a definite length (RFC 4880 §4.2.2)."""
    if length < 192:
        return bytes([0xC0 | tag, length])
    if length < 8384:
        length -= 192
        return bytes([0xC0 | tag, (length >> 8) + 192, length & 0xFF])
    return bytes([0xC0 | tag, 0xFF]) + struct.pack(">I", length)
