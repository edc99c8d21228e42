#!/bin/sh
# deps.sh — install the Debian packages todoku needs, only those missing.
#
#   scripts/deps.sh run     packages to build and run todoku
#   scripts/deps.sh check   also everything the test suite needs
#
# Idempotent: when every package is present it returns in well under a
# second without touching apt.  Needs root (or sudo) only when something
# is missing.
set -eu

RUN_PKGS="gcc make meson ninja-build pkg-config libevent-dev libsqlite3-dev
libssl-dev libunbound-dev zlib1g-dev libidn2-dev dns-root-data"
CHECK_PKGS="clang libclang-rt-14-dev libcmocka-dev python3 python3-pytest python3-pytest-xdist
python3-dnspython python3-dnslib python3-aiosmtpd swaks knot knot-dnsutils
postfix e2fsprogs clang-format python3-yaml python3-dkim python3-authres python3-nacl libmail-dkim-perl
opendkim-tools openssl postfix-policyd-spf-python sasl2-bin libsasl2-modules"

mode=${1:-run}
case "$mode" in
run) want=$RUN_PKGS ;;
check) want="$RUN_PKGS $CHECK_PKGS" ;;
*) echo "usage: $0 run|check" >&2; exit 64 ;;
esac

missing=
for p in $want; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed'; then
		missing="$missing $p"
	fi
done
ensure_user() {
	# Started as root, todoku drops its roles to unprivileged users:
	# network roles, spool owner, mail-store owner, key holder.
	[ "$(id -u)" -eq 0 ] || return 0
	for u in todoku todoku-queue todoku-mail todoku-keys; do
		getent passwd "$u" >/dev/null ||
			useradd --system --no-create-home --home-dir /nonexistent \
				--shell /usr/sbin/nologin "$u"
	done
}

if [ -z "$missing" ]; then
	ensure_user
	exit 0
fi

echo "deps: installing:$missing" >&2
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
# postfix asks debconf questions and wants to start a system instance; the
# tests run their own instance, so configure it as "No configuration" and
# keep the package scripts from starting any service.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
	$SUDO chmod 755 "$policy"
	made_policy=1
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
[ -n "$made_policy" ] && $SUDO rm -f "$policy"
ensure_user
exit 0
