#!/usr/bin/env bash
# Checks the udev rules with udevadm test in a private mount namespace, where
# a tmpfs over /etc/udev/rules.d holds only the file under test. udevadm
# exits 0 even on errors and reports them as "FILE:LINE ...", so the check is
# that no output line starts with the file's path. A broken copy of the file
# must be reported, which shows the check can fail.
# Usage: udev_test.sh RULES_FILE
set -uo pipefail

rules=$1
skip=77
if ! command -v udevadm > /dev/null; then
    echo "udevadm not found: the udev rules were not checked"
    exit $skip
fi
if ! unshare -m true 2> /dev/null; then
    echo "unshare -m is not permitted here: the udev rules were not checked"
    exit $skip
fi

# Prints the udevadm lines that report problems in the file given as $1.
problems_in() {
    local name
    name=$(basename "$1")
    unshare -m bash -c '
        mount -t tmpfs tmpfs /etc/udev/rules.d &&
        cp "$1" "/etc/udev/rules.d/$2" &&
        udevadm test /sys/class/tty/tty0 2>&1' udev-test "$1" "$name" |
        grep "^/etc/udev/rules.d/$name:"
}

found=$(problems_in "$rules")
if [ -n "$found" ]; then
    echo "FAIL: udevadm reports problems in $rules:"
    echo "$found"
    exit 1
fi

broken=$(mktemp -d)/$(basename "$rules")
cp "$rules" "$broken"
echo 'SUBSYSTEM=="tty", NO_SUCH_KEY="1"' >> "$broken"
if [ -z "$(problems_in "$broken")" ]; then
    echo "FAIL: a rule with an invalid key was not reported; the check cannot fail"
    exit 1
fi
rm -rf "$(dirname "$broken")"
echo "1 passed, 0 failed"
