"""Encryption at rest of provider API keys.

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) with a key derived from
SECRET_KEY by HKDF-SHA256, so the database alone never reveals a key.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


@lru_cache(maxsize=4)
def _fernet(secret: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"gateway-profile-api-key",
               info=b"fernet").derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(plaintext: str) -> str:
    return _fernet(str(settings.SECRET_KEY)).encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    """The plaintext; raises ValueError when SECRET_KEY changed since it was stored."""
    try:
        return _fernet(str(settings.SECRET_KEY)).decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise ValueError("the API key cannot be decrypted (SECRET_KEY changed?)") from None
