FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=oms.settings.prod
WORKDIR /app

# psql and pg_restore for ops/restore.sh (docker compose run --rm web sh ops/restore.sh ...), of the
# database's major version: an older pg_restore cannot read a newer pg_dump's archives. The image
# is Debian bookworm, whose client is 15, so the compose database is postgres:15 too (the same
# major version CI tests against).
ARG PG_MAJOR=15
RUN apt-get update \
    && apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}" \
    && rm -rf /var/lib/apt/lists/*

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
# collectstatic needs a key to import settings; it is not used for anything else.
RUN SECRET_KEY=build-only-collectstatic python manage.py collectstatic --noinput \
    && useradd --create-home oms && mkdir -p var && chown -R oms var
USER oms

EXPOSE 8000
CMD ["gunicorn", "oms.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "4", "--access-logfile", "-"]
