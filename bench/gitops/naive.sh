#!/usr/bin/env bash
# The naive promotion script that bench/gitops/run measures tagwatch against:
# for each app, in a normal working clone, pull, sed the tag, commit, push.
#
#   naive.sh CLONE CHANGES
#
# CHANGES holds one line per app: path<TAB>old tag<TAB>new tag<TAB>app name.
set -euo pipefail

clone=$1
changes=$(realpath "$2")
cd "$clone"
while IFS=$'\t' read -r file old new app; do
    git pull -q
    sed -i -E "s/(tag: [\"']?)${old//./\\.}([\"' ]|\$)/\\1${new}\\2/" "$file"
    git add "$file"
    git commit -q -m "$app: promote to $new in prod"
    git push -q
done < "$changes"
