"""What the fakes' writes change: a segment or campaign created, a campaign launched, a
ticket worked, a mention answered, a partner deleted, so that the page read after a form
shows its effect. Refusals come back as {"error": ..., "status": 4xx}, as the services
would answer them."""

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from rapport_console.testing.campaign import campaign, campaign_report, preview, segments
from rapport_console.testing.common import CAMPAIGN_ID, CUSTOMER_ID, SEGMENT_ID, at
from rapport_console.testing.partners import partner
from rapport_console.testing.support import MENTION_ID, comment, mention, reply, ticket

NO_CONTENT: dict[str, Any] = {"no_content": True}
NEW_CAMPAIGN_ID = "cmp-new"


def refused(status: int, message: str) -> dict[str, Any]:
    return {"error": {"error": "refused", "message": message, "detail": message}, "status": status}


def is_refusal(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("status"), int) and "error" in body


@dataclass
class World:
    """The services' state the console's forms change."""

    ticket: dict[str, Any] = field(default_factory=ticket)
    mention: dict[str, Any] = field(default_factory=mention)
    campaigns: dict[str, dict[str, Any]] = field(default_factory=lambda: {CAMPAIGN_ID: campaign()})
    deleted_partners: set[str] = field(default_factory=set)

    def answer(self, service: str, path: str, params: httpx.QueryParams) -> Any:
        """The reads whose answer the writes change; None when the path is not one."""
        if service == "campaign":
            return self._campaign_read(path, params)
        if service == "support":
            return self._support_read(path, params)
        if service == "partner-share":
            return self._partner_read(path)
        return None

    def _campaign_read(self, path: str, params: httpx.QueryParams) -> Any:
        if path == "/campaigns":
            return list(self.campaigns.values())
        parts = path.split("/")  # "", "campaigns", id, [report | preview]
        if parts[1] != "campaigns" or not 3 <= len(parts) <= 4:
            return None
        one = self.campaigns.get(parts[2])
        if one is None:
            return None
        if len(parts) == 3:
            return one
        if parts[3] == "report":
            return self._report(one)
        if parts[3] == "preview" and params.get("customer_id") == CUSTOMER_ID:
            return preview(one["id"], CUSTOMER_ID)
        return None

    def _report(self, one: dict[str, Any]) -> dict[str, Any]:
        full = {**campaign_report(), "campaign_id": one["id"], "name": one["name"]}
        if one["launched_at"] is not None:
            return {**full, "status": one["status"]}
        zeros = {key: 0 for key, value in full.items() if isinstance(value, int)}
        return {**full, **zeros, "status": one["status"], "revenue": "0", "variants": []}

    def _support_read(self, path: str, params: httpx.QueryParams) -> Any:
        if path == "/tickets":
            return self.queue(params)
        if path == "/tickets/t-1":
            return self.ticket
        if path == "/social/mentions":
            return self.mentions(params)
        if path == f"/social/mentions/{MENTION_ID}":
            return self.mention
        return None

    def _partner_read(self, path: str) -> Any:
        if path == "/partners":
            return {"partners": [partner()] if "p-1" not in self.deleted_partners else []}
        if path == "/partners/p-1" and "p-1" not in self.deleted_partners:
            return partner()
        return None

    def queue(self, params: httpx.QueryParams) -> dict[str, Any]:
        """The queue: the one ticket when the filters let it through."""
        one = self.ticket
        keep = (
            params.get("status") in (None, one["status"])
            and params.get("priority") in (None, one["priority"])
            and params.get("product_model") in (None, one["product_model"])
            and params.get("breached") in (None, "true")
        )
        return {"items": [one] if keep else [], "next_cursor": None}

    def mentions(self, params: httpx.QueryParams) -> dict[str, Any]:
        one = {k: v for k, v in self.mention.items() if k != "replies"}
        keep = params.get("status") in (None, one["status"]) and params.get("sentiment") in (
            None,
            one["sentiment"],
        )
        return {"items": [one] if keep else [], "next_cursor": None}

    # --- writes ------------------------------------------------------------------------------

    def post(self, service: str, path: str, body: Any) -> Any:
        """Every POST the console makes, as the service would answer it."""
        routes = {
            ("campaign", "/segments/preview"): self._segment_preview,
            ("campaign", "/segments"): self._new_segment,
            ("campaign", "/campaigns"): self._new_campaign,
            ("partner-share", "/partners"): self._new_partner,
            ("support", "/tickets/t-1/comments"): self._comment,
            ("support", f"/social/mentions/{MENTION_ID}/reply"): self._reply,
        }
        if service == "campaign" and path.endswith("/launch"):
            return self._launch(path.split("/")[2])
        route = routes.get((service, path))
        return route(body) if route else None

    def patch(self, service: str, path: str, body: dict[str, Any]) -> Any:
        """Support's PATCH /tickets/t-1, with its checks on status and resolution."""
        if (service, path) != ("support", "/tickets/t-1"):
            return None
        if self.ticket["status"] == "closed":
            return refused(409, "ticket t-1 is closed")
        if body.get("status") == "new":
            return refused(422, "a ticket cannot go back to new")
        resolution = body.get("resolution") or self.ticket["resolution"]
        if body.get("status") == "resolved" and not resolution:
            return refused(422, "resolving a ticket needs a resolution")
        self.ticket.update(body)
        return self.ticket

    def delete(self, service: str, path: str) -> Any:
        """Partner-share's DELETE /partners/{id}: the partnership ends (204)."""
        if (service, path) != ("partner-share", "/partners/p-1") or "p-1" in self.deleted_partners:
            return None
        self.deleted_partners.add("p-1")
        return NO_CONTENT

    def _segment_preview(self, body: Any) -> Any:
        """42 customers in GB, 7 otherwise."""
        count = 42 if "GB" in json.dumps(body) else 7
        return {"count": count, "sample": [], "time_dependent": False}

    def _new_segment(self, body: Any) -> Any:
        return {**segments()[0], "id": "seg-new", "name": body["name"], "rule": body["rule"]}

    def _new_partner(self, body: Any) -> Any:
        if not body.get("slices"):
            return refused(422, "slices: at least one")
        return {
            **partner(),
            "id": "p-2",
            "name": body["name"],
            "api_key": "rpk_" + "k" * 40,
            "webhook_secret": "whsec_" + "s" * 40,
        }

    def _new_campaign(self, body: Any) -> Any:
        segment_id = body["audience"].get("segment_id")
        if segment_id != SEGMENT_ID:
            return refused(422, f"no segment {segment_id}")
        if "{{ nope" in json.dumps(body["variants"]):
            return refused(422, "template error in variant A.body: 'nope' is undefined")
        created = {
            **campaign(),
            "id": NEW_CAMPAIGN_ID,
            "name": body["name"],
            "channel": body["channel"],
            "status": "draft",
            "variants": body["variants"],
            "link": body.get("link"),
            "launched_at": None,
            "completed_at": None,
            "created_at": at(0),
        }
        self.campaigns[NEW_CAMPAIGN_ID] = created
        return created

    def _launch(self, campaign_id: str) -> Any:
        one = self.campaigns.get(campaign_id)
        if one is None:
            return refused(404, f"no campaign {campaign_id}")
        if one["status"] != "draft":
            return refused(
                409, f"campaign {campaign_id} is {one['status']}; only a draft is launched"
            )
        one.update(status="sending", launched_at=at(0))
        return one

    def _comment(self, body: Any) -> Any:
        if self.ticket["status"] == "closed":
            return refused(409, "ticket t-1 is closed")
        number = len(self.ticket["comments"]) + 1
        added = comment(f"c-{number}", body["body"], body["author"], public=body["public"])
        self.ticket["comments"].append(added)
        return added

    def _reply(self, body: Any) -> Any:
        added = reply(body["text"], body["author"], len(self.mention["replies"]) + 1)
        self.mention["replies"].append(added)
        return added
