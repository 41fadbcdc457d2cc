#!/bin/sh
# One backup of a PostgreSQL database: pg_dump --format=custom into $BACKUP_DIR, then retention.
#
# The server and database come from libpq's own variables (PGHOST, PGPORT, PGUSER, PGPASSWORD,
# PGDATABASE), so no password is ever on a command line. The dump is written under a hidden
# temporary name and renamed only once pg_restore has read it through to the end, so a file named
# <name>-<UTC timestamp>.dump is always a complete archive. Old dumps are deleted only after a new
# one has been written: a failing backup never eats the ones that still work.
#
#   BACKUP_DIR        where the dumps go (default /backups)
#   BACKUP_KEEP_DAYS  dumps at least this many days old are deleted (default 14, at least 1)
#   BACKUP_NAME       file name prefix (default $PGDATABASE)
set -eu

: "${PGDATABASE:?set PGDATABASE (and PGHOST, PGUSER, PGPASSWORD as needed)}"
dir="${BACKUP_DIR:-/backups}"
keep_days="${BACKUP_KEEP_DAYS:-14}"
name="${BACKUP_NAME:-$PGDATABASE}"

case "$keep_days" in
  '' | *[!0-9]* | 0) echo "backup: BACKUP_KEEP_DAYS must be a whole number of days, at least 1" >&2; exit 2 ;;
esac
case "$name" in
  '' | *[!A-Za-z0-9_.-]*) echo "backup: BACKUP_NAME may hold only letters, digits, '_', '.', '-'" >&2; exit 2 ;;
esac

mkdir -p "$dir"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
final="$dir/$name-$stamp.dump"
partial="$dir/.$name-$stamp.dump.partial"
trap 'rm -f "$partial"' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

if [ -e "$final" ]; then
  echo "backup: $final already exists" >&2
  exit 1
fi
pg_dump --format=custom --file="$partial"
pg_restore --file=/dev/null "$partial"
mv "$partial" "$final"
echo "backup: wrote $final ($(wc -c <"$final" | tr -d ' ') bytes)"

# -mtime +N matches files whose age in whole days is more than N, i.e. at least N+1 days old.
find "$dir" -maxdepth 1 -type f \( -name "$name-*.dump" -o -name ".$name-*.dump.partial" \) \
  -mtime +"$((keep_days - 1))" -print | while IFS= read -r old; do
  rm -f "$old"
  echo "backup: deleted $old (older than $keep_days days)"
done
