#!/usr/bin/env bash
# Make a fresh machine ready: Debian packages the tests' real peers need (installed only
# when missing), and the project with its test tools in .venv. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# command → Debian package
declare -A NEEDED=(
  [softflowd]=softflowd      # real NetFlow v5/v9/IPFIX exporter
  [nfcapd]=nfdump            # peer collector, totals via nfdump
  [nfacctd]=pmacct           # peer collector for the benchmark
  [tcpdump]=tcpdump          # independent datagram counts of captures
  [radclient]=freeradius-utils  # real RADIUS accounting client
  [squid]=squid              # real proxy writing access.log
  [dnsmasq]=dnsmasq-base     # DNS server for the DNS lookup
  [slapd]=slapd              # LDAP server for the LDAP lookup
  [ldapadd]=ldap-utils       # loads the test directory into slapd
  [postfix]=postfix          # real MTA writing a maillog for the postfix format
  [chromium]=chromium        # the console's browser tests (Playwright drives it)
  [snmpd]=snmpd              # SNMP agent for the SNMP interface lookup
)
missing=()
for command in "${!NEEDED[@]}"; do
  command -v "$command" >/dev/null 2>&1 || missing+=("${NEEDED[$command]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  # Tests start their own instances on free ports: keep packages from starting a
  # system-wide daemon (squid on 3128, slapd on 389) while they are installed.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    trap '$SUDO rm -f "$policy"' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# exact versions from constraints.txt (refresh: scripts/freeze-constraints.sh)
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]' 2>&1 \
  | grep -v -E '^WARNING: Location .* is ignored' || true
.venv/bin/netdistill --version >/dev/null
