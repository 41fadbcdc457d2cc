#!/bin/sh
# The compose `backup` service: ops/backup.sh now, then every $BACKUP_INTERVAL_SECONDS (default
# 86400, nightly). A failed run is reported on stderr and retried at the next interval; the
# service's healthcheck turns unhealthy when no dump is newer than one interval (plus an hour).
set -eu

interval="${BACKUP_INTERVAL_SECONDS:-86400}"
case "$interval" in
  '' | *[!0-9]* | 0) echo "backup: BACKUP_INTERVAL_SECONDS must be a whole number of seconds, at least 1" >&2; exit 2 ;;
esac
here="$(dirname "$0")"

# As PID 1 in a container the shell ignores SIGTERM unless it traps it; wait on a background
# sleep (and end it) so `docker compose stop` ends the loop at once, not at the kill timeout.
sleeper=""
trap 'if [ -n "$sleeper" ]; then kill "$sleeper" 2>/dev/null || true; fi; exit 0' TERM INT

while :; do
  if ! sh "$here/backup.sh"; then
    echo "backup: FAILED at $(date -u +%Y-%m-%dT%H:%M:%SZ); next try in $interval s" >&2
  fi
  sleep "$interval" &
  sleeper=$!
  wait "$sleeper" || true
  sleeper=""
done
