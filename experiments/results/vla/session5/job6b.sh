# session 5, same lease as job6.sh (the archive was still on the box): the 3,000-step variant of
# the distillation into scratch/ckn8b (selection only, not shipped). One call, foreground.
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1; M=experiments/checkpoints/make_default.py
for s in 0 1 2; do
  mkdir -p scratch/ckn8b/seed$s && cp -r scratch/ckn8/seed$s/ar scratch/ckn8b/seed$s/
  CUDA_VISIBLE_DEVICES=$(( s % 2 )) python3 $M --archive scratch/arch --out scratch/ckn8b --seeds $s --device cuda --batch-size 128 --distill-steps 3000 --n-trajectories 4096 --job distill:$s > scratch/train_d8b_$s.log 2>&1 &
done; wait
grep -h '"distill"' scratch/train_d8b_*.log | cut -c1-400
tar czf $OUT/d8b.tgz --exclude=train_state.safetensors --exclude='*traj*' scratch/ckn8b/seed*/cjacobi scratch/train_d8b_*.log
