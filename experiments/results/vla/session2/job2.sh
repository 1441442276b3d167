for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit 1
export MUJOCO_GL=egl PYTHONUNBUFFERED=1
A=scratch/arch; C=scratch/ck2; T0=$(date +%s)
python3 experiments/checkpoints/make_default.py --collect 4000 --targets-per-layout 4 --workers 16 --archive $A --out $C --seeds 0 || exit 1
cp scratch/gpu/instructions.safetensors $A/
echo "collected at $(( $(date +%s) - T0 )) s"
G="--set image_keypoints=16 --set lang_film_all=true --set state_dropout=0.5"
run() { name=$1; shift; python3 experiments/checkpoints/make_default.py --archive $A --out $C/$name --seeds 0 --heads ar --device cuda --steps 6000 --batch-size 128 --eval-every 2000 --distill-steps 0 $G "$@" > $OUT/train_$name.log 2>&1 & }
run base --set aux_target_weight=1.0
run noise2 --set aux_target_weight=1.0 --set ar_input_noise=0.2
run noise4 --set aux_target_weight=1.0 --set ar_input_noise=0.4
run aux3 --set aux_target_weight=3.0
wait
echo "trained at $(( $(date +%s) - T0 )) s"
grep -h '"head"' $OUT/train_*.log | cut -c1-330
K=8 timeout 150 python3 scratch/gpu/check.py "[[\"$C/base/seed0/ar\",\"ar\"],[\"$C/noise2/seed0/ar\",\"ar\"],[\"$C/noise4/seed0/ar\",\"ar\"],[\"$C/aux3/seed0/ar\",\"ar\"]]" 48 $OUT/check_ar_variants.json 16 2>&1 | grep -A2 '"scratch' | grep -v fail
echo "done at $(( $(date +%s) - T0 )) s"
