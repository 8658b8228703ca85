# Kernel selection and module set (see elements/kernel/README.md).
OOO_KERNEL_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")/../lib" && pwd)/kmod.sh
if [ -z "${OOO_KERNEL_MODULES:-}" ]; then
  if [ "${OOO_BASE:-}" = debian ]; then
    OOO_KERNEL_MODULES=all
  else
    OOO_KERNEL_MODULES="virtio_pci virtio_blk virtio_net virtio_scsi virtio_console virtio_rng
      ext4 crc32c_generic vfat nls_cp437 nls_ascii ata_piix ahci sd_mod sr_mod nvme
      e1000 e1000e button evdev"
  fi
fi
OOO_KERNEL_MODULES_EXCLUDE=${OOO_KERNEL_MODULES_EXCLUDE:-"kernel/sound kernel/drivers/media kernel/drivers/gpu kernel/drivers/staging kernel/drivers/net/wireless kernel/net/wireless kernel/net/mac80211 kernel/drivers/bluetooth kernel/net/bluetooth kernel/drivers/infiniband kernel/drivers/iio kernel/drivers/hid/amd-sfh-hid"}
export OOO_KERNEL_LIB OOO_KERNEL_MODULES OOO_KERNEL_MODULES_EXCLUDE
