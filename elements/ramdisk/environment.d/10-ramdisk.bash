# Modules /init loads, in this order (modprobe pulls in their dependencies).
OOO_RAMDISK_MODULES=${OOO_RAMDISK_MODULES:-"virtio_pci virtio_net virtio_blk virtio_scsi virtio_rng ata_piix ahci sd_mod nvme e1000 e1000e button evdev"}
export OOO_RAMDISK_MODULES
