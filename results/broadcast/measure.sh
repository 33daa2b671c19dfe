#!/bin/sh
# Records the figures of results/broadcast.md. Run from the repository root on
# an otherwise idle machine:  sh results/broadcast/measure.sh [SECTION...]
# Sections: rooms oneroom udp capacity profile floor (default: all, about 15 min).
# Client and server run in separate processes. Writes results/broadcast/*.txt
# and the result JSON of every run.
set -u
out=results/broadcast
go build -o /tmp/sockbench ./cmd/sockbench || exit 1
sb=/tmp/sockbench

serve() { $sb serve "$@" > $out/serve-last.txt 2>&1 & srv=$!; sleep 1; }
unserve() { kill -INT $srv; wait $srv; cat $out/serve-last.txt >> $1; sleep 2; }

rooms() {
# 1. 10,000 subscribers in 100 rooms, 2 publishers, 10 publishes/s per room:
# 1,000 publishes/s and 100,000 deliveries/s, over WebSocket; three runs.
: > $out/rooms.txt
for i in 1 2 3; do
	serve --ws 127.0.0.1:18080
	echo "== run $i" >> $out/rooms.txt
	$sb run broadcast --target ws://127.0.0.1:18080/ --conns 10000 --rooms 100 --publishers 2 --publish-rate 10 \
		--connect-rate 5000 --warmup 3s --duration 20s --quiet --out $out/rooms-$i.json >> $out/rooms.txt 2>&1
	unserve $out/rooms.txt
done
}

oneroom() {
# 2. One room of 10,000 members, 1 publish/s, 60 s (60 publishes), over
# WebSocket; then the server with one loop, and with two (the default).
: > $out/oneroom.txt
for i in 1 2 3; do
	serve --ws 127.0.0.1:18080
	echo "== run $i" >> $out/oneroom.txt
	$sb run broadcast --target ws://127.0.0.1:18080/ --conns 10000 --rooms 1 --publishers 1 --publish-rate 1 \
		--connect-rate 5000 --warmup 3s --duration 60s --quiet --out $out/oneroom-$i.json >> $out/oneroom.txt 2>&1
	unserve $out/oneroom.txt
done
}

udp() {
# 3. The same room over UDP: one datagram per member, sent with sendmmsg.
: > $out/udp.txt
cat > /tmp/broadcast-udp.yaml <<'YAML'
name: broadcast-udp
transport: udp
warmup: 3s
broadcast:
  rooms: 1
  publishers: 1
  publish_rate: 1
phases:
  - duration: 60s
    conns: 10000
    connect_rate: 5000
    size: 64
YAML
serve --udp 127.0.0.1:19001
$sb run /tmp/broadcast-udp.yaml --target udp://127.0.0.1:19001 --quiet --out $out/udp.json >> $out/udp.txt 2>&1
unserve $out/udp.txt
}

capacity() {
# 4. Capacity search: 100 rooms at 10 publishes/s each, subscribers from
# 2,000 up by 1.5x until p99 passes 50 ms or a delivery is missed.
serve --ws 127.0.0.1:18080
$sb run broadcast --target ws://127.0.0.1:18080/ --find-max conns --conns 2000 --rooms 100 --publishers 2 \
	--publish-rate 10 --connect-rate 5000 --warmup 3s --duration 15s --quiet \
	--until 'p99>50ms' --until 'delivery<100%' --until 'error_rate>0%' \
	--out $out/capacity.json > $out/capacity.txt 2>&1
echo "exit code: $?" >> $out/capacity.txt
unserve $out/capacity.txt
# The same at 40 publishes/s per room (four times the deliveries per
# subscriber), so that a step breaks within the open-files limit.
serve --ws 127.0.0.1:18080
$sb run broadcast --target ws://127.0.0.1:18080/ --find-max conns --conns 2000 --rooms 100 --publishers 2 \
	--publish-rate 40 --connect-rate 5000 --warmup 3s --duration 15s --quiet \
	--until 'p99>50ms' --until 'delivery<100%' --until 'error_rate>0%' \
	--out $out/capacity40.json > $out/capacity40.txt 2>&1
echo "exit code: $?" >> $out/capacity40.txt
unserve $out/capacity40.txt
}

profile() {
# 6. Where the client's time goes at 100,000 deliveries/s: a CPU profile of
# one run of section 1 (go tool pprof -top -cum /tmp/sockbench $out/profile.prof).
serve --ws 127.0.0.1:18080
$sb run broadcast --target ws://127.0.0.1:18080/ --conns 10000 --rooms 100 --publishers 2 --publish-rate 10 \
	--connect-rate 5000 --warmup 3s --duration 20s --quiet --cpuprofile $out/profile.prof \
	--out /tmp/broadcast-profile.json > $out/profile.txt 2>&1
unserve $out/profile.txt
}

floor() {
# 5. The floor: one 100-byte write(2) to each of 5,000 loopback TCP sockets.
go test -run '^$' -bench LoopbackWriteFloor -count 5 ./targets > $out/floor.txt 2>&1
}

sections=${*:-"rooms oneroom udp capacity profile floor"}
for s in $sections; do
	echo "== $s" >&2
	$s
done
