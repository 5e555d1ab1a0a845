"""Every table of partner-share in one place: importing this module puts each domain's
tables on `SQLModel.metadata` (Alembic's env and the migration tests read it from there)."""

from rapport_partner_share.consents import models as consents
from rapport_partner_share.customers import models as customers
from rapport_partner_share.ledger import models as ledger
from rapport_partner_share.notices import models as notices
from rapport_partner_share.partners import models as partners
from rapport_partner_share.slices import models as slices

DOMAINS = (customers, partners, consents, slices, ledger, notices)
