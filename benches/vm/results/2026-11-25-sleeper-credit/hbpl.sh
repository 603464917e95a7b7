sh /tmp/hbw/hb8.sh
for k in 1 2 3; do sh /work/main/benches/vm/pipeline.sh 10000 | sed "s/pipeline_s/pl$k/"; done
