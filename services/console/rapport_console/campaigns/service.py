"""What the campaign pages make of campaign's answers: the new-campaign form as campaign's
request, a message previewed for one customer, and the report's funnel."""

from dataclasses import dataclass
from typing import Any

from rapport_console.charts import Chart
from rapport_console.clients import Call, ServiceClients, ServiceUnavailable
from rapport_console.web import refusal

FUNNEL = ("targeted", "suppressed", "sent", "delivered", "opened", "clicked", "converted")
CHANNELS = ("email", "sms", "push", "social")


@dataclass(frozen=True)
class CampaignForm:
    """What the new-campaign form holds: one message (variant A) to one segment."""

    name: str = ""
    channel: str = "email"
    segment_id: str = ""
    subject: str = ""
    body: str = ""
    link: str = ""

    def problem(self) -> str | None:
        """Why this cannot be a campaign, when that is plain before asking campaign."""
        if not self.name:
            return "the campaign needs a name"
        if self.channel not in CHANNELS:
            return f"the channel is one of {', '.join(CHANNELS)}"
        if not self.segment_id:
            return "choose the segment it goes to"
        if not self.body.strip():
            return "the message needs a body"
        if self.channel == "email" and not self.subject:
            return "an e-mail needs a subject"
        return None

    def request(self) -> dict[str, Any]:
        """The body of campaign's POST /campaigns."""
        variant = {"name": "A", "body": self.body}
        if self.subject:
            variant["subject"] = self.subject
        body: dict[str, Any] = {
            "name": self.name,
            "channel": self.channel,
            "variants": [variant],
            "audience": {"segment_id": self.segment_id},
        }
        if self.link:
            body["link"] = self.link
        return body


@dataclass(frozen=True)
class Preview:
    """A message rendered for one customer, or why there is none (with its status)."""

    message: dict[str, Any] | None = None
    problem: str | None = None
    status_code: int = 200


def funnel(report: Any) -> Chart | None:
    if not isinstance(report, dict) or "error" in report:
        return None
    return Chart("bar", list(FUNNEL)).add("customers", [report.get(step, 0) for step in FUNNEL])


async def preview_for(clients: ServiceClients, cid: str, customer: str) -> Preview:
    """The campaign's message for a customer given by id or e-mail."""
    try:
        customer_id = await _customer_id(clients, customer)
        if customer_id is None:
            return Preview(problem=f"No customer has the e-mail {customer}.", status_code=404)
        path = f"/campaigns/{cid}/preview"
        answer = await clients.get(Call("campaign", path, {"customer_id": customer_id}))
    except ServiceUnavailable as error:
        return Preview(problem=f"No preview: {error}.", status_code=503)
    if answer is None:
        problem = f"Campaign does not know the customer {customer_id}."
        return Preview(problem=problem, status_code=404)
    if "error" in answer:
        return Preview(problem=f"No preview: {refusal(answer)}", status_code=400)
    return Preview(message=answer)


async def _customer_id(clients: ServiceClients, customer: str) -> str | None:
    """The id itself, or the id of the customer with this e-mail (profile's search)."""
    if "@" not in customer:
        return customer
    found = await clients.get(Call("profile", "/customers", {"email": customer, "limit": 1}))
    items = (found or {}).get("items") or []
    return str(items[0]["id"]) if items else None
