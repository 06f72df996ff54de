#!/bin/bash
# $1 = agent|keepalived, $2 = output dir. Master in mpm, backup in mpb, 10 ms adverts.
set -u
arm=$1; out=$2; mkdir -p $out
AG=${AG:-/tmp/agent-9adb157}
if [ $arm = agent ]; then
  ip netns exec mpb $AG -l warn run -f /tmp/mprof/b.conf --name mprofb > $out/b.log 2>&1 &
  sleep 1
  ip netns exec mpm $AG -l warn run -f /tmp/mprof/m.conf --name mprofm > $out/m.log 2>&1 &
else
  ip netns exec mpb keepalived -n -l -D -P -f /tmp/mprof/b.conf -p /run/mprof-b.pid -r /run/mprof-b-vrrp.pid > $out/b.log 2>&1 &
  sleep 1
  ip netns exec mpm keepalived -n -l -D -P -f /tmp/mprof/m.conf -p /run/mprof-m.pid -r /run/mprof-m-vrrp.pid > $out/m.log 2>&1 &
fi
for i in $(seq 50); do ip -n mpm addr show dev eth0 | grep -q 192.0.2.230 && break; sleep 0.1; done
ip -n mpm addr show dev eth0 | grep -q 192.0.2.230 || { echo "no master"; }
sleep 2
# master process tree pids
if [ $arm = agent ]; then mp=$(pgrep -f -- "--name mprofm" | tr '\n' ','); else mp=$(pgrep -f "mprof/m.conf" | tr '\n' ','); fi
mp=${mp%,}; echo "master pids: $mp" > $out/pids
sum() { local t=0; for p in ${mp//,/ }; do for f in /proc/$p/task/*/schedstat; do read a b c < $f; t=$((t+a)); done; done; echo $t; }
s0=$(sum); t0=$(date +%s%N)
perf stat -e task-clock,context-switches,cpu-migrations,page-faults -p $mp -- sleep 10 2> $out/perfstat.txt
s1=$(sum); t1=$(date +%s%N)
echo "master CPU % of a core (schedstat): $(echo "scale=3; ($s1-$s0)*100/($t1-$t0)" | bc)" >> $out/pids
perf record -F 4999 -g -a -o $out/perf.data -- sleep 10 > /dev/null 2>&1
strace -c -f -p ${mp//,/ -p } -o $out/strace.txt &
sp=$!; sleep 5; kill -INT $sp; wait $sp 2>/dev/null
if [ $arm = agent ]; then pkill -f -- "--name mprofm"; sleep 0.5; pkill -f -- "--name mprofb"; else pkill -f "mprof/m.conf"; sleep 0.5; pkill -f "mprof/b.conf"; fi
sleep 1
