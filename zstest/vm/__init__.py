"""QEMU guest: launcher, accelerator probe, serial console monitor, SSH."""
