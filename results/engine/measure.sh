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
# 2. Throughput: both engines against one server process, alternating; first
# with default loops everywhere, then with one loop for the server and one
# for the epoll client (half the cores each).
: > $out/throughput.txt
for cfg in default oneloop; do
	sloops=""; cloops=""
	if [ $cfg = oneloop ]; then sloops="--loops 1"; cloops="--loops 1"; fi
	$sb serve $sloops --ws 127.0.0.1:18080 > /dev/null 2>&1 &
	srv=$!
	sleep 1
	for i in 1 2 3 4 5; do
		for e in epoll goroutine; do
			l=""
			if [ $e = epoll ]; then l=$cloops; fi
			echo "== $cfg run $i, serve $sloops, run --engine $e $l" >> $out/throughput.txt
			$sb run throughput --engine $e $l --warmup 1s --duration 5s --quiet --target ws://127.0.0.1:18080/ \
				--out $out/throughput-$cfg-$e-$i.json >> $out/throughput.txt 2>&1
		done
	done
	kill -INT $srv; wait $srv
done
}

floor() {
# 3. Latency floor: sockperf ping-pong and sockbench ping against their own
# servers, with the processes wherever the kernel puts them, then pinned to
# one core (client and server on CPU 0), then apart (client CPU 0, server
# CPU 1). Three 5 s runs of each, interleaved.
: > $out/floor.txt
for place in free same apart; do
	cpin=""; spin=""
	case $place in
	same) cpin="taskset -c 0"; spin="taskset -c 0" ;;
	apart) cpin="taskset -c 0"; spin="taskset -c 1" ;;
	esac
	$spin sockperf sr --tcp -i 127.0.0.1 -p 11111 > /dev/null 2>&1 &
	sp1=$!
	$spin sockperf sr -i 127.0.0.1 -p 11112 > /dev/null 2>&1 &
	sp2=$!
	$spin $sb serve --tcp 127.0.0.1:19000 --udp 127.0.0.1:19001 > /dev/null 2>&1 &
	srv=$!
	sleep 1
	for i in 1 2 3; do
		echo "== $place $i: sockperf tcp" >> $out/floor.txt
		$cpin sockperf pp --tcp -i 127.0.0.1 -p 11111 -m 64 -t 5 --full-rtt >> $out/floor.txt 2>&1
		echo "== $place $i: sockbench ping-tcp" >> $out/floor.txt
		$cpin $sb run ping-tcp --duration 5s --quiet --target tcp://127.0.0.1:19000 --out $out/floor-$place-tcp-$i.json >> $out/floor.txt 2>&1
		echo "== $place $i: sockperf udp" >> $out/floor.txt
		$cpin sockperf pp -i 127.0.0.1 -p 11112 -m 64 -t 5 --full-rtt >> $out/floor.txt 2>&1
		echo "== $place $i: sockbench ping-udp" >> $out/floor.txt
		$cpin $sb run ping-udp --duration 5s --quiet --target udp://127.0.0.1:19001 --out $out/floor-$place-udp-$i.json >> $out/floor.txt 2>&1
	done
	kill $sp1 $sp2; kill -INT $srv; wait
done
}

steady() {
# 4. Allocations: the steady-state engine benchmarks.
go test -run '^$' -bench Steady -benchtime 2s -count 3 . > $out/steady.txt 2>&1
}

for section in ${@:-hold connect throughput floor steady}; do
	$section
done
