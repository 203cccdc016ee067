-- Run once by the postgres:15 image on first start (docker-entrypoint-initdb.d), as the
-- POSTGRES_USER ("pension"). One database per service; each service migrates its own schema
-- with `python -m pension_<service> migrate`.
--
-- Text is compared bytewise (LC_COLLATE 'C'; the character classes stay the cluster's): the
-- services' text columns are identifiers, codes and timestamps, and bytewise is the order of
-- code points, the order Python and the embedded SQLite default give. PostgreSQL 15 compares
-- "C" text without strcoll and sorts it on abbreviated keys, so its index builds (a rebuild
-- makes them all again) take about a quarter less time than under a language's collation.
CREATE DATABASE account TEMPLATE template0 LC_COLLATE 'C';
CREATE DATABASE fund_account TEMPLATE template0 LC_COLLATE 'C';
CREATE DATABASE tax TEMPLATE template0 LC_COLLATE 'C';
CREATE DATABASE payout TEMPLATE template0 LC_COLLATE 'C';
