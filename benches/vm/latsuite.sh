#!/bin/sh
# The workload set of scripts/bench-vm --latency (2-vCPU guest, shape 1n2l):
# wake-to-run latency of a periodic task under hogs (wakelat.sh), then a
# game's frame loop under hogs (frames.sh). Prints their "metric" lines.
here=$(dirname "$(realpath "$0")")
sh "$here/wakelat.sh" "${LAT_LOOPS:-3000}"
sh "$here/frames.sh" "${FRAME_SECS:-10}"
