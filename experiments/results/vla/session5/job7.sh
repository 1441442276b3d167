# session 5, second lease: distil the input-noise-0.8 AR heads again with the teacher's regularizers
# kept (DistillConfig keep_input_noise + augment_shift=4) into scratch/ckn8c, one call. (The run used
# a working tree where those were DistillConfig's defaults; with today's defaults the flags below say it.)
# carry [.whl .gl scratch/gpu scratch/ckn8]
T0=$(date +%s); t() { echo "t=$(( $(date +%s) - T0 )) s: $*"; }
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit 1
export MUJOCO_GL=egl PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader | head -1; nproc
NG=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
M=experiments/checkpoints/make_default.py
python3 $M --collect 4000 --targets-per-layout 4 --workers $(nproc) --archive scratch/arch --out scratch/ckn8 --seeds 0 1 2 > scratch/collect_tt.log 2>&1 || { tail -5 scratch/collect_tt.log; exit 1; }
tail -1 scratch/collect_tt.log; cp scratch/gpu/instructions.safetensors scratch/arch/; t collected
for s in 0 1 2; do
  mkdir -p scratch/ckn8c/seed$s && cp -r scratch/ckn8/seed$s/ar scratch/ckn8c/seed$s/
  CUDA_VISIBLE_DEVICES=$(( s % NG )) timeout $(( 560 - $(date +%s) + T0 )) python3 $M --archive scratch/arch --out scratch/ckn8c --seeds $s --device cuda --batch-size 128 --distill-steps 1500 --n-trajectories 4096 --distill-keep-input-noise --distill-augment-shift 4 --job distill:$s > scratch/train_d8c_$s.log 2>&1 &
done
wait; t distilled; grep -h '"distill"' scratch/train_d8c_*.log | cut -c1-300
tar czf $OUT/d8c.tgz --exclude=train_state.safetensors --exclude='*traj*' scratch/ckn8c/seed*/cjacobi scratch/train_d8c_*.log
mkdir -p scratch/ck5/seed0 && cp -r experiments/checkpoints/TabletopPickPlace-v0/seed0/{ar,diffusion,flow,oft} scratch/ck5/seed0/ && cp -r scratch/ckn8c/seed0/cjacobi scratch/ck5/seed0/ && \
timeout $(( 590 - $(date +%s) + T0 )) python3 -c "from experiments.compare import CompareConfig, write_gpu_timing; write_gpu_timing(CompareConfig(checkpoints='scratch/ck5', out='$OUT', command='robodecode compare --gpu-timing --checkpoints scratch/ck5'))" 2>&1 | tail -n 3
t done; ls -la $OUT
