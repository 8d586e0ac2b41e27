#!/bin/sh
# test/wine_retry.sh PROGRAM [ARG...]: `wine PROGRAM ARG...` for the mingw
# leg of test/cross.sh, run again (at most twice more) when wine itself, not
# the program, failed: a non-zero exit with a line of wine's own on stderr
# ("wine client error:...: recvmsg: Connection reset by peer" when the
# wineserver dropped the connection, "wine: ..." when it could not start).
# CI saw the first once in ~1,600 starts (a cli_features check,
# 2026-12-01), when cross.sh's persistent wineserver had failed to start;
# cross.sh now starts it properly, and this is the second line of defence.
#
# stdout and stderr are held in files and written when the last try ends
# (stdout first), so a failed try leaves nothing behind; nothing reads
# stdin. Each retry is appended to $WINE_RETRY_LOG (cross.sh counts them)
# with the first line wine printed, so retries are seen, not hidden.
# $WINE (default wine) is the command, for checking this script with a stub.
out=$(mktemp) err=$(mktemp) || exit 2
try=1
while :; do
    ${WINE:-wine} "$@" >"$out" 2>"$err"
    rc=$?
    [ $rc = 0 ] && break
    why=$(grep -m1 -e '^wine client error' -e '^wine: ' -e '^wineserver: ' "$err")
    if [ -z "$why" ] || [ $try -ge 3 ]; then break; fi
    echo "try $try of $(basename "$1") $2: rc $rc: $why" >>"${WINE_RETRY_LOG:-/dev/null}"
    try=$((try + 1))
    sleep 1
done
cat "$out"
cat "$err" >&2
rm -f "$out" "$err"
exit "$rc"
