#!/usr/bin/env bash
# Runs QGIS's Processing executor with this checkout as the enabled plugin `cropmapper`:
#   scripts/qgis_process.sh list
#   scripts/qgis_process.sh run cropmapper:mapcrops -- SERIES=a.tif SERIES=b.tif POLYGONS=f.gpkg ...
# Debian's `qgis_process` wrapper script fails here, so the .bin is called directly, with the venv's packages (torch,
# einops) on PYTHONPATH and a throwaway QGIS profile (QGIS_CUSTOM_CONFIG_PATH) in which the plugin is enabled.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${CROPMAPPER_PYTHON:-$repo/.venv/bin/python}"
qgis_process="${QGIS_PROCESS_BIN:-/usr/bin/qgis_process.bin}"

plugin_path="$repo/build/pluginpath"
mkdir -p "$plugin_path"
[ -L "$plugin_path/cropmapper" ] || ln -sfn "$repo" "$plugin_path/cropmapper"

site_packages="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
export PYTHONPATH="$site_packages${PYTHONPATH:+:$PYTHONPATH}"
export QGIS_PLUGINPATH="$plugin_path"
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
config="$(mktemp -d -t cropmapper-qgis-XXXXXX)"
trap 'rm -rf "$config"' EXIT
export QGIS_CUSTOM_CONFIG_PATH="$config"
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  export XDG_RUNTIME_DIR="$config/runtime"
  mkdir -m 700 "$XDG_RUNTIME_DIR"
fi

"$qgis_process" plugins enable cropmapper >/dev/null
"$qgis_process" "$@"
