"""The AES-GCM key of one direction of an asyncssh connection, for the lean data paths
(tunnel/bulksend.py, tunnel/bulkrecv.py).

asyncssh makes a new GCM cipher object (``GCMEncryption._cipher``) at every key exchange
and builds an ``AESGCM`` from its key for every packet; the lean paths build one per key
and reuse it. The nonce stays asyncssh's: ``_iv``, advanced by ``_update_iv`` once per
packet (RFC 5647 7.1, the invocation counter), whichever path sent or received it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import asyncssh
from asyncssh.encryption import GCMEncryption
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

logger = logging.getLogger(__name__)

GCM_CIPHER = ("_key", "_iv", "_update_iv")
"""asyncssh internals used on its GCM cipher (checked the same in 2.17.0 and 2.24.1)."""


class GcmKeys:
    """The current key's cipher and ``AESGCM`` of one direction (``_send_encryption`` or
    ``_recv_encryption``); ``warn`` is told, once, what a cipher lacked."""

    def __init__(self, warn: Callable[[str], None]) -> None:
        self._warn = warn
        self._cipher: object = None
        self._aead: AESGCM | None = None
        self._unusable = False
        """Set when a GCM cipher lacked what the lean path needs: stock path from then on."""
        self.keys = 0
        """Keys seen (1 + the rekeys gone through)."""

    def current(self, encryption: object) -> tuple[Any, AESGCM] | None:
        """The cipher and an AESGCM for its key, made once per key; None when not under
        AES-GCM (or the cipher is not usable)."""
        if type(encryption) is not GCMEncryption or self._unusable:
            return None
        cipher: Any = getattr(encryption, "_cipher", None)
        if cipher is not self._cipher or self._aead is None:
            missing = [name for name in GCM_CIPHER if not hasattr(cipher, name)]
            if missing:
                self._unusable = True
                self._warn(", ".join(f"GCMCipher.{name}" for name in missing))
                return None
            self._cipher, self._aead = cipher, AESGCM(cipher._key)
            self.keys += 1
        return cipher, self._aead


def stock_warning(path: str) -> Callable[[str], None]:
    """How a lean path says it stands down: this asyncssh lacks an internal it relies on,
    so tunnel data takes asyncssh's own (slower) ``path``."""

    def warn(missing: str) -> None:
        logger.warning(
            "asyncssh %s lacks %s: tunnel data takes asyncssh's own, slower %s",
            asyncssh.__version__,
            missing,
            path,
        )

    return warn
