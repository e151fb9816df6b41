#!/bin/sh
# Downloads MovieLens latest-small from GroupLens into data/ml-latest-small and
# verifies every file against the checksums below (the same files the tests use).
# The MovieLens licence forbids redistribution: the data stays out of git
# (data/ is in .gitignore). Needs curl or wget, unzip and sha256sum.
set -eu
cd "$(dirname "$0")/.."
URL=https://files.grouplens.org/datasets/movielens/ml-latest-small.zip
mkdir -p data
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if command -v curl >/dev/null; then curl -fL -o "$tmp/ml.zip" "$URL"; else wget -O "$tmp/ml.zip" "$URL"; fi
unzip -q "$tmp/ml.zip" -d "$tmp"
cat > "$tmp/SHA256SUMS" <<'SUMS'
e165937702ae1fac9237b6bd377f03d027f7ef97175d4a04a203e8b12d5516ea  ml-latest-small/README.txt
97ad18e4e56a09363c65676b6cb3482ce3e2cea2372a24620c1599c843325f31  ml-latest-small/links.csv
5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07  ml-latest-small/movies.csv
aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646  ml-latest-small/ratings.csv
92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d  ml-latest-small/tags.csv
SUMS
(cd "$tmp" && sha256sum -c SHA256SUMS)
rm -rf data/ml-latest-small
mv "$tmp/ml-latest-small" data/ml-latest-small
echo "MovieLens latest-small is in data/ml-latest-small (checksums verified)"
