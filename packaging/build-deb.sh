#!/usr/bin/env bash
# make package: the device install as a .deb for Raspberry Pi OS Bookworm (Python 3.11).
#   ARCH=arm64 (boards, default) or amd64; PYTHON: a Python 3.11 with pip; OUT: where the .deb goes.
# Our wheel and its dependencies' wheels for the target platform are installed with
# `pip install --target` into /usr/lib/wrale (a venv cannot be made for another
# architecture); /usr/bin/wrale runs the system's python3 on that directory alone.
set -euo pipefail
cd "$(dirname "$0")/.."

ARCH="${ARCH:-arm64}"
PYTHON="${PYTHON:-.venv/bin/python}"
OUT="${OUT:-dist}"
case "$ARCH" in
    arm64) plat=aarch64 ;;
    amd64) plat=x86_64 ;;
    *) echo "build-deb: ARCH must be arm64 or amd64, not $ARCH" >&2; exit 2 ;;
esac
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "build-deb: $PYTHON must be Python 3.11 (Bookworm's python3) to byte-compile" >&2
    exit 2
fi
version=$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"
lib="$root/usr/lib/wrale"
pip=("$PYTHON" -m pip --disable-pip-version-check --quiet)

# 1. Our wheel (only the project: its dependencies come as the target's wheels below),
#    built from a copy so that the checkout gets no build/ or egg-info.
mkdir "$work/src"
tar -c --exclude=__pycache__ pyproject.toml README.md src | tar -x -C "$work/src"
"${pip[@]}" wheel --no-deps --wheel-dir "$work/wheel" "$work/src"
wheel=$(ls "$work"/wheel/wrale_fleet-*.whl)

# 2. It and the device's dependencies (base + linux extra: gpiod), binary wheels for
#    Bookworm's glibc 2.36 on the target architecture, CPython 3.11. pip does not widen an
#    explicit --platform to older manylinux levels: each one glibc 2.36 runs is listed.
platforms=()
for glibc in 2_36 2_35 2_34 2_33 2_32 2_31 2_30 2_29 2_28 2_27 2_26 2_25 2_24 2_17; do
    platforms+=(--platform "manylinux_${glibc}_$plat")
done
"${pip[@]}" install --no-compile --no-warn-script-location --target "$lib" \
    "${platforms[@]}" --platform "manylinux2014_$plat" --python-version 3.11 \
    --implementation cp --abi cp311 --only-binary=:all: "$wheel[linux]"

# 3. Prune what a board never runs: console scripts, the central server, its dashboard.
rm -rf "$lib/bin"
for part in fleet/brain user/api user/ui user/simfleet; do
    rm -rf "${lib:?}/wrale/$part"
done
find "$lib" -name '__pycache__' -prune -exec rm -rf {} +
"$PYTHON" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$lib"

# 4. The files around it.
install -D -m 0755 packaging/wrale "$root/usr/bin/wrale"
for unit in packaging/systemd/*.service; do
    install -D -m 0644 "$unit" "$root/lib/systemd/system/$(basename "$unit")"
done
install -D -m 0644 packaging/udev/60-wrale.rules "$root/lib/udev/rules.d/60-wrale.rules"
install -D -m 0644 packaging/polkit/60-wrale.rules "$root/usr/share/polkit-1/rules.d/60-wrale.rules"
install -D -m 0644 packaging/etc/metald.toml "$root/etc/wrale/metald.toml"
install -D -m 0644 packaging/etc/edge.toml "$root/etc/wrale/edge.toml"
doc="$root/usr/share/doc/wrale-fleet"
install -D -m 0644 packaging/README.Debian "$doc/README.Debian"
install -D -m 0644 docs/examples/metald.toml "$doc/examples/metald.toml"
install -D -m 0644 README.md "$doc/README.md"

# 5. Control files; Installed-Size in KiB as dpkg counts it.
install -d -m 0755 "$root/DEBIAN"
size_kb=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE_KB@/$size_kb/" \
    packaging/debian/control.in >"$root/DEBIAN/control"
install -m 0644 packaging/debian/conffiles "$root/DEBIAN/conffiles"
for script in postinst prerm postrm; do
    install -m 0755 "packaging/debian/$script" "$root/DEBIAN/$script"
done

mkdir -p "$OUT"
deb="$OUT/wrale-fleet_${version}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb ($(du -k "$deb" | cut -f1) KiB, installed $size_kb KiB)"
