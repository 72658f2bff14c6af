#!/usr/bin/env bash
# How the dashboard's chart library was vendored: uPlot's dist files and license from the npm
# registry, checked against the tarball's sha256 below. Run it to fetch them again.
set -euo pipefail
cd "$(dirname "$0")/.."
version=1.6.32
sha256=4b8a8191e425658e3ea8c8c1314b0fc679c861ee3a1af2b20c7b16ba50b5133d
out=internal/httpapi/dashboard/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
curl -fsSL "https://registry.npmjs.org/uplot/-/uplot-$version.tgz" -o "$tmp/uplot.tgz"
echo "$sha256  $tmp/uplot.tgz" | sha256sum -c --quiet
tar -xzf "$tmp/uplot.tgz" -C "$tmp"
mkdir -p "$out"
cp "$tmp/package/dist/uPlot.iife.min.js" "$tmp/package/dist/uPlot.min.css" "$out/"
cp "$tmp/package/LICENSE" "$out/uPlot.LICENSE"
echo "uPlot $version -> $out"
