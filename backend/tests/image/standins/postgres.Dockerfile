# Stand-in for the official postgres image, as docker-compose.yml uses it: Debian's
# PostgreSQL 15 (bookworm's own; the compose file names 17, which Debian bookworm does not
# package), the same POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB first-start contract,
# data in /var/lib/postgresql/data, and pg_isready on the PATH.
ARG BASE
FROM ${BASE}
# No "main" cluster at install time: the entrypoint initialises the volume's data instead.
RUN mkdir -p /etc/postgresql-common/createcluster.d \
    && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/standin.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o postgres -g postgres -m 700 /var/lib/postgresql/data \
    && install -d -o postgres -g postgres -m 2775 /var/run/postgresql
# Executable in git, so the copy is too.
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
USER postgres
EXPOSE 5432
# PostgreSQL's fast shutdown, as the official image asks for.
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
