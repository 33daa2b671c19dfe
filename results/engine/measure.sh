#!/bin/sh
# Records the figures of results/engine.md. Run from the repository root on
# an otherwise idle machine:  sh results/engine/measure.sh [SECTION...]
# Sections: hold connect throughput floor steady (default: all, about 9 min).
# Needs sockperf (apt-get install sockperf). Writes results/engine/*.txt.
set -u
out=results/engine
go build -o /tmp/sockbench ./cmd/sockbench || exit 1
sb=/tmp/sockbench
rss() { awk '/VmRSS/ {print $2}' /proc/$1/status; }  # KiB

hold() {
# 1. Hold: server and client in separate processes.
$sb serve --ws 127.0.0.1:18080 > $out/hold-server.txt 2>&1 &
srv=$!
sleep 1
echo "server idle VmRSS KiB: $(rss $srv)" > $out/hold.txt
$sb run idle --conns 19000 --connect-rate 5000 --duration 60s --target ws://127.0.0.1:18080/ \
	--out $out/hold.json >> $out/hold.txt 2>&1 &
cli=$!
sleep 40
echo "server VmRSS KiB during the hold (19,000 conns): $(rss $srv)" >> $out/hold.txt
wait $cli
echo "client exit code: $?" >> $out/hold.txt
kill -INT $srv; wait $srv
sleep 65 # let TIME_WAIT sockets clear
}

connect() {
# 5. Connect rate: 19,000 WebSocket handshakes at 12,000/s.
$sb serve --ws 127.0.0.1:18080 > /dev/null 2>&1 &
srv=$!
sleep 1
$sb run idle --conns 19000 --connect-rate 12000 --warmup 1s --duration 3s --target ws://127.0.0.1:18080/ \
	--out $out/connect.json > $out/connect.txt 2>&1
kill -INT $srv; wait $srv
sleep 65
}

throughput() {
# 2. Throughput: both engines against one server process, alternating.
$sb serve --ws 127.0.0.1:18080 > /dev/null 2>&1 &
srv=$!
sleep 1
: > $out/throughput.txt
for i in 1 2 3 4 5; do
	for e in epoll goroutine; do
		echo "== run $i, --engine $e" >> $out/throughput.txt
		$sb run throughput --engine $e --warmup 1s --duration 5s --quiet --target ws://127.0.0.1:18080/ \
			--out $out/throughput-$e-$i.json >> $out/throughput.txt 2>&1
	done
done
kill -INT $srv; wait $srv
}

floor() {
# 3. Latency floor: sockperf ping-pong and sockbench ping against their own servers.
sockperf sr --tcp -i 127.0.0.1 -p 11111 > /dev/null 2>&1 &
sp1=$!
sockperf sr -i 127.0.0.1 -p 11112 > /dev/null 2>&1 &
sp2=$!
$sb serve --tcp 127.0.0.1:19000 --udp 127.0.0.1:19001 > /dev/null 2>&1 &
srv=$!
sleep 1
: > $out/floor.txt
for i in 1 2 3; do
	echo "== run $i: sockperf tcp" >> $out/floor.txt
	sockperf pp --tcp -i 127.0.0.1 -p 11111 -m 64 -t 10 --full-rtt >> $out/floor.txt 2>&1
	echo "== run $i: sockbench ping-tcp" >> $out/floor.txt
	$sb run ping-tcp --quiet --target tcp://127.0.0.1:19000 --out $out/floor-tcp-$i.json >> $out/floor.txt 2>&1
	echo "== run $i: sockperf udp" >> $out/floor.txt
	sockperf pp -i 127.0.0.1 -p 11112 -m 64 -t 10 --full-rtt >> $out/floor.txt 2>&1
	echo "== run $i: sockbench ping-udp" >> $out/floor.txt
	$sb run ping-udp --quiet --target udp://127.0.0.1:19001 --out $out/floor-udp-$i.json >> $out/floor.txt 2>&1
done
kill $sp1 $sp2; kill -INT $srv; wait
}

steady() {
# 4. Allocations: the steady-state engine benchmarks.
go test -run '^$' -bench Steady -benchtime 2s -count 3 . > $out/steady.txt 2>&1
}

for section in ${@:-hold connect throughput floor steady}; do
	$section
done
