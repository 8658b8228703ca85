# Drivers the vm element's initramfs loads to find the root filesystem.
OOO_VM_INITRAMFS_MODULES=${OOO_VM_INITRAMFS_MODULES:-"virtio_pci virtio_blk virtio_scsi ata_piix ahci sd_mod nvme crc32c_generic ext4"}
export OOO_VM_INITRAMFS_MODULES
