#!/bin/sh
# install-user.sh SYSCONFDIR STATEDIR [DESTDIR] - the service user of a real
# host: a system user and group "dfreconcile" without a shell or a home of
# its own, owning the state directory (0700) and the only one able to read
# the configuration and token files (0600). Run by "make install" as root
# with no DESTDIR; otherwise (a staged install for a package) it prints the
# exact commands for the target host and changes nothing.
set -eu

sysconf=$1
state=$2
destdir=${3:-}

commands="getent group dfreconcile >/dev/null || groupadd --system dfreconcile
getent passwd dfreconcile >/dev/null || useradd --system --gid dfreconcile --home-dir $state --no-create-home --shell /usr/sbin/nologin dfreconcile
chown dfreconcile:dfreconcile $state && chmod 0700 $state
chown root:dfreconcile $sysconf/dfreconcile && chmod 0750 $sysconf/dfreconcile
for f in $sysconf/dfreconcile/dfreconcile.conf $sysconf/dfreconcile/*.token; do [ -e \"\$f\" ] && chown dfreconcile:dfreconcile \"\$f\" && chmod 0600 \"\$f\"; done; true"

if [ -n "$destdir" ] || [ "$(id -u)" -ne 0 ]; then
	echo "dfreconcile: on the target host, as root, create the service user and set the owners:"
	echo "$commands" | sed 's/^/  /'
	exit 0
fi
sh -c "$commands"
echo "dfreconcile: service user dfreconcile owns $state and $sysconf/dfreconcile/dfreconcile.conf"
