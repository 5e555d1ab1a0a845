"""Crypto-shredding: personal fields travel the log encrypted under a per-customer data key.

Each event type names its personal fields (`Event.PERSONAL`). When an event is written
to the outbox those fields leave the JSON data and go, as one JSON object, into
`sealed`: AES-256-GCM under the customer's data key, with the event id (`ce_id`) as
associated data, so a sealed blob cannot be moved to another event. The data key's id
travels in the `ce_datakey` header; everything else stays readable by any Kafka client.

Data keys are random, wrapped by the newest key-encryption key (KEK) of the settings
(any listed KEK unwraps, so KEKs rotate), and published on the compacted topic
`rapport.customer-keys` through the same outbox as the event that first needs them,
so a key is on the log before any event sealed with it. Record key: the data key id
(`<customer id>/<random>`), so two services minting a key for one customer at once
both keep theirs. Erasure writes a tombstone (null value) for each of the customer's
key ids and an `erased` marker keyed by the customer id: every cache drops the keys,
and the sealed fields of that customer read as erased (None) for ever after.

Every process holds one `KeyCache` (`KEYS`), fed by a supervised `KeyReader` that
reads the key topic from the beginning (latest value per record key wins, so the
cache is right on a broker that does not compact).
"""

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rapport_events.environment import DEVELOPMENT_KEK_SECRET

log = logging.getLogger(__name__)

KEYS_TOPIC = "rapport.customer-keys"
SEALED_FIELD = "sealed"
DATA_KEY_HEADER = "ce_datakey"
NONCE_BYTES = 12
# What `make run` and the tests use; refused outside development like every published secret.
DEVELOPMENT_KEK = f"dev:{DEVELOPMENT_KEK_SECRET}"
# The session.info entry holding the data keys a transaction minted (customer -> key).
MINTED = "rapport_minted_keys"
# The session.info entry holding the customers a transaction erased.
ERASED = "rapport_erased_customers"


class ShreddingError(ValueError):
    """A key record, KEK or sealed blob that cannot be read."""


class DataKeyNotReady(LookupError):
    """An event is sealed with a data key this process has not read yet: wait, never apply."""


@dataclass(frozen=True, slots=True)
class DataKey:
    """One customer's data key, with its id (the record key on the key topic)."""

    kid: str
    customer_id: str
    secret: bytes

    @property
    def cipher(self) -> AESGCM:
        return _cipher(self.secret)


_CIPHERS: dict[bytes, AESGCM] = {}


def _cipher(secret: bytes) -> AESGCM:
    # An AESGCM object expands the key once; building one per event would cost more than
    # the encryption of a small payload.
    cipher = _CIPHERS.get(secret)
    if cipher is None:
        if len(_CIPHERS) > 100_000:
            _CIPHERS.clear()
        cipher = _CIPHERS[secret] = AESGCM(secret)
    return cipher


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ShreddingError(f"not base64: {error}") from error


# --- key-encryption keys ------------------------------------------------------


