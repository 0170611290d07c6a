#!/usr/bin/env bash
# Public items of the protocol code (pub, not pub(crate|super|in)), outside #[cfg(test)] tails.
# Usage: count-pub.sh [dir...]   (default: shared-protocol)
R='^\s*pub (async fn|fn|struct|enum|const|static|type|trait|mod|use|unsafe fn|macro)\b'
for f in $(find "${@:-shared-protocol}" -name '*.rs' -not -path '*/target/*' -not -path '*/tests/*' -not -path '*/benches/*' -not -name tests.rs); do
  awk '/#\[cfg\(test\)\]/{exit} {print}' "$f"
done | grep -cE "$R"
