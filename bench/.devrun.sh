ldd build/bin/cuvisor-vgpu | grep -q "not found" && export LD_LIBRARY_PATH=$PWD/build/deps
export TMPDIR=$OUT/t; mkdir -p $TMPDIR
OPS_MIB=1024 timeout 200 bash tests/run.sh --backend cuda --only ckpt --keep > $OUT/ckpt.log 2>&1
echo "ckpt rc=$?" >> $OUT/ckpt.log
pkill -KILL -f cuvisor-vgpu; pkill -KILL -f cuvisord; pkill -KILL -f cu_pagecount
tar czf $OUT/logs.tgz -C $TMPDIR . 2>/dev/null; rm -rf $TMPDIR
timeout 170 bash bench/ops_run.sh 1024 8192 > $OUT/bench.log 2>&1
echo "bench rc=$?" >> $OUT/bench.log
