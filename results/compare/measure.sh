#!/bin/sh
# Records the tables of results/compare.md. Run from the repository root on an
# otherwise idle machine: sh results/compare/measure.sh (about 4 min).
set -u
out=results/compare
go build -o /tmp/sockbench ./cmd/sockbench || exit 1
sb=/tmp/sockbench
# Two recorded runs of the same build against the embedded server, five
# repetitions each, then compare with limits.
for side in base new; do
	$sb run echo --duration 5s --warmup 1s --count 6 --progress off --out $out/$side.json > $out/$side.txt 2>&1
done
$sb compare $out/base.json $out/new.json --fail-on 'p99:+25%,throughput:-5%' \
	--junit $out/compare.junit.xml --summary-md $out/compare.md.txt > $out/compare.txt 2>&1
echo "exit code: $?" >> $out/compare.txt
# The same echo workload over TCP and UDP, six repetitions each (benchstat gives a confidence interval from six), interleaved.
$sb run tcp-vs-udp --duration 5s --warmup 1s --count 6 --progress off --out $out/tcp-vs-udp.json > $out/tcp-vs-udp.txt 2>&1
echo "exit code: $?" >> $out/tcp-vs-udp.txt
