"""The social mentions inbox: an agent filters mentions, opens one and answers it on its
platform through support; other roles and forged forms send nothing."""

import pytest

from rapport_console.testing import CUSTOMER_ID, MENTION_ID, FakeServices
from rapport_support.mentions.models import ReplyCreate

from .conftest import Login, form_token, writes

# The console in process on a SQLite file of its own: not a unit test.
pytestmark = pytest.mark.integration

MENTION = f"/mentions/{MENTION_ID}"


async def test_the_inbox_passes_its_filters_to_support(login: Login, fakes: FakeServices) -> None:
    agent = await login("support")

    matching = await agent.get("/mentions", params={"status": "new", "sentiment": "negative"})
    other = await agent.get("/mentions", params={"sentiment": "positive"})

    assert f'href="{MENTION}"' in matching.text and "my new kettle leaks" in matching.text
    assert "No mention matches" in other.text
    first = next(r for r in fakes.requests if r.url.path == "/social/mentions")
    assert dict(first.url.params) == {"limit": "50", "status": "new", "sentiment": "negative"}
    assert (await agent.get("/mentions", params={"status": "lost"})).status_code == 400


async def test_an_agent_answers_a_mention_and_sees_the_reply_queued(
    login: Login, fakes: FakeServices
) -> None:
    agent = await login("support")
    token = form_token((await agent.get(MENTION)).text)

    reply = await agent.post(
        f"{MENTION}/reply", data={"csrf_token": token, "text": "Sorry! A new seal is on its way."}
    )

    assert reply.status_code == 303 and reply.headers["location"] == MENTION
    ((path, sent),) = writes(fakes)
    assert path == f"/social/mentions/{MENTION_ID}/reply"
    assert sent == {"text": "Sorry! A new seal is on its way.", "author": "support"}
    ReplyCreate.model_validate(sent)
    page = (await agent.get(MENTION)).text
    assert "A new seal is on its way." in page and 'data-testid="reply-status">pending<' in page
    officer = await login("privacy")
    log = (await officer.get("/access-log", params={"customer": CUSTOMER_ID})).text
    assert "<td>mention-reply</td>" in log and "<td>mention</td>" in log


async def test_an_empty_reply_is_a_form_error(login: Login, fakes: FakeServices) -> None:
    agent = await login("support")
    token = form_token((await agent.get(MENTION)).text)

    reply = await agent.post(f"{MENTION}/reply", data={"csrf_token": token, "text": " "})

    assert reply.status_code == 400 and "the reply is empty" in reply.text
    assert writes(fakes) == []


async def test_an_unknown_mention_is_404(login: Login, fakes: FakeServices) -> None:
    agent = await login("support")
    token = form_token((await agent.get(MENTION)).text)

    assert (await agent.get("/mentions/m-404")).status_code == 404
    reply = await agent.post("/mentions/m-404/reply", data={"csrf_token": token, "text": "Hi"})
    assert reply.status_code == 404
    assert writes(fakes) == []


async def test_marketers_may_not_answer_and_forged_forms_send_nothing(
    login: Login, fakes: FakeServices
) -> None:
    marketer, agent = await login("marketer"), await login("support")
    token = form_token((await marketer.get("/customers")).text)

    refused = await marketer.post(f"{MENTION}/reply", data={"csrf_token": token, "text": "Hi"})
    forged = await agent.post(f"{MENTION}/reply", data={"csrf_token": "forged", "text": "Hi"})

    assert refused.status_code == 403 and forged.status_code == 403
    assert (await marketer.get("/mentions")).status_code == 403
    assert writes(fakes) == []
