"""Every table of campaign in one place: importing this module puts each domain's tables on
`SQLModel.metadata` (Alembic's env and the migration tests read it from there)."""

from rapport_campaign.audience import models as audience
from rapport_campaign.campaigns import models as campaigns
from rapport_campaign.journeys import models as journeys
from rapport_campaign.messaging import models as messaging
from rapport_campaign.segments import models as segments
from rapport_campaign.tracking import models as tracking

DOMAINS = (audience, segments, campaigns, journeys, messaging, tracking)
