"""Every table of support in one place: importing this module puts each domain's tables on
`SQLModel.metadata` (Alembic's env and the migration tests read it from there)."""

from rapport_support.customers import models as customers
from rapport_support.mentions import models as mentions
from rapport_support.products import models as products
from rapport_support.tickets import models as tickets

DOMAINS = (customers, products, tickets, mentions)
