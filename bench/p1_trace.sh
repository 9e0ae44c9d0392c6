#!/bin/bash
# P1 diagnosis (not the reported figures): runs a short P1 without the peer, records every
# system call and scheduler event of the bench, the relay and the server with perf for 9 s,
# and prints the per-request timeline (bench/p1_timeline.py). Tracing slows every system
# call: compare the phases with each other, not with the bench's figures.
# usage: flock /work/.bench.lock bench/p1_trace.sh <bin-dir> <out-prefix> [extra bench args]
bindir=$1; out=$2; shift 2
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
target/release/codeflow-bench p1 --no-peer --warmup 300 --requests 3000 --pipelined 300 --window 30 --rounds 1 --bin-dir "$bindir" --out-dir "$out.bench" "$@" > $out.bench.log 2>&1 &
bench=$!
for i in $(seq 1 100); do
  relay=$(pgrep -P $bench -x codeflow-client); server=$(pgrep -P $bench -x codeflow-server)
  [ -n "$relay" ] && [ -n "$server" ] && break
  sleep 0.05
done
sleep 0.1
echo "bench=$bench relay=$relay server=$server" > $out.pids
perf record -q -o $out.data -e raw_syscalls:sys_enter,raw_syscalls:sys_exit,sched:sched_switch,sched:sched_wakeup -p $bench,$relay,$server -- sleep 9 2>/dev/null
wait $bench
perf script -i $out.data -F comm,pid,tid,cpu,time,event,trace 2>/dev/null > $out.txt
python3 "$here/p1_timeline.py" $bench $relay $server < $out.txt
