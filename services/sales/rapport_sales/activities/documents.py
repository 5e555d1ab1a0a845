"""Documents attached to accounts and contacts: metadata in the database, bytes on disk.

A document is an activity of kind `document` (so it is on the timelines) and a row with
its name, type, size and digest; the bytes are the file `<documents_dir>/<id>`. Types are
checked against the bytes, not only the declared header: a PDF starts with `%PDF-`, text
must be UTF-8.
"""

import asyncio
import hashlib
from collections.abc import Sequence
from pathlib import Path

from rapport_events.base import utcnow
from rapport_sales.activities import service as activities
from rapport_sales.activities.models import ActivityPublic, SalesActivity, SalesDocument
from rapport_sales.errors import InvalidRequest, NotFound
from rapport_sales.unit_of_work import SalesUnitOfWork

OFFICE = b"PK\x03\x04"  # .docx and .xlsx are zip files
MAGIC = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (OFFICE,),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": (OFFICE,),
}


def check_content(content_type: str, data: bytes, allowed: Sequence[str]) -> None:
    """Refuse a type not allowed, or bytes that are not what the type says."""
    if content_type not in allowed:
        raise InvalidRequest(f"{content_type or 'no content type'} is not an allowed type")
    if not data:
        raise InvalidRequest("the document is empty")
    if content_type.startswith("text/"):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidRequest(f"a {content_type} document must be UTF-8") from error
        return
    if not data.startswith(MAGIC.get(content_type, (b"",))):
        raise InvalidRequest(f"the bytes are not a {content_type} file")


def check_filename(filename: str) -> str:
    """A plain file name: no folders, no control characters, at most 255 characters."""
    name = filename.strip()
    if not name or len(name) > 255 or name in (".", ".."):
        raise InvalidRequest("filename must be 1 to 255 characters")
    if any(c in name for c in "/\\") or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidRequest("filename must not hold folders or control characters")
    return name


async def attach(
    uow: SalesUnitOfWork,
    folder: Path,
    data: bytes,
    *,
    filename: str,
    content_type: str,
    allowed: Sequence[str],
    account_id: str | None,
    customer_ids: list[str],
    owner: str | None,
) -> ActivityPublic:
    """Store the document's bytes and its activity; the file is removed if storing fails."""
    name = check_filename(filename)
    check_content(content_type, data, allowed)
    if account_id is None and not customer_ids:
        raise InvalidRequest("a document is attached to an account or contacts (customer_id)")
    now = utcnow()
    activity = SalesActivity(
        kind="document",
        account_id=account_id,
        subject=name,
        owner=owner,
        occurred_at=now,
        created_at=now,
    )
    view = await activities.record(uow, activity, customer_ids)
    uow.activities.add(
        SalesDocument(
            id=activity.id,
            filename=name,
            content_type=content_type,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            created_at=now,
        )
    )
    path = folder / activity.id
    await asyncio.to_thread(_write, path, data)
    try:
        await uow.flush()
    except Exception:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise
    return view


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def get_document(uow: SalesUnitOfWork, document_id: str) -> SalesDocument:
    """The document's metadata, or NotFound."""
    document = await uow.activities.get_document(document_id)
    if document is None:
        raise NotFound(f"no document {document_id}")
    return document


async def forget_person(uow: SalesUnitOfWork, folder: Path, customer_ids: list[str]) -> None:
    """Erasure: a document about the person and no account goes, file included; one of an
    account stays with the company (the person's link goes with the other activities')."""
    for activity in await uow.activities.documents_of_people_alone(customer_ids):
        document = await uow.activities.get_document(activity.id)
        if document is not None:
            await uow.activities.delete(document)
        await uow.activities.delete(activity)
        await asyncio.to_thread((folder / activity.id).unlink, missing_ok=True)
