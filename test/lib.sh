# Shared shell helpers for the demo, the test runner and the benchmarks.
# Source it; it expects $ROOT to be the project folder.
#
# PostgreSQL refuses to run as root, so when we are root the server runs as
# the "postgres" system user (created by the Debian package) and clients
# connect as database user "postgres" over a Unix socket with trust
# authentication.  Clusters live in $ROOT/.tmp and are thrown away.

set -euo pipefail

PG_BIN=/usr/lib/postgresql/15/bin
TMP="$ROOT/.tmp"
export PATH="$PG_BIN:$PATH"

PACKAGES="postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap
libtap-parser-sourcehandler-pgtap-perl libipc-run-perl libssl-dev libkrb5-dev
libjansson-dev libcmocka-dev make gcc clang libclang-rt-14-dev spin python3 iproute2"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Install what is missing from Debian's archive.
ensure_packages() {
	local missing=()
	for p in $PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		say "installing ${missing[*]}"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
	# the Debian package starts a default cluster we do not use
	as_root pg_ctlcluster 15 main stop >/dev/null 2>&1 || true
}

build_and_install() {
	say "building loopledger"
	make -C "$ROOT" -s PG_CONFIG=$PG_BIN/pg_config
	as_root make -C "$ROOT" -s install PG_CONFIG=$PG_BIN/pg_config >/dev/null
}

# The user that owns and runs the throwaway clusters.
pg_user() {
	if [ "$(id -u)" = 0 ]; then echo postgres; else id -un; fi
}

as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

prepare_tmp() {
	mkdir -p "$TMP"
	if [ "$(id -u)" = 0 ]; then chown postgres: "$TMP"; fi
}

# start_cluster NAME PORT [extra postgresql.conf lines...]
# Test ports sit below Linux's ephemeral range (32768-60999): a client
# connection's local port (pgbench, peers) could otherwise take a port a
# test server is about to listen on (seen once in CI as a node that would
# not start).
start_cluster() {
	local name=$1 port=$2 dir="$TMP/$1"
	shift 2
	prepare_tmp
	as_pg rm -rf "$dir"
	as_pg mkdir -p "$dir"
	as_pg initdb -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$TMP/$name.initdb.log" 2>&1
	{
		echo "port = $port"
		echo "listen_addresses = '127.0.0.1'"
		echo "unix_socket_directories = '$dir'"
		echo "shared_preload_libraries = 'loopledger'"
		echo "loopledger.database = 'ledger'"
		echo "max_connections = 200"
		echo "shared_buffers = 256MB"
		echo "logging_collector = off"
		for line in "$@"; do echo "$line"; done
	} | as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
	as_pg pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
	psql_at "$name" postgres -qc "CREATE DATABASE ledger" >/dev/null
	wait_for_sealer "$name"
}

# The sealer starts before database "ledger" exists and retries every 5 s.
wait_for_sealer() {
	local i
	for i in $(seq 1 100); do
		[ "$(psql_at "$1" postgres -Atc "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'loopledger sealer'")" = 1 ] && return 0
		sleep 0.1
	done
	echo "the loopledger sealer did not start on cluster $1" >&2
	return 1
}

stop_cluster() {
	local dir="$TMP/$1"
	[ -d "$dir/data" ] && as_pg pg_ctl -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

# psql_at NAME DB [psql args...]
psql_at() {
	local name=$1 db=$2
	shift 2
	psql -h "$TMP/$name" -p "$(cluster_port "$name")" -U postgres -d "$db" -X -v ON_ERROR_STOP=1 "$@"
}

cluster_port() {
	grep -E '^port = ' "$TMP/$1/data/postgresql.conf" | tail -1 | awk '{print $3}'
}
