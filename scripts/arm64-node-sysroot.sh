#!/usr/bin/env bash
# Builds an arm64 root with Debian's arm64 `nodejs` in it, for running the
# aarch64-unknown-linux-gnu package under qemu-user (scripts/qemu-smoke.sh).
# Nothing is installed on the machine: apt resolves and downloads the arm64
# packages with a private state and source list, and dpkg-deb unpacks them.
# Usage: scripts/arm64-node-sysroot.sh DIR   (DIR/usr/bin/node afterwards)
set -euo pipefail
root=${1:?usage: $0 DIR}
mkdir -p "$root"
root=$(cd "$root" && pwd)
state="$root.apt"
rm -rf "$state"
mkdir -p "$state/lists/partial" "$state/archives/partial" "$state/parts" "$state/prefs"
: > "$state/status"
cat > "$state/sources.list" <<LIST
deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
LIST
apt_opts=(
  -o APT::Architecture=arm64 -o APT::Architectures::=arm64
  -o Dir::State="$state" -o Dir::State::Lists="$state/lists" -o Dir::State::Status="$state/status"
  -o Dir::Cache="$state" -o Dir::Cache::Archives="$state/archives"
  -o Dir::Etc::SourceList="$state/sources.list" -o Dir::Etc::SourceParts="$state/parts"
  -o Dir::Etc::PreferencesParts="$state/prefs"
  -o Debug::NoLocking=1 -o APT::Install-Recommends=0
)
apt-get "${apt_opts[@]}" -qq update
# Everything nodejs needs, resolved as if nothing were installed.
DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" -qq -y --download-only install nodejs
for deb in "$state"/archives/*.deb; do dpkg-deb -x "$deb" "$root"; done
rm -rf "$state"
echo "arm64 node: $root/usr/bin/node ($(ls "$root"/usr/lib/aarch64-linux-gnu | wc -l) libraries)"
