# session 3: tabletop AR (input noise) seeds 0-2 + distill; diffusion/flow/oft seeds 1-2; then eager bench
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit 1
export MUJOCO_GL=egl PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv
A=scratch/arch; C=scratch/ck3; T0=$(date +%s)
python3 experiments/checkpoints/make_default.py --collect 4000 --targets-per-layout 4 --workers 16 --archive $A --out $C --seeds 0 1 2 || exit 1
cp scratch/gpu/instructions.safetensors $A/
echo "collected at $(( $(date +%s) - T0 )) s"
G="--set image_keypoints=16 --set lang_film_all=true --set state_dropout=0.5 --set aux_target_weight=1.0"
S="--device cuda --steps 12000 --batch-size 128 --eval-every 1000"
setsid nohup python3 experiments/checkpoints/make_default.py --archive $A --out $C --seeds 0 1 2 --heads ar $S --distill-steps 1500 --n-trajectories 4096 $G --set ar_input_noise=0.4 > scratch/train_ar.log 2>&1 &
setsid nohup python3 experiments/checkpoints/make_default.py --archive $A --out $C --seeds 1 2 --heads diffusion flow oft $S --distill-steps 0 $G > scratch/train_dfo.log 2>&1 &
echo $T0 > scratch/T0
