"""Secrets, pseudonyms and signatures: everything partner-share derives with a key."""

import hashlib
import hmac
import re
import secrets

API_KEY_PREFIX = "rpk_"
WEBHOOK_SECRET_PREFIX = "whsec_"
REF_HEX_LENGTH = 32  # 128 bits: no collisions in practice, short enough for a URL
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_PHONE_NOISE = re.compile(r"[\s().\-/]")


def new_api_key() -> str:
    """A fresh partner API key (256 random bits)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def new_webhook_secret() -> str:
    """A fresh per-partner webhook signing secret."""
    return WEBHOOK_SECRET_PREFIX + secrets.token_urlsafe(32)


def new_ref_key() -> str:
    """A fresh per-partner pseudonym key; it never leaves the service."""
    return secrets.token_hex(32)


def hash_api_key(api_key: str) -> str:
    """The stored form of an API key.

    A plain SHA-256 is enough: the keys are 256 random bits, so there is nothing
    for a slow password hash to protect against, and lookups stay one index probe.
    """
    return hashlib.sha256(api_key.encode()).hexdigest()


def key_hint(api_key: str) -> str:
    """The first characters of a key, to tell keys apart in listings."""
    return api_key[: len(API_KEY_PREFIX) + 4]


def pseudonym(ref_key: str, customer_id: str) -> str:
    """The stable per-partner ref of a customer: HMAC-SHA256(partner key, id), truncated."""
    digest = hmac.new(bytes.fromhex(ref_key), customer_id.encode(), hashlib.sha256)
    return digest.hexdigest()[:REF_HEX_LENGTH]


def subject_pseudonym(ledger_key: str, customer_id: str) -> str:
    """The ledger's name for a customer: HMAC-SHA256(ledger key, id) in hex.

    One-way and keyed: the ledger alone names no one, and without the key no list of ids
    can be tried against it; with the key and an id, that person's entries are found.
    """
    return hmac.new(ledger_key.encode(), customer_id.encode(), hashlib.sha256).hexdigest()


def normalise_email(email: str) -> str:
    """The form partners hash: trimmed and lower-cased."""
    return email.strip().lower()


def normalise_phone(phone: str) -> str:
    """The form partners hash: E.164, `+` then digits, no spaces or punctuation."""
    compact = _PHONE_NOISE.sub("", phone.strip())
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    return compact if compact.startswith("+") else "+" + compact


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def email_digest(email: str) -> str:
    """SHA-256 of the normalised e-mail, as partners compute it."""
    return sha256_hex(normalise_email(email))


def phone_digest(phone: str) -> str:
    """SHA-256 of the normalised phone number, as partners compute it."""
    return sha256_hex(normalise_phone(phone))
