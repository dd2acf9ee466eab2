#!/bin/sh
# Rebuild the console's vendored CodeMirror bundle from the npm registry (a dev-time step:
# the built file and its licences are committed; nothing is fetched at run time).
#   sh src/netdistill/console/vendor-build/codemirror/build.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="$here/../../static/vendor"
cd "$here"
npm ci --no-audit --no-fund 2>/dev/null || npm install --no-audit --no-fund
npx esbuild entry.js --bundle --minify --format=iife --target=es2020 \
  --legal-comments=none --outfile="$out/codemirror.bundle.js"
# every package in the bundle is MIT; keep each one's licence text beside the bundle
: > "$out/codemirror.LICENSES.txt"
for pkg in node_modules/@codemirror/* node_modules/@lezer/* node_modules/@marijn/* node_modules/style-mod node_modules/w3c-keyname node_modules/crelt; do
  [ -d "$pkg" ] || continue
  name=$(node -p "require('./$pkg/package.json').name + '@' + require('./$pkg/package.json').version")
  printf '==== %s ====\n' "$name" >> "$out/codemirror.LICENSES.txt"
  cat "$pkg"/LICENSE* >> "$out/codemirror.LICENSES.txt"
  printf '\n' >> "$out/codemirror.LICENSES.txt"
done
sha256sum "$out/codemirror.bundle.js"
