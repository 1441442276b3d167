# wait for the three distillations (up to $1 s), pack the students, time the new seed-0 set
export PYTHONPATH=/tmp/site:$PWD MUJOCO_GL=egl PYTHONUNBUFFERED=1
D=$(( $(date +%s) + ${1:-540} ))
done3() { [ $(grep -l '"distill"' scratch/train_d8_*.log 2>/dev/null | wc -l) -ge 3 ]; }
while [ $(date +%s) -lt $(( D - 150 )) ] && ! done3; do sleep 5; done
bash experiments/results/vla/session5/poll4.sh 1 /dev/null x
tar czf $OUT/d8.tgz --exclude=train_state.safetensors --exclude='*traj*' scratch/ckn8/seed*/cjacobi scratch/train_d8_*.log scratch/collect_tt.log
ls -la $OUT
done3 || { echo "not all distillations done"; exit 3; }
mkdir -p scratch/ck4/seed0 && cp -r experiments/checkpoints/TabletopPickPlace-v0/seed0/{diffusion,flow,oft} scratch/ck4/seed0/ \
  && cp -r scratch/ckn8/seed0/ar scratch/ckn8/seed0/cjacobi scratch/ck4/seed0/
L=$(( D - $(date +%s) )); echo "timing budget $L s"
timeout $L python3 -c "from experiments.compare import CompareConfig, write_gpu_timing; write_gpu_timing(CompareConfig(checkpoints='scratch/ck4', out='$OUT', command='robodecode compare --gpu-timing --checkpoints scratch/ck4'))" 2>&1 | tail -n 15
ls -la $OUT
