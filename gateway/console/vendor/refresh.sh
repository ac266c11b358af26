#!/bin/sh
# Refresh the vendored libraries from npm at the versions pinned in versions.txt.
# Each folder is emptied and refilled with the released files named there (no build),
# the library's licence and a VERSION file ("<package>@<version>"). npm pack checks
# each tarball against the registry's integrity hash. Needs npm and tar.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

grep -v '^[[:space:]]*\(#\|$\)' "$here/versions.txt" | while read -r folder package version files; do
    echo "$folder: $package@$version"
    rm -rf "$work/pkg" && mkdir -p "$work/pkg"
    tarball=$(cd "$work" && npm pack --silent "$package@$version" | tail -n 1)
    tar -xzf "$work/$tarball" -C "$work/pkg"
    rm -rf "${here:?}/$folder" && mkdir -p "$here/$folder"
    for file in $files; do
        cp -R "$work/pkg/package/$file" "$here/$folder/"
    done
    echo "$package@$version" > "$here/$folder/VERSION"
    rm -f "$work/$tarball"
done