class KeyEncryptionKeys:
    """The KEKs of the settings, `<id>:<secret>` each, oldest first: the last wraps, every
    one unwraps (so a new KEK is appended, and an old one removed once no key record
    wrapped by it is wanted). The AES-256 key is the SHA-256 of the secret, a random
    value of 32+ characters like every other secret of the settings."""

    def __init__(self, entries: Sequence[str]) -> None:
        self.secrets = parse_keks(entries)
        self._keys = {
            kek_id: AESGCM(hashlib.sha256(secret.encode()).digest())
            for kek_id, secret in self.secrets.items()
        }
        self.newest = list(self.secrets)[-1]

    @property
    def ids(self) -> list[str]:
        return list(self._keys)

    def wrap(self, key: DataKey) -> bytes:
        """The key topic's record value for `key`, wrapped by the newest KEK."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        wrapped = self._keys[self.newest].encrypt(nonce, key.secret, key.kid.encode())
        record = {
            "customer_id": key.customer_id,
            "kid": key.kid,
            "kek": self.newest,
            "nonce": _b64(nonce),
            "wrapped": _b64(wrapped),
        }
        return json.dumps(record, separators=(",", ":")).encode()

    def unwrap(self, record: dict[str, Any]) -> DataKey:
        """The data key of a key record; raises ShreddingError for an unknown KEK or bad record."""
        try:
            kek = self._keys[record["kek"]]
            kid = str(record["kid"])
            secret = kek.decrypt(_unb64(record["nonce"]), _unb64(record["wrapped"]), kid.encode())
            return DataKey(kid=kid, customer_id=str(record["customer_id"]), secret=secret)
        except KeyError as error:
            raise ShreddingError(f"key record lacks {error} or names an unknown KEK") from error
        except InvalidTag as error:
            raise ShreddingError("key record does not unwrap with its KEK") from error


def parse_keks(entries: Sequence[str]) -> dict[str, str]:
    """`<id>:<secret>` entries as {id: secret}, in order; raises ShreddingError when malformed."""
    if not entries:
        raise ShreddingError("at least one key-encryption key is needed")
    parsed: dict[str, str] = {}
    for entry in entries:
        kek_id, _, secret = entry.partition(":")
        if not kek_id.strip() or not secret.strip() or kek_id in parsed:
            raise ShreddingError("each key-encryption key is `<unique id>:<secret>`")
        parsed[kek_id] = secret
    return parsed


def new_data_key(customer_id: str) -> DataKey:
    """A fresh random data key for one customer."""
    return DataKey(
        kid=f"{customer_id}/{secrets.token_hex(8)}",
        customer_id=customer_id,
        secret=AESGCM.generate_key(bit_length=256),
    )


def customer_of(kid: str) -> str:
    """The customer id a data key id belongs to (`<customer id>/<random>`)."""
    return kid.rpartition("/")[0]


def erased_marker(customer_id: str) -> bytes:
    """The record value that says a customer was erased (keyed by the customer id)."""
    return json.dumps({"customer_id": customer_id, "erased": True}).encode()


# --- sealing ------------------------------------------------------------------


def seal(data: dict[str, Any], personal: Iterable[str], key: DataKey, event_id: str) -> bool:
    """Move the personal fields of `data` (JSON-ready) into its `sealed` blob, in place.

    Returns False when the event holds none of them (nothing is sealed then)."""
    fields = {name: data.pop(name) for name in personal if name in data}
    if not fields:
        return False
    plaintext = json.dumps(fields, separators=(",", ":")).encode()
    data[SEALED_FIELD] = seal_bytes(plaintext, key, event_id)
    return True


def seal_bytes(plaintext: bytes, key: DataKey, event_id: str) -> str:
    """The `sealed` value of a JSON object of personal fields: base64 of nonce + ciphertext."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return _b64(nonce + key.cipher.encrypt(nonce, plaintext, event_id.encode()))


def unseal(data: dict[str, Any], key: DataKey | None, event_id: str) -> dict[str, Any]:
    """`data` with its personal fields back, or without them (erased) when `key` is None."""
    blob = data.pop(SEALED_FIELD, None)
    if blob is None or key is None:
        return data
    if not isinstance(blob, str):
        raise ShreddingError("the sealed field is not a string")
    raw = _unb64(blob)
    try:
        plaintext = key.cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], event_id.encode())
    except InvalidTag as error:
        raise ShreddingError(
            "the sealed fields do not open with their data key and event id"
        ) from error
    fields = json.loads(plaintext)
    if not isinstance(fields, dict):
        raise ShreddingError("the sealed fields are not a JSON object")
    return {**data, **fields}


# --- the cache ----------------------------------------------------------------


