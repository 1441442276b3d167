# AR input-noise selection on env seeds 7000.. (disjoint from compare's 1000+100000*s+i, held-out +50000)
for v in ck3 ckn6 ckn8; do for s in 0 1 2; do
  .venv/bin/robodecode eval --policy scratch/$v/seed$s/ar --decoder ar --episodes 100 --seed 7000 --workers 2 --k 8 --out scratch/sel/$v-s$s > scratch/sel/$v-s$s.log 2>&1
  python3 -c "import json;d=json.load(open('scratch/sel/$v-s$s/eval_info.json'));print('$v s$s', d['aggregated']['pc_success'] if 'aggregated' in d else d.get('pc_success'))"
done; done
