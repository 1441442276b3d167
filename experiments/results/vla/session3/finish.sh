export PYTHONPATH=/tmp/site:$PWD MUJOCO_GL=egl PYTHONUNBUFFERED=1
D=$(( $(date +%s) + ${1:-540} )); C=scratch/ck3
while [ $(date +%s) -lt $(( D - 200 )) ] && ! grep -q "distillation done" scratch/train_ar.log; do sleep 5; done
bash scratch/gpu/poll.sh 1 | head -3; grep -h '"distill"\|done in' scratch/train_*.log | cut -c1-600
pack() { tar czf $OUT/$1.tgz --exclude=train_state.safetensors --exclude='*traj*' "${@:2}"; }
pack s0 $C/seed0; pack s1 $C/seed1; pack s2 $C/seed2; cp scratch/train_*.log $OUT/; ls -la $OUT
mkdir -p scratch/shipset && cp -r experiments/checkpoints/TabletopPickPlace-v0/seed0/* scratch/shipset/ && cp -r $C/seed0/ar $C/seed0/cjacobi scratch/shipset/
L=$(( D - $(date +%s) )); echo "bench budget $L s"
[ $L -gt 30 ] && timeout $L python3 scratch/gpu/bench.py scratch/shipset $OUT/bench_vla_h100_eager_session3.json 2>&1 | tail -n 5
ls -la $OUT
