-- Run once by the postgres:15 image on first start (docker-entrypoint-initdb.d), as the
-- POSTGRES_USER ("pension"). One database per service; each service migrates its own schema
-- with `python -m pension_<service> migrate`.
CREATE DATABASE account;
CREATE DATABASE fund_account;
CREATE DATABASE tax;
CREATE DATABASE payout;
