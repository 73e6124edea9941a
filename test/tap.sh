# TAP helpers shared by the shell tests in test/sh (source it).
# ok STATUS DESC: passes when STATUS is 0; is HAVE WANT DESC: string equality.
n=0 failed=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi; }
is() {
	n=$((n + 1))
	if [ "$1" == "$2" ]; then echo "ok $n - $3"; else
		echo "not ok $n - $3"; echo "#   have: $1"; echo "#   want: $2"; failed=$((failed + 1)); fi
}
q() { psql -X -v ON_ERROR_STOP=1 -Atq "$@"; }
# isnt HAVE UNWANTED DESC; like HAVE EXTENDED_REGEX DESC
isnt() {
	n=$((n + 1))
	if [ "$1" != "$2" ]; then echo "ok $n - $3"; else
		echo "not ok $n - $3"; echo "#   have: $1 (unwanted)"; failed=$((failed + 1)); fi
}
like() {
	n=$((n + 1))
	if printf '%s' "$1" | grep -Eq -- "$2"; then echo "ok $n - $3"; else
		echo "not ok $n - $3"; echo "#   have: $1"; echo "#   want match: $2"; failed=$((failed + 1)); fi
}
