"""Column types every service's tables share."""

from sqlalchemy import BigInteger, Integer

# Autoincrement row ids (and the columns that point at them) are 64-bit: a 32-bit id runs
# out after 2**31 rows, 25 days of outbox at 1,000 events/s. SQLite autoincrements only an
# `INTEGER PRIMARY KEY`, and its INTEGER is already 64-bit.
ROW_ID = BigInteger().with_variant(Integer(), "sqlite")
