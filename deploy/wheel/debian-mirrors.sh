# shellcheck shell=bash
# Sourced by deploy/build-wheel and deploy/test-wheel: sets `mirror` and `security_mirror`,
# the Debian mirrors that debootstrap and the bullseye trees' sources.list use. They are the
# ones apt is configured with on this machine (one-line or deb822 sources), so that the
# scripts reach what apt reaches; ORCHARD_DEBIAN_MIRROR and ORCHARD_DEBIAN_SECURITY_MIRROR
# override them, deb.debian.org is the fallback. No trailing slash.

apt_uris() {
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
    2>/dev/null | sed -n -e 's/^URIs:[[:space:]]*//p' -e 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?//p' |
    tr ' ' '\n' | grep -E '^https?://' || true
}
mirror="${ORCHARD_DEBIAN_MIRROR:-$(apt_uris | grep -E '/debian/?$' | head -1)}"
security_mirror="${ORCHARD_DEBIAN_SECURITY_MIRROR:-$(apt_uris | grep -E '/debian-security/?$' | head -1)}"
mirror="${mirror:-http://deb.debian.org/debian}"
mirror="${mirror%/}"
security_mirror="${security_mirror:-http://deb.debian.org/debian-security}"
security_mirror="${security_mirror%/}"
