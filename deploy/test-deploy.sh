#!/bin/sh
# Installs the .deb on this machine, checks it, removes and purges it; exits
# non-zero at the first failed check. Needs root. Usage: test-deploy.sh FILE.deb
set -eu
deb=$1
fail() { echo "test-deploy: FAILED: $*" >&2; exit 1; }
step() { echo "== $*"; }
[ "$(id -u)" = 0 ] || fail "run as root (dpkg -i)"
unit=/usr/lib/systemd/system/task-scheduler.service
files=$(mktemp); etc=$(mktemp); conffiles=$(mktemp); before=$(mktemp); after=$(mktemp)
trap 'rm -f "$files" "$etc" "$conffiles" "$before" "$after"' EXIT
# Every file and directory the package or its scripts could leave behind
# (dpkg's own database and logs aside).
snapshot() {
  find /etc /usr /opt /srv /var -xdev \( -path /var/lib/dpkg -o -path /var/log -o -path /var/cache -o -path /var/tmp \
    -o -path /var/lib/apt -o -path /var/backups \) -prune -o -print 2>/dev/null | sort
}
# The package's files (not directories), without the leading "."
dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }' > "$files"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles > "$conffiles"
[ -s "$conffiles" ] || fail "the package has no conffiles"

step "package: $(du -h "$deb" | cut -f1) $(basename "$deb"), $(wc -l < "$files") files"
dpkg-deb -f "$deb" Depends
dpkg -s task-scheduler >/dev/null 2>&1 && dpkg --purge task-scheduler >/dev/null
snapshot > "$before"

step "dpkg -i"
dpkg -i "$deb"
while read -r f; do [ -e "$f" ] || fail "$f not installed"; done < "$files"
getent passwd task-scheduler >/dev/null || fail "no task-scheduler user"
[ "$(stat -c %U:%G:%a /etc/task-scheduler/config.toml)" = root:task-scheduler:640 ] || fail "config.toml owner/mode $(stat -c %U:%G:%a /etc/task-scheduler/config.toml)"
find /etc/task-scheduler -type f | sort > "$etc"
sort /var/lib/dpkg/info/task-scheduler.conffiles | diff - "$etc" || fail "the conffiles are not the files under /etc/task-scheduler"

step "the Swift runtime is not needed from the toolchain"
if ldd /usr/bin/task-scheduler | grep -E 'swift|not found'; then fail "the installed binary needs libraries outside Debian"; fi

step "the installed binary checks the installed config and scripts, as the service user"
out=$(runuser -u task-scheduler -- /usr/bin/task-scheduler check --config /etc/task-scheduler/config.toml --scripts /etc/task-scheduler/scripts)
echo "$out"
echo "$out" | grep -q "check passed" || fail "check did not pass"
runuser -u task-scheduler -- /usr/bin/task-scheduler --help >/dev/null

step "systemd-analyze verify"
systemd-analyze verify "$unit" || fail "systemd-analyze verify rejected the unit"
step "systemd-analyze security"
score=$(systemd-analyze security --offline=true "$unit" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
echo "exposure score: $score (0 best, 10 worst)"
awk -v s="$score" 'BEGIN { exit !(s != "" && s < 2.0) }' || fail "exposure $score is not below 2.0"

step "dpkg -r: only the conffiles stay"
dpkg -r task-scheduler
while read -r f; do
  if grep -qx "$f" "$conffiles"; then [ -e "$f" ] || fail "conffile $f removed by dpkg -r"
  else [ ! -e "$f" ] || fail "$f left after dpkg -r"
  fi
done < "$files"
dpkg -s task-scheduler | grep -q "Status: deinstall ok config-files" || fail "not in the config-files state after dpkg -r"

step "dpkg --purge: nothing left"
dpkg --purge task-scheduler
while read -r f; do [ ! -e "$f" ] || fail "$f left after purge"; done < "$files"
for d in /etc/task-scheduler /usr/share/doc/task-scheduler /usr/share/task-scheduler; do
  [ ! -e "$d" ] || fail "$d left after purge"
done
dpkg -s task-scheduler >/dev/null 2>&1 && fail "dpkg still knows the package"
snapshot > "$after"
diff "$before" "$after" || fail "the file system differs after install and purge (above: < gone, > left behind)"
echo "test-deploy: passed"
