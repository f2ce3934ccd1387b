#!/usr/bin/env bash
# The whole study on real Fashion-MNIST, as one script: the jobs that do not depend on each other
# run in parallel (one GPU is shared by several processes; the joblib launcher runs sweep jobs
# side by side). Every stage writes its own run or sweep directory under $QBN_OUTPUT_DIR.
#
#   experiments/run_study.sh                       # on a GPU machine (trainer=gpu)
#   SMOKE=1 experiments/run_study.sh               # a rehearsal on the CPU: digits, 2 epochs
#
# Stages (the claims of docs/study.md):
#   trunk      resnet20 BWN (xnor, Adam 2e-3, cosine), 15 epochs, seed 0: claim 2's trunk and claim 3/4's BWN
#   fp         the same recipe in full precision (binary=fp), 15 epochs: the QBN figure's reference line
#   signs      experiment=sign_stability, 30 epochs (claim 2: E_q, d_e, per-layer freeze)
#   scaling    none / xnor / learnable / lq, 8 epochs, seed 0, plus fp (Adam) and xnor with SGD: the
#              8-epoch reference recipe of docs/study.md (claim 1, and where qbn lands against its figures)
#   rewind     after trunk: K in {0,1,3,5} + random + final, seeds 0,1 (claim 2, primary sub-networks):
#              python -m qbn.rewind --reuse-trunk, i.e. the rewound half of the one-command sweep
#   qbn        after trunk: n in {8,6,5,4,3}, seeds 0,1, 5 fine-tuning epochs (claims 3-4)
set -u
PY=${PYTHON:-python3}
export QBN_OUTPUT_DIR=${QBN_OUTPUT_DIR:-outputs/study}
REWIND_JOBS=${REWIND_JOBS:-12}
QBN_JOBS=${QBN_JOBS:-5}
if [[ ${SMOKE:-0} == 1 ]]; then
  base=(trainer=cpu dataset=digits callbacks.progress=null trainer.enable_model_summary=false)
  E15=2 E30=2 E8=1 EFT=1 launcher=()
else
  base=(trainer=gpu callbacks.progress=null trainer.enable_model_summary=false)
  E15=15 E30=30 E8=8 EFT=5 launcher=(hydra/launcher=joblib)
fi
out=$QBN_OUTPUT_DIR
mkdir -p "$out/logs"
log() { echo "[$(date +%H:%M:%S)] $*"; }
run() { local name=$1; shift; log "start $name"; "$PY" -m qbn.train "$@" > "$out/logs/$name.log" 2>&1; log "end $name (exit $?)"; }

trunk_dir=$out/primary_subnet_trunk/run
(
  run trunk experiment=primary_subnet rewind=trunk name=primary_subnet_trunk "${base[@]}" trainer.max_epochs=$E15 \
      hydra.run.dir="$trunk_dir"
  log "start rewind"
  "$PY" -m qbn.rewind --reuse-trunk --trunk-name primary_subnet_trunk "${base[@]}" trainer.max_epochs=$E15 \
      -- 'rewind.signs=epoch:0,epoch:1,epoch:3,epoch:5,random,final' seed=0,1 \
      "${launcher[@]}" ${launcher:+hydra.launcher.n_jobs=$REWIND_JOBS} > "$out/logs/rewind.log" 2>&1 &
  run qbn experiment=qbn_sweep qbn.from_ckpt="$trunk_dir" qbn.fp_reference="$out/fp/run" qbn.bits=8,6,5,4,3 seed=0,1 \
      "${base[@]}" trainer.max_epochs=$EFT "${launcher[@]}" ${launcher:+hydra.launcher.n_jobs=$QBN_JOBS} \
      hydra.sweep.dir="$out/qbn/sweep" &
  wait
) &
run fp name=fp binary=fp "${base[@]}" trainer.max_epochs=$E15 hydra.run.dir="$out/fp/run" &
run signs experiment=sign_stability "${base[@]}" trainer.max_epochs=$E30 hydra.run.dir="$out/sign_stability/run" &
run scaling -m name=scaling scaling=none,xnor,learnable,lq "${base[@]}" trainer.max_epochs=$E8 \
    "${launcher[@]}" ${launcher:+hydra.launcher.n_jobs=4} hydra.sweep.dir="$out/scaling/sweep" &
run fp8 name=scaling_fp binary=fp "${base[@]}" trainer.max_epochs=$E8 hydra.run.dir="$out/scaling/fp" &
run sgd8 name=scaling_sgd optimizer=sgd "${base[@]}" trainer.max_epochs=$E8 hydra.run.dir="$out/scaling/sgd" &
wait
log "all stages ended"
# the QBN view reads the fp reference, which may have finished after the QBN sweep: aggregate again
for sweep in "$out"/primary_subnet/multirun_* "$out"/qbn/sweep "$out"/scaling/sweep; do
  [[ -d $sweep ]] && "$PY" -m qbn.aggregate "$sweep" > /dev/null 2>&1
done
log "aggregated"
