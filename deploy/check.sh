#!/usr/bin/env bash
# Offline checks of the deploy/ specs: every YAML file parses, every JSON file parses, every Helm
# template has balanced {{ }} and block/end pairs, and (when kubectl is present) the kustomization
# builds. Needs python3 with PyYAML; no network, no cluster. Exits non-zero on the first kind of
# failure found, after reporting all files.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
fail=0

if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "check.sh: python3 with PyYAML is required (apt-get install python3-yaml, or pip install pyyaml)" >&2
  exit 2
fi

# Plain YAML (Helm templates are Go templates, not YAML: checked separately below).
while IFS= read -r -d '' f; do
  if python3 -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))' "$f"; then
    echo "ok    yaml  $f"
  else
    echo "FAIL  yaml  $f"; fail=1
  fi
done < <(find . -type f \( -name '*.yaml' -o -name '*.yml' \) -not -path '*/templates/*' -print0 | sort -z)

while IFS= read -r -d '' f; do
  if python3 -m json.tool "$f" >/dev/null; then
    echo "ok    json  $f"
  else
    echo "FAIL  json  $f"; fail=1
  fi
done < <(find . -type f -name '*.json' -print0 | sort -z)

# Helm templates: {{ and }} balance, and if/range/with/define open as many blocks as end closes.
while IFS= read -r -d '' f; do
  if python3 - "$f" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
if text.count("{{") != text.count("}}"):
    sys.exit("unbalanced {{ }}")
actions = re.findall(r"\{\{-?\s*(.*?)\s*-?\}\}", text, re.S)
depth = 0
for a in actions:
    word = a.split()[0] if a.split() else ""
    if word in ("if", "range", "with", "define", "block"):
        depth += 1
    elif word == "end":
        depth -= 1
        if depth < 0:
            sys.exit("'end' without an open block")
if depth != 0:
    sys.exit(f"{depth} block(s) not closed with 'end'")
PY
  then
    echo "ok    tmpl  $f"
  else
    echo "FAIL  tmpl  $f"; fail=1
  fi
done < <(find . -type f -path '*/templates/*' -print0 | sort -z)

if command -v kubectl >/dev/null 2>&1; then
  if kubectl kustomize kubernetes >/dev/null; then
    echo "ok    kustomize kubernetes/"
  else
    echo "FAIL  kustomize kubernetes/"; fail=1
  fi
fi

if (( fail )); then
  echo "check.sh: FAILED" >&2
  exit 1
fi
echo "check.sh: all deploy specs parse"
