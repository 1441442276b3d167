# session 4 (x2 box): GPU0 MetaWorld DoorOpen seed 0 (4 heads + distil, then eager timing);
# GPU1 tabletop AR input-noise 0.6 and 0.8, seeds 0-2, + distil. carry [.whl .gl .mw scratch/gpu]
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD/.mw:$PWD || exit 1
export MUJOCO_GL=egl PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader; nproc
date +%s > scratch/T0
M=experiments/checkpoints/make_default.py
G="--set image_keypoints=16 --set lang_film_all=true --set state_dropout=0.5 --set aux_target_weight=1.0"
S="--device cuda --steps 12000 --batch-size 128 --eval-every 1000"
D="--distill-steps 1500 --n-trajectories 4096"
mw() {
  python3 $M --collect 1000 --env robodecode/MetaWorld-DoorOpen-v0 --workers 12 --archive scratch/mwarch --out scratch/mwck --seeds 0 || return 1
  cp scratch/gpu/instructions_mw.safetensors scratch/mwarch/instructions.safetensors
  echo "mw collected at $(( $(date +%s) - $(cat scratch/T0) )) s"
  export CUDA_VISIBLE_DEVICES=0
  python3 $M --archive scratch/mwarch --out scratch/mwck --seeds 0 --heads ar $S $D $G --set ar_input_noise=0.4 > scratch/train_mwar.log 2>&1 &
  python3 $M --archive scratch/mwarch --out scratch/mwck --seeds 0 --heads diffusion flow oft $S --distill-steps 0 $G > scratch/train_mwdfo.log 2>&1 &
  wait
  echo "mw trained at $(( $(date +%s) - $(cat scratch/T0) )) s"
  python3 -c "
from experiments.compare import CompareConfig, write_gpu_timing
write_gpu_timing(CompareConfig(env_id='robodecode/MetaWorld-DoorOpen-v0', checkpoints='scratch/mwck', out='scratch/mwtiming', command='robodecode compare --gpu-timing --env robodecode/MetaWorld-DoorOpen-v0 --checkpoints scratch/mwck'))"
  echo "mw timed at $(( $(date +%s) - $(cat scratch/T0) )) s"
}
tt() {
  python3 $M --collect 4000 --targets-per-layout 4 --workers 20 --archive scratch/arch --out scratch/ckn6 --seeds 0 1 2 || return 1
  cp scratch/gpu/instructions.safetensors scratch/arch/
  echo "tt collected at $(( $(date +%s) - $(cat scratch/T0) )) s"
  export CUDA_VISIBLE_DEVICES=1
  for n in 6 8; do
    python3 $M --archive scratch/arch --out scratch/ckn$n --seeds 0 1 2 --heads ar $S $D $G --set ar_input_noise=0.$n > scratch/train_n$n.log 2>&1 &
  done
  wait
  echo "tt trained at $(( $(date +%s) - $(cat scratch/T0) )) s"
}
setsid nohup bash -c "$(declare -f mw); M=$M G='$G' S='$S' D='$D'; mw" > scratch/pipe_mw.log 2>&1 &
setsid nohup bash -c "$(declare -f tt); M=$M G='$G' S='$S' D='$D'; tt" > scratch/pipe_tt.log 2>&1 &
sleep 5; echo launched
