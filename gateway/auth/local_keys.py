"""Local encryption keys: one per user, tenant and epoch, derived (HKDF-SHA256, RFC 5869) from
`GATEWAY_LOCAL_KEY_SECRET`, so every replica hands out the same key and none is stored.

A client encrypts sensitive fields it keeps on the device with its key; the gateway hands the
key out only while the caller's access lasts (`GET /v1/local-key` is admitted like a shape).
Raising the epoch (`GATEWAY_LOCAL_KEY_EPOCH`) replaces every key, and so every `key_id`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES: Final = 32  # AES-256-GCM
SALT: Final = b"shape-gateway/local-key"
ID_PREFIX: Final = b"shape-gateway/local-key-id\x00"


@dataclass(frozen=True, slots=True)
class LocalKey:
    key: bytes = field(repr=False)
    key_id: str  # names the key without revealing it: the epoch and a digest of the key

    def as_json(self, expires_in: int) -> dict[str, object]:
        return {"key": _base64url(self.key), "key_id": self.key_id, "expires_in": expires_in}


def _base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def derive_local_key(secret: str, epoch: int, user: str, tenant: str) -> LocalKey:
    """The key of `user` in `tenant`. The inputs travel as one JSON array, so no choice of
    user and tenant names can make two pairs derive the same key."""
    info = json.dumps(["local-key", epoch, user, tenant], separators=(",", ":")).encode()
    key = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=SALT, info=info).derive(
        secret.encode()
    )
    digest = hashlib.sha256(ID_PREFIX + key).digest()[:12]
    return LocalKey(key=key, key_id=f"{epoch}.{_base64url(digest)}")
