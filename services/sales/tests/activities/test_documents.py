"""Documents attached to accounts and contacts: stored on disk, bounded in size and type,
downloaded as attached, and gone with an erased person when they were theirs alone."""

from pathlib import Path

import httpx
from fastapi import FastAPI
from sales_testing import AUTH, apply, outbox_events, person

from rapport_events.types import ActivityLogged, CustomerErased

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def files_in(folder: Path) -> list[Path]:
    return list(folder.iterdir()) if folder.exists() else []


async def upload(
    client: httpx.AsyncClient, data: bytes, content_type: str, **params: str | list[str]
) -> httpx.Response:
    return await client.post(
        "/documents",
        params={"filename": "quote.pdf", **params},
        content=data,
        headers={**AUTH, "Content-Type": content_type},
    )


class TestDocuments:
    async def test_a_document_is_stored_on_disk_and_downloaded_as_attached(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        ada = person()
        await apply(app, ada)
        account = (await client.post("/accounts", json={"name": "Acme"}, headers=AUTH)).json()

        attached = await upload(
            client, PDF, "application/pdf", account_id=account["id"], customer_id=ada.customer_id
        )
        document = attached.json()
        downloaded = await client.get(f"/documents/{document['id']}", headers=AUTH)
        listed = (await client.get(f"/accounts/{account['id']}/activities", headers=AUTH)).json()

        assert attached.status_code == 201, attached.text
        assert (document["kind"], document["subject"]) == ("document", "quote.pdf")
        assert downloaded.content == PDF
        assert downloaded.headers["content-type"] == "application/pdf"
        assert "quote.pdf" in downloaded.headers["content-disposition"]
        stored = Path(app.state.settings.documents_dir) / document["id"]
        assert stored.read_bytes() == PDF
        assert [a["id"] for a in listed["items"]] == [document["id"]]
        logged = [e for e in await outbox_events(app) if isinstance(e, ActivityLogged)]
        assert [(e.customer_id, e.kind) for e in logged] == [(ada.customer_id, "document")]

    async def test_too_large_wrong_type_or_lying_bytes_are_refused_and_nothing_is_stored(
        self, make_app: object
    ) -> None:
        async with make_app(max_document_bytes=1024) as (app, client):  # type: ignore[operator]
            account = (await client.post("/accounts", json={"name": "A"}, headers=AUTH)).json()
            where = {"account_id": account["id"]}
            replies = {
                "too large": await upload(client, PDF + b"x" * 2048, "application/pdf", **where),
                "type not allowed": await upload(
                    client, b"MZ\x90", "application/x-msdownload", **where
                ),
                "not a pdf": await upload(client, b"<html>", "application/pdf", **where),
                "text not utf-8": await upload(client, b"\xff\xfe\x00", "text/plain", **where),
                "empty": await upload(client, b"", "application/pdf", **where),
                "folder in name": await upload(
                    client, PDF, "application/pdf", filename="../etc/passwd", **where
                ),
                "about nobody": await upload(client, PDF, "application/pdf"),
                "unknown account": await upload(client, PDF, "application/pdf", account_id="nope"),
            }
            folder = Path(app.state.settings.documents_dir)
            stored = files_in(folder)
            activities = (await client.get("/activities", headers=AUTH)).json()["items"]

        assert {name: r.status_code for name, r in replies.items()} == {
            "too large": 413,
            "type not allowed": 415,
            "not a pdf": 422,
            "text not utf-8": 422,
            "empty": 422,
            "folder in name": 422,
            "about nobody": 422,
            "unknown account": 404,
        }
        assert stored == [] and activities == []

    async def test_an_erased_person_s_own_documents_go_and_the_account_s_stay(
        self, app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        ada = person()
        await apply(app, ada)
        account = (await client.post("/accounts", json={"name": "Acme"}, headers=AUTH)).json()
        own = (await upload(client, PDF, "application/pdf", customer_id=ada.customer_id)).json()
        shared = (
            await upload(
                client,
                PDF,
                "application/pdf",
                account_id=account["id"],
                customer_id=ada.customer_id,
            )
        ).json()
        exported = (await client.get(f"/customers/{ada.customer_id}/export", headers=AUTH)).json()

        await apply(app, CustomerErased(customer_id=ada.customer_id))

        folder = Path(app.state.settings.documents_dir)
        assert sorted(d["id"] for d in exported["records"]["documents"]) == sorted(
            [own["id"], shared["id"]]
        )
        assert (await client.get(f"/documents/{own['id']}", headers=AUTH)).status_code == 404
        assert not (folder / own["id"]).exists()
        kept = await client.get(f"/documents/{shared['id']}", headers=AUTH)
        assert kept.status_code == 200 and kept.content == PDF
