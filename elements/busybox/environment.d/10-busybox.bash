# The busybox-static version on the build host (recorded in the image manifest).
OOO_BUSYBOX_VERSION=$(dpkg-query -W -f '${Version}' busybox-static 2>/dev/null || busybox 2>&1 | sed -n '1s/^BusyBox v\([^ ]*\).*/\1/p')
export OOO_BUSYBOX_VERSION
