#!/usr/bin/env bash
# Claim 2 in one command: train the trunk, then the rewound runs and controls as one multirun
# (experiment=primary_subnet), which finds the trunk by name and aggregates itself at its end
# (results.md, results.csv, figures/rewind.png in the multirun directory).
#
#   experiments/primary_subnet.sh [OVERRIDES FOR BOTH STEPS ...] [-- OVERRIDES FOR THE SWEEP ONLY ...]
#   experiments/primary_subnet.sh trainer=gpu -- 'rewind.signs=epoch:0,epoch:2,random,final' seed=0,1,2
#
# Each call trains a new trunk; TRUNK=reuse reuses the newest completed one (same overrides!).
# PYTHON (default: python) is the interpreter.
set -euo pipefail
PY=${PYTHON:-python}
common=() sweep=()
while (($#)); do
  if [[ $1 == -- ]]; then shift; sweep=("$@"); break; fi
  common+=("$1"); shift
done
trunk_name=primary_subnet_trunk
for a in "${common[@]}"; do [[ $a == name=* ]] && { echo "qbn: give the trunk's name as TRUNK_NAME=..., not name=" >&2; exit 2; }; done
trunk_name=${TRUNK_NAME:-$trunk_name}
out=${QBN_OUTPUT_DIR:-outputs}
if [[ ${TRUNK:-new} != reuse ]] || ! grep -qs '"status": "completed"' "$out/$trunk_name"/*/summary.json; then
  "$PY" -m qbn.train experiment=primary_subnet rewind=trunk name="$trunk_name" "${common[@]}"
else
  echo "primary_subnet: reusing the completed trunk under $out/$trunk_name "
fi
"$PY" -m qbn.train -m experiment=primary_subnet rewind=rewound rewind.trunk="$trunk_name" "${common[@]}" "${sweep[@]}"
