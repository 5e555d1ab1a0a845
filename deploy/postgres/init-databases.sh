#!/bin/sh
# One role and one database per service (no service reads another's tables).
# Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d).
set -eu
password="${RAPPORT_DB_PASSWORD:-rapport}"
for service in profile campaign support partner_share console sales; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE ROLE ${service} LOGIN PASSWORD '${password}';
CREATE DATABASE ${service} OWNER ${service};
REVOKE ALL ON DATABASE ${service} FROM PUBLIC;
SQL
done
