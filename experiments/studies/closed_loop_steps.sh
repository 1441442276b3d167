#!/usr/bin/env bash
# Usage: DEVICE=cuda WORKERS=14 bash experiments/studies/closed_loop_steps.sh WORK RESULTS
#
# Issue 17's closed-loop evaluation in one run: step-level demos of TabletopRearrange-v0 ->
# the shipped ar and flow models fine-tuned on them -> a cjacobi student distilled from the
# fine-tuned ar (the shipped student's recipe) -> the checkpoint set WORK/steps/{ar,cjacobi,
# flow,oft} (oft: the earlier fine-tune, experiments/checkpoints/TabletopRearrange-v0/oft-steps)
# -> every condition over the same TASKS task seeds per split, in RESULTS/<split>_<condition>.
# Idle cores evaluate what is ready while the GPU trains. Conditions left unfinished at the
# time budget (BUDGET s from the start, tasks in flight still finish) resume when the last
# grid command is run again. Tiny check: EPISODES=4 STEPS=3 TASKS=2 TINY=1 WORKERS=2.
set -u
WORK=$1 RES=$2
PY=${PY:-python3} DEVICE=${DEVICE:-cpu} WORKERS=${WORKERS:-2} TASKS=${TASKS:-100}
EPISODES=${EPISODES:-200} STEPS=${STEPS:-1500} BUDGET=${BUDGET:-480}
SEED0=experiments/checkpoints/TabletopPickPlace-v0/seed0
DISTILL=(--steps "$STEPS" --batch-size 128 --n-trajectories 4096 --n-eval 256 --eval-every 250)
if [ "${TINY:-0}" = 1 ]; then DISTILL=(--steps 2 --batch-size 8 --n-trajectories 16 --n-eval 8 --eval-every 2); fi
CK=$WORK/steps
mkdir -p "$WORK" "$RES" "$CK"
log() { echo "[$SECONDS s] $*"; }
GRID=($PY -m experiments.studies.closed_loop_grid run --root "$RES" --tasks "$TASKS" --no-progress)
cond() {  # the conditions of one skill: cond SKILL DECODER NAME PLANNER...
  local skill=$1 dec=$2 name=$3; shift 3
  for split in train heldout; do for p in "$@"; do
    echo "--condition ${split}_$p-$name:$split:$p:$skill:$dec"; done; done
}
stop() { kill -TERM "$1" 2>/dev/null; wait "$1" 2>/dev/null; }

log collect
$PY -m experiments.cli collect --env robodecode/TabletopRearrange-v0 --episodes "$EPISODES" \
  --noise 0.1 --env-kwargs '{"step_instructions": true}' --workers "$WORKERS" --seed 500000 \
  --out "$WORK/rearrange_steps" > "$WORK/collect.log" 2>&1
for head in ar flow; do
  $PY -m experiments.studies.finetune_steps --data "$WORK/rearrange_steps" --base "$SEED0/$head" \
    --out "$CK/$head" --steps "$STEPS" --device "$DEVICE" --no-progress > "$WORK/ft_$head.log" 2>&1 &
  eval "FT_$head=\$!"
done
cp -r experiments/checkpoints/TabletopRearrange-v0/oft-steps "$CK/oft"
log "fine-tuning ar ($FT_ar) and flow ($FT_flow); meanwhile the expert and oft conditions"
"${GRID[@]}" --workers $((WORKERS - 2 > 0 ? WORKERS - 2 : 1)) \
  --condition train_grounded-expert:train:grounded:expert \
  --condition heldout_grounded-expert:heldout:grounded:expert \
  $(cond "$CK" oft oft oracle grounded free) > "$WORK/grid1.log" 2>&1 &
G=$!
wait "$FT_ar"; log "ar done: $(tail -c 300 "$WORK/ft_ar.log" | tr '\n' ' ')"
$PY -m experiments.cli distill --teacher "$CK/ar" --data "$WORK/rearrange_steps" \
  --out "$CK/cjacobi" "${DISTILL[@]}" --teacher-mix 0.5 --device "$DEVICE" --no-progress \
  > "$WORK/distill.log" 2>&1 &
D=$!
wait "$FT_flow"; log "flow done: $(tail -c 300 "$WORK/ft_flow.log" | tr '\n' ' ')"
stop "$G"
log "distilling ($D); meanwhile the ar and flow conditions"
"${GRID[@]}" --workers $((WORKERS > 1 ? WORKERS - 1 : 1)) $(cond "$CK" ar ar oracle grounded) \
  $(cond "$CK" "flow@2" flow2 oracle grounded) > "$WORK/grid2.log" 2>&1 &
G=$!
wait "$D"; log "distill done: $(grep -A3 student_sweep "$WORK/distill.log" | tr '\n' ' ')"
stop "$G"
rm -f "$CK"/*/train_state.safetensors "$CK"/*/trajectories.safetensors
log "every condition, until the budget"
LEFT=$((BUDGET - SECONDS - 40)); [ "$LEFT" -lt 10 ] && LEFT=10
"${GRID[@]}" --workers "$WORKERS" --deadline-s "$LEFT" \
  --condition train_grounded-expert:train:grounded:expert \
  --condition heldout_grounded-expert:heldout:grounded:expert \
  $(cond "$CK" ar ar oracle grounded) $(cond "$CK" "flow@2" flow2 oracle grounded) \
  $(cond "$CK" "cjacobi+ee" cjacobi-ee oracle grounded free) > "$WORK/grid3.log" 2>&1
"${GRID[@]}" --deadline-s 0 $(cond "$CK" oft oft oracle grounded free) > "$WORK/grid4.log" 2>&1
log "finished: $(tail -n 20 "$WORK/grid3.log" | tr '\n' ' ')"
