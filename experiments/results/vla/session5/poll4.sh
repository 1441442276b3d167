# poll: sleep up to $1 s or until file $2 contains $3; print progress
export PYTHONPATH=/tmp/site:$PWD/.mw:$PWD
T0=$(cat scratch/T0); end=$(( $(date +%s) + ${1:-500} ))
while [ $(date +%s) -lt $end ]; do grep -q "${3:-NEVER}" ${2:-/dev/null} 2>/dev/null && break; sleep 10; done
echo "t=$(( $(date +%s) - T0 )) s"; cat scratch/pipe_*.log | grep -v "^\s*$" | tail -n 12 | cut -c1-300
grep -h '"head"\|"distill"\|done in\|Error\|Traceback' scratch/train_*.log 2>/dev/null | cut -c1-300 | tail -n 20
for f in scratch/train_*.log; do echo "$f: $(tail -c 300 $f | tr '\r' '\n' | tail -n 1)"; done
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; uptime
