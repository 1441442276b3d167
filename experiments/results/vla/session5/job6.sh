# session 5: collect the tabletop archive (foreground), then distil the AR input-noise-0.8 heads
# (scratch/ckn8, seeds 0-2) with the shipped recipe, spread over the box's GPUs (background).
# carry [.whl .gl scratch/gpu scratch/ckn8]
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit 1
export MUJOCO_GL=egl PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader; nproc; date +%s > scratch/T0
NG=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
M=experiments/checkpoints/make_default.py
python3 $M --collect 4000 --targets-per-layout 4 --workers $(nproc) --archive scratch/arch --out scratch/ckn8 --seeds 0 1 2 > scratch/collect_tt.log 2>&1 || { tail -5 scratch/collect_tt.log; exit 1; }
tail -1 scratch/collect_tt.log; cp scratch/gpu/instructions.safetensors scratch/arch/
echo "collected at t=$(( $(date +%s) - $(cat scratch/T0) )) s"
for s in 0 1 2; do
  CUDA_VISIBLE_DEVICES=$(( s % NG )) setsid nohup python3 $M --archive scratch/arch --out scratch/ckn8 --seeds $s --device cuda --batch-size 128 --distill-steps 1500 --n-trajectories 4096 --job distill:$s > scratch/train_d8_$s.log 2>&1 &
done
sleep 20; echo launched; bash experiments/results/vla/session5/poll4.sh 1 /dev/null x
