"""DKIM: the signature every mail carries when ``[dkim]`` is on, and its key pair.

Signing happens once, on the finished bytes, right after a mail is composed
(:meth:`worker.mail.compose.Composer._build` calls :meth:`Signer.sign`): nothing may
touch the signed headers or the body after it. dkimpy does the signing (RFC 6376,
relaxed/relaxed: a relay that refolds a header does not break it).

Off by default: a relay that signs itself needs none of this. When on, the key file is
read once, at start (the worker's start renders the templates through a Composer): a
key that is missing, unreadable, readable by every user or not an RSA key stops it with
one line naming ``[dkim] key_file`` instead of failing every notice.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from ..errors import ConfigError
from ..settings import Settings

#: What a receiver checks, in the issue's words; a header a mail lacks is signed as
#: absent, so nobody can add it on the way.
SIGNED_HEADERS: tuple[str, ...] = ("From", "To", "Subject", "Date", "Message-ID",
                                   "MIME-Version", "Content-Type", "Auto-Submitted")
KEY = "[dkim] key_file"


# dkimpy computes the RSA signature in pure Python (pow on 2048-bit numbers): 13 ms of CPU
# a mail, five times what the rest of a notice costs (bench/README.md). Everything else
# stays dkimpy's — canonicalization, the hashes, the header; only that one step is done by
# OpenSSL (cryptography) for the keys a Signer loaded. RSASSA-PKCS1-v1_5 is deterministic:
# the bytes are the same either way (tests/test_dkim.py compares them).
_pure_rsa_sign = dkim.RSASSA_PKCS1_v1_5_sign
_OPENSSL_KEYS: dict[int, rsa.RSAPrivateKey] = {}
_HASHES = {"sha256": hashes.SHA256, "sha1": hashes.SHA1}


def _rsa_sign(hash: Any, private_key: dict[str, int]) -> bytes:
    key = _OPENSSL_KEYS.get(private_key["modulus"])
    algorithm = _HASHES.get(str(getattr(hash, "name", "")).lower())
    if key is None or algorithm is None:
        return bytes(_pure_rsa_sign(hash, private_key))
    return key.sign(hash.digest(), padding.PKCS1v15(), Prehashed(algorithm()))


dkim.RSASSA_PKCS1_v1_5_sign = _rsa_sign


class Signer:
    """Signs with one key for one ``d=`` and selector."""

    def __init__(self, domain: str, selector: str, key_pem: bytes) -> None:
        key = serialization.load_pem_private_key(key_pem, password=None)
        assert isinstance(key, rsa.RSAPrivateKey)  # read_private_key checked it
        _OPENSSL_KEYS[key.private_numbers().public_numbers.n] = key
        self.domain = domain.encode("ascii")
        self.selector = selector.encode("ascii")
        self.key_pem = key_pem
        self.headers = [h.encode("ascii") for h in SIGNED_HEADERS]

    def sign(self, data: bytes) -> bytes:
        """``data`` with a DKIM-Signature header in front."""
        sig = dkim.sign(data, self.selector, self.domain, self.key_pem,
                        include_headers=self.headers,
                        canonicalize=(b"relaxed", b"relaxed"), linesep=b"\r\n")
        return sig + data


def make_signer(s: Settings) -> Signer:
    """The signer of ``[dkim]`` (on: worker/mail/compose.py asks only then)."""
    return Signer(s.dkim.domain, s.dkim.selector, read_private_key(s.path(Path(s.dkim.key_file))))


def read_private_key(path: Path) -> bytes:
    """The PEM bytes of the private key at ``path``, or ConfigError saying what is wrong."""
    try:
        st = path.stat()
        pem = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(KEY, f"{path} does not exist (make one with "
                               "`omitama-notify dkim keygen`)") from None
    except PermissionError:
        raise ConfigError(KEY, f"{path} cannot be read by this user "
                               f"(uid {os.getuid()}): give it to the worker's user") from None
    except OSError as e:
        raise ConfigError(KEY, f"{path} cannot be read: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(KEY, f"{path} is not a file")
    if st.st_mode & stat.S_IROTH:
        raise ConfigError(KEY, f"{path} is readable by every user of this machine: the key "
                               f"signs mail as the library; chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise ConfigError(KEY, f"{path} is not a PEM private key without a password ({e})") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 1024:
        raise ConfigError(KEY, f"{path} is not an RSA key of 1024 bits or more")
    return pem


def public_key_b64(pem: bytes) -> str:
    """The ``p=`` of the TXT record for a private key (SubjectPublicKeyInfo, base64)."""
    key = serialization.load_pem_private_key(pem, password=None)
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def same_public_key(published_b64: str, pem: bytes) -> bool:
    """Whether a published ``p=`` is the public half of our private key (SPKI or the
    bare PKCS#1 form some tools publish)."""
    try:
        der = base64.b64decode("".join(published_b64.split()), validate=True)
    except ValueError:
        return False
    ours = serialization.load_pem_private_key(pem, password=None).public_key()
    for load in (serialization.load_der_public_key,
                 lambda d: serialization.load_der_public_key(_spki_of_pkcs1(d))):
        try:
            theirs = load(der)
        except ValueError:
            continue
        return bool(isinstance(theirs, rsa.RSAPublicKey) and isinstance(ours, rsa.RSAPublicKey)
                    and theirs.public_numbers() == ours.public_numbers())
    return False


def _spki_of_pkcs1(der: bytes) -> bytes:
    """Wrap a PKCS#1 RSAPublicKey in SubjectPublicKeyInfo (rsaEncryption, NULL)."""
    algo = bytes.fromhex("300d06092a864886f70d0101010500")
    bits = b"\x00" + der
    body = algo + b"\x03" + _der_len(len(bits)) + bits
    return b"\x30" + _der_len(len(body)) + body


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def generate_key(bits: int = 2048) -> bytes:
    """A new RSA private key, PEM (PKCS#8, no password)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def txt_record(domain: str, selector: str, pem: bytes) -> str:
    """The record to publish, as a zone-file line (strings of at most 255 characters)."""
    value = f"v=DKIM1; k=rsa; p={public_key_b64(pem)}"
    parts = " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))
    return f"{selector}._domainkey.{domain}. IN TXT ( {parts} )"


def write_private_key(path: Path, pem: bytes) -> None:
    """Create ``path`` (mode 600) with the key; never overwrites one (a key in use would
    stop every published signature from verifying)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
