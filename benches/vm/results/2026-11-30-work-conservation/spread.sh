#!/bin/sh
# exploratory: worst per-CPU idle over 15 s windows, 10 hogs homed in dom0, rounds alternate
out=$1; new=$2; old=$3; rounds=$4
cd /tmp
. /work/main/tests/vm/lib.sh
cpus() { awk '$1 ~ /^cpu[0-9]/ { print $1, $2+$3+$4+$7+$8+$9, $5+$6 }' /proc/stat; }
phase() {
  name=$1; bin=$2; shift 2
  sp=""
  if [ -n "$bin" ]; then "$bin" --no-load-balance "$@" >"$out/$name.log" 2>&1 & sp=$!; wait_for_state enabled 120; fi
  p=""
  for _ in $(seq 10); do taskset -c 0-1 sh -c 'while :; do :; done' >/dev/null 2>&1 & p="$p $!"; done
  sleep 2; for x in $p; do taskset -pc 0-7 $x >/dev/null; done
  sleep 4
  cpus > "$out/s0"; sleep 15; cpus > "$out/s1"
  echo "$name $(paste $out/s0 $out/s1 | awk '{ b=$5-$2; i=$6-$3; v=100*i/(b+i); if (v>m) m=v; s=s sprintf("%.1f ", v) } END {printf "max %.1f | %s", m, s}')" >> "$out/spread.txt"
  kill $p; wait $p 2>/dev/null
  if [ -n "$sp" ]; then kill -INT $sp; wait $sp; wait_for_state disabled 60; fi
}
r=1
while [ $r -le $rounds ]; do
  phase eevdf ""
  phase old "$old"
  phase new2 "$new"
  phase new0 "$new" --xnode-steal-min 0
  r=$((r+1))
done
