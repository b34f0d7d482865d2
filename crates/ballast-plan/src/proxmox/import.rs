//! Import: the manifest `ballast import proxmox` prints for an existing guest.
