# Distillation selection for the students of the input-noise-0.8 AR heads, on env seeds 7000..
# (disjoint from compare's 1000+100000*s+i, held-out +50000): the session-3 recipe (1,500 steps,
# scratch/ckn8), 3,000 steps (scratch/ckn8b), and 1,500 steps keeping the teacher's input noise and
# image shift (scratch/ckn8c: DistillConfig keep_input_noise, augment_shift). The AR rows are
# session 4's (scratch/sel/ckn8-s*). VARIANTS="ckn8c" runs one variant.
for v in ${VARIANTS:-ckn8 ckn8b ckn8c}; do for s in 0 1 2; do
  .venv/bin/robodecode eval --policy scratch/$v/seed$s/cjacobi --decoder cjacobi+ee --episodes 100 --seed 7000 --workers 2 --k 8 --out scratch/sel/cj-$v-s$s > scratch/sel/cj-$v-s$s.log 2>&1
  python3 -c "import json;d=json.load(open('scratch/sel/cj-$v-s$s/eval_info.json'));a=d.get('aggregated',d);print('$v s$s', a['pc_success'], a.get('nfe_per_chunk'))"
done; done
# the shipped recipe's students without early exit (Jacobi to the fixed point), same seeds:
for s in 0 1 2; do
  .venv/bin/robodecode eval --policy scratch/ckn8/seed$s/cjacobi --decoder cjacobi --episodes 100 --seed 7000 --workers 2 --k 8 --out scratch/sel/cjx-ckn8-s$s > scratch/sel/cjx-ckn8-s$s.log 2>&1
done
# the same students mixed 0.5 with their teachers (python experiments/results/vla/session5/wise.py 0.5):
for s in 0 1 2; do
  .venv/bin/robodecode eval --policy scratch/ckw0.5/seed$s/cjacobi --decoder cjacobi+ee --episodes 100 --seed 7000 --workers 2 --k 8 --out scratch/sel/cj-ckw0.5-s$s > scratch/sel/cj-ckw0.5-s$s.log 2>&1
done
# after the choice: the curve around it (python experiments/results/vla/session5/wise.py 0.75 / 0.25):
for a in 0.75 0.25; do for s in 0 1 2; do
  .venv/bin/robodecode eval --policy scratch/ckw$a/seed$s/cjacobi --decoder cjacobi+ee --episodes 100 --seed 7000 --workers 2 --k 8 --out scratch/sel/cj-ckw$a-s$s > scratch/sel/cj-ckw$a-s$s.log 2>&1
done; done
