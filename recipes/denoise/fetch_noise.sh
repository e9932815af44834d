#!/usr/bin/env bash
# Fetch the Debian packages whose real recorded noise `audiovae corpus noise` gathers, and unpack only the files it
# reads into DIR/root (no system install, no root needed): about 5 GB downloaded once into DIR/debs, about 150 MB
# unpacked. Their licences (CC0, CC-BY, CC-BY-SA, GPL-2+) are listed per file in data/README.md and in the
# sources.csv that `audiovae corpus noise` writes.
# Usage: bash recipes/denoise/fetch_noise.sh DIR   then   audiovae corpus noise OUT --root DIR/root
set -euo pipefail
dir=${1:?usage: fetch_noise.sh DIR}
mkdir -p "$dir/debs" "$dir/root"
dir=$(cd "$dir" && pwd)
packages=$(python -c "from audiovae.data.corpora.noise import PACKAGES; print(' '.join(PACKAGES))")
cd "$dir/debs"
for p in $packages; do
  ls "${p}"_*.deb >/dev/null 2>&1 || apt-get download "$p"
done
for deb in *.deb; do
  # the games' sound folders (and 0ad's archive, whose sounds are unzipped below), nothing else
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dir/root" --wildcards --no-anchored \
    '*/sounds/*' '*/sound/*' '*/Sounds/*' '*/sfx/*' '*/stklib_steamLocomotive_a/*' '*/black_forest/steamLocomotive.ogg' \
    '*/0ad/mods/public/public.zip' '*/usr/share/doc/*/copyright' 2>/dev/null || true
done
zip="$dir/root/usr/share/games/0ad/mods/public/public.zip"
if [ -f "$zip" ]; then
  python - "$zip" <<'PY'
import sys, zipfile
from pathlib import Path
z = Path(sys.argv[1])
with zipfile.ZipFile(z) as f:
    for m in f.namelist():
        if m.startswith(("audio/ambient/", "audio/attack/fire/")) and m.endswith(".ogg"):
            f.extract(m, z.parent)
z.unlink()
PY
fi
echo "unpacked into $dir/root: audiovae corpus noise OUT --root $dir/root"
