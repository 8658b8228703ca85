# Debian release, mirror and extra debootstrap packages. The builder sets OOO_DEBIAN_RELEASE
# (default bookworm) and OOO_DEBIAN_MIRROR (the machine's apt mirror).
OOO_DEBIAN_SECURITY_MIRROR=${OOO_DEBIAN_SECURITY_MIRROR:-${OOO_DEBIAN_MIRROR%/debian}/debian-security}
OOO_DEBIAN_INCLUDE=${OOO_DEBIAN_INCLUDE:-}
export OOO_DEBIAN_SECURITY_MIRROR OOO_DEBIAN_INCLUDE