class KeyCache:
    """The data keys this process has read from the key topic (or minted and committed)."""

    def __init__(self, keks: KeyEncryptionKeys) -> None:
        self.keks = keks
        self._keys: dict[str, DataKey] = {}
        self._by_customer: dict[str, dict[str, DataKey]] = {}
        self._shredded: set[str] = set()
        self._erased: set[str] = set()
        self._changed = asyncio.Event()
        self.records_read = 0

    def current(self, customer_id: str) -> DataKey | None:
        """A data key to seal this customer's new events with, if the cache has one."""
        keys = self._by_customer.get(customer_id)
        if not keys:
            return None
        return next(reversed(keys.values()))

    def kids_of(self, customer_id: str) -> list[str]:
        """Every data key id known for the customer (what an erasure must tombstone)."""
        return list(self._by_customer.get(customer_id, ()))

    def is_erased(self, customer_id: str) -> bool:
        return customer_id in self._erased

    def remember(self, key: DataKey) -> None:
        """Keep a data key, unless its record was tombstoned or its customer erased."""
        if key.kid in self._shredded or key.customer_id in self._erased:
            return
        self._keys[key.kid] = key
        self._by_customer.setdefault(key.customer_id, {})[key.kid] = key
        self._changed.set()

    def forget(self, record_key: str) -> None:
        """A tombstone: drop the data key with this id for good."""
        self._shredded.add(record_key)
        key = self._keys.pop(record_key, None)
        if key is not None:
            self._by_customer.get(key.customer_id, {}).pop(record_key, None)
        self._changed.set()

    def erase(self, customer_id: str) -> None:
        """The customer was erased: drop their keys, and ignore any minted later."""
        self._erased.add(customer_id)
        for kid in self._by_customer.pop(customer_id, {}):
            self._keys.pop(kid, None)
            self._shredded.add(kid)
        self._changed.set()

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Take in one record of the key topic; a record that cannot be read is logged."""
        self.records_read += 1
        record_key = (key or b"").decode("utf-8", "replace")
        if value is None:
            self.forget(record_key)
            return
        try:
            record = json.loads(value)
            if record.get("erased"):
                self.erase(str(record["customer_id"]))
            else:
                self.remember(self.keks.unwrap(record))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            log.error("unreadable record %r on %s: %s", record_key, KEYS_TOPIC, error)

    def lookup(self, kid: str) -> DataKey | None:
        """The data key `kid`; None when it was shredded; raises DataKeyNotReady when unknown."""
        key = self._keys.get(kid)
        if key is not None:
            return key
        if self.is_settled(kid):
            return None
        raise DataKeyNotReady(f"data key {kid} not read yet")

    def is_settled(self, kid: str) -> bool:
        """Whether `lookup` answers without DataKeyNotReady: read, tombstoned or erased."""
        return kid in self._keys or kid in self._shredded or customer_of(kid) in self._erased

    async def wait_for(self, wanted: Iterable[str], warn_after_s: float = 5.0) -> None:
        """Return once every data key id in `wanted` is settled (read, tombstoned or erased)."""
        waited = 0.0
        while missing := [kid for kid in wanted if not self.is_settled(kid)]:
            self._changed.clear()
            try:
                async with asyncio.timeout(1.0):
                    await self._changed.wait()
            except TimeoutError:
                waited += 1.0
                if waited >= warn_after_s and waited % warn_after_s < 1.0:
                    log.warning("waiting %.0fs for data keys %s", waited, missing[:5])
            wanted = missing


_keys: KeyCache | None = None


def configure(kek_entries: Sequence[str]) -> KeyCache:
    """Make the process's key cache with these KEKs (kept if the KEKs are the same)."""
    global _keys
    keks = KeyEncryptionKeys(kek_entries)
    if _keys is None or _keys.keks.ids != keks.ids:
        _keys = KeyCache(keks)
    return _keys


def after_commit(info: dict[str, Any]) -> None:
    """Take into the cache what a committed transaction minted and erased."""
    cache = keys()
    for key in info.pop(MINTED, {}).values():
        cache.remember(key)
    for customer_id in info.pop(ERASED, ()):
        cache.erase(customer_id)


def after_rollback(info: dict[str, Any]) -> None:
    """Forget what a rolled-back transaction minted: its key records were never written."""
    info.pop(MINTED, None)
    info.pop(ERASED, None)


def keys() -> KeyCache:
    """The process's key cache (with the development KEK until `configure` runs)."""
    return _keys if _keys is not None else configure([DEVELOPMENT_KEK])
