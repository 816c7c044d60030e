#!/bin/sh
# Regenerates ostree-2-testos.conf with the real ostree (2022.7 made the committed one):
# two deployments of a one-kernel tree, so that the entry shows version, title index and
# bootserial. Run as root: sh make-entry.sh
set -eu
work=$(mktemp -d)
trap 'chattr -i "$work"/S/ostree/deploy/*/deploy/*/ 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/tree/usr/lib/modules/6.1.0" "$work/tree/usr/etc" "$work/S"
echo kernel > "$work/tree/usr/lib/modules/6.1.0/vmlinuz"
echo initramfs > "$work/tree/usr/lib/modules/6.1.0/initramfs.img"
printf 'NAME=Test\nPRETTY_NAME="Test OS"\n' > "$work/tree/usr/lib/os-release"
ostree admin init-fs "$work/S"
ostree admin os-init --sysroot "$work/S" testos
ostree --repo="$work/S/ostree/repo" commit -b testos/stable --add-metadata-string=version=2 --tree=dir="$work/tree" >/dev/null
ostree admin deploy --sysroot "$work/S" --os testos testos/stable --karg=root=LABEL=root --karg=rw
ostree admin deploy --sysroot "$work/S" --os testos testos/stable
cp "$work/S/boot/loader/entries/ostree-2-testos.conf" "$(dirname "$0")/ostree-2-testos.conf"
