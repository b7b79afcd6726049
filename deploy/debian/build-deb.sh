#!/bin/sh
# Builds the Debian package from a staged root (`make install DESTDIR=STAGE
# PREFIX=/usr`) with dpkg-deb: every file under /etc a conffile, the
# dependencies read from the binary's shared libraries by dpkg-shlibdeps.
# Usage: build-deb.sh STAGE OUTPUT.deb VERSION
set -eu
stage=$(realpath "$1")
out=$2
version=$3
here=$(dirname "$(realpath "$0")")
arch=$(dpkg --print-architecture)

mkdir -p "$stage/DEBIAN"
(cd "$stage" && find etc -type f | sort | sed 's|^|/|') > "$stage/DEBIAN/conffiles"
for script in postinst prerm postrm; do install -m 0755 "$here/$script" "$stage/DEBIAN/$script"; done

# dpkg-shlibdeps wants a debian/control naming the package; a scratch one does.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/debian"
printf 'Source: task-scheduler\n\nPackage: task-scheduler\nArchitecture: any\n' > "$scratch/debian/control"
depends=$(cd "$scratch" && dpkg-shlibdeps -O "$stage/usr/bin/task-scheduler" | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@SIZE@|$size|" -e "s|@DEPENDS@|$depends|" \
    "$here/control.in" > "$stage/DEBIAN/control"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out"
