#!/usr/bin/env bash
# Installs the build into a temporary DESTDIR and checks what was installed:
# the file list, the man pages (man --warnings prints problems on stderr and
# still exits 0) and the systemd units (systemd-analyze verify, by stderr).
# Usage: install_test.sh BUILD_DIR DESTDIR
set -euo pipefail

build=$1
dest=$2
rm -rf "$dest"
DESTDIR=$dest cmake --install "$build" > /dev/null
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
root=$dest$prefix
failed=0

for file in sbin/toxlabd bin/toxlab bin/toxlab-sim etc/toxlab/toxlab.conf \
    etc/toxlab/thresholds.tsv etc/toxlab/rules.tsv lib/udev/rules.d/70-toxlab.rules \
    lib/systemd/system/toxlabd.service lib/systemd/system/toxlabd.socket \
    lib/sysusers.d/toxlab.conf lib/tmpfiles.d/toxlab.conf \
    share/bash-completion/completions/toxlab share/man/man8/toxlabd.8 \
    share/man/man1/toxlab.1 share/man/man1/toxlab-sim.1 share/man/man5/toxlab.conf.5; do
    if [ ! -e "$root/$file" ]; then
        echo "FAIL: $file was not installed under $root"
        failed=1
    fi
done

for page in "$root"/share/man/man*/*; do
    warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 > /dev/null)
    if [ -n "$warnings" ]; then
        echo "FAIL: man page $page has warnings:"
        echo "$warnings"
        failed=1
    fi
done

if command -v systemd-analyze > /dev/null; then
    units=$dest/units-under-test
    mkdir -p "$units"
    sed "s|^ExecStart=[^ ]*|ExecStart=$root/sbin/toxlabd|" \
        "$root/lib/systemd/system/toxlabd.service" > "$units/toxlabd.service"
    cp "$root/lib/systemd/system/toxlabd.socket" "$units/"
    problems=$(systemd-analyze verify --man=no "$units/toxlabd.service" "$units/toxlabd.socket" 2>&1 || true)
    if [ -n "$problems" ]; then
        echo "FAIL: systemd-analyze verify:"
        echo "$problems"
        failed=1
    fi
else
    echo "systemd-analyze not found: the units were not verified"
fi

bash -n "$root/share/bash-completion/completions/toxlab" || failed=1
if [ "$failed" -ne 0 ]; then
    exit 1
fi
echo "1 passed, 0 failed"
