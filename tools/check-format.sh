#!/usr/bin/env bash
# check-format.sh CLANG_FORMAT SOURCE_ROOT
#
# Runs clang-format in check mode over every C++ source and header that
# spindle owns (include/ lib/ tests/ bench/ samples/) and fails if any file
# differs from .clang-format. It never rewrites files: to fix a failure run
#   clang-format -i <file>...
# yourself. Symlinks are not followed, so tests/consumer/subprojects/spindle
# (a link back to the root) is not walked twice.
set -euo pipefail

clang_format=$1
root=$2
cd "$root"

dirs=()
for d in include lib tests bench samples; do
  [[ -d $d ]] && dirs+=("$d")
done
if ((${#dirs[@]} == 0)); then
  echo "check-format: no source folders under $root"
  exit 77
fi

mapfile -d '' files < <(find "${dirs[@]}" -type f \( -name '*.hpp' -o -name '*.cpp' \) -print0 | sort -z)
if ((${#files[@]} == 0)); then
  echo "check-format: no *.hpp/*.cpp files yet"
  exit 77
fi

echo "check-format: $("$clang_format" --version)"
echo "check-format: checking ${#files[@]} files"
if "$clang_format" --dry-run --Werror --style=file "${files[@]}"; then
  echo "check-format: all files formatted"
  exit 0
fi

unformatted=()
for f in "${files[@]}"; do
  if ! "$clang_format" --dry-run --Werror --style=file "$f" 2>/dev/null; then
    unformatted+=("$f")
  fi
done
echo "check-format: ${#unformatted[@]} files need formatting; fix them with:"
echo "  clang-format -i ${unformatted[*]}"
exit 1
