#!/bin/sh
# Restore a dump made by ops/backup.sh into a NEW database, then check its books.
#
#   ops/restore.sh DUMP_FILE TARGET_DATABASE_URL
#   ops/restore.sh /backups/oms-20261205T020000Z.dump postgres://oms:oms@postgres:5432/oms_restore_20261205
#
# 1. creates the target database (it must not exist yet: a restore never writes over a database),
#    connecting to the maintenance database $RESTORE_MAINTENANCE_DB (default postgres) on the
#    same server;
# 2. pg_restore --no-owner --no-privileges --exit-on-error --single-transaction into it, so the
#    restore is all or nothing and the restoring role owns every object;
# 3. runs `manage.py check_ledger` with DATABASE_URL pointing at it (with $PYTHON, default python,
#    and the caller's DJANGO_SETTINGS_MODULE).
# Exits non-zero if any step fails. It never drops anything: a target left behind by a failed
# restore is for you to look at and drop.
set -eu

if [ "$#" -ne 2 ]; then
  echo "usage: $0 DUMP_FILE TARGET_DATABASE_URL" >&2
  exit 2
fi
dump="$1"
target="$2"

if [ ! -r "$dump" ]; then
  echo "restore: cannot read $dump" >&2
  exit 2
fi
case "$target" in
  postgres://* | postgresql://*) ;;
  *) echo "restore: the target must be a postgres:// URL, e.g. postgres://oms@postgres:5432/oms_restore" >&2; exit 2 ;;
esac

# postgres://user:pass@host:port/NAME?options -> NAME, and the same URL for the maintenance database.
base="${target%%\?*}"
options="${target#"$base"}"
server="${base%/*}"
name="${base##*/}"
case "$server" in
  *://) echo "restore: the target URL names no database" >&2; exit 2 ;;
esac
case "$name" in
  '' | [0-9]* | *[!A-Za-z0-9_]*)
    echo "restore: the target database name must be letters, digits and '_' (got '$name')" >&2; exit 2 ;;
esac
admin="$server/${RESTORE_MAINTENANCE_DB:-postgres}$options"

echo "restore: creating database $name"
psql --no-psqlrc --quiet --set=ON_ERROR_STOP=1 --dbname="$admin" --command="CREATE DATABASE \"$name\""

echo "restore: restoring $dump into $name"
pg_restore --no-owner --no-privileges --exit-on-error --single-transaction --dbname="$target" "$dump"

echo "restore: checking the ledger of $name"
DATABASE_URL="$target" "${PYTHON:-python}" "$(dirname "$0")/../manage.py" check_ledger

echo "restore: $name restored from $dump and its ledger is consistent"
