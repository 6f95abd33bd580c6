#!/bin/sh
# Runs once, when the postgres container initialises an empty data directory (the image's
# /docker-entrypoint-initdb.d). The services connect as `gantry`, which owns the `gantry` database
# but is NOT a superuser and cannot bypass row-level security: superusers skip RLS policies, and
# every tenant table relies on them (Shared/GantryRuntime/TenantScope.swift). The image's own
# superuser (`postgres`, password GANTRY_DB_ADMIN_PASSWORD) is for operators only.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -v pw="$GANTRY_DB_PASSWORD" <<'SQL'
CREATE ROLE gantry LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB PASSWORD :'pw';
CREATE DATABASE gantry OWNER gantry;
SQL
