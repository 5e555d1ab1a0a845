"""Every table of profile in one place: importing this module puts each domain's tables on
`SQLModel.metadata` (Alembic's env and the migration tests read it from there)."""

from rapport_profile.analytics import models as analytics
from rapport_profile.consents import models as consents
from rapport_profile.customers import models as customers
from rapport_profile.gdpr import models as gdpr
from rapport_profile.identity import models as identity
from rapport_profile.timeline import models as timeline
from rapport_profile.tracking import models as tracking

DOMAINS = (customers, identity, consents, timeline, analytics, tracking, gdpr)
