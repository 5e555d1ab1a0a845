"""Every table of sales in one place: importing this module puts each domain's tables on
`SQLModel.metadata` (Alembic's env and the migration tests read it from there)."""

from rapport_sales.accounts import models as accounts
from rapport_sales.activities import models as activities
from rapport_sales.customers import models as customers
from rapport_sales.opportunities import models as opportunities

DOMAINS = (customers, accounts, opportunities, activities)
