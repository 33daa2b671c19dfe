package engine_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sockbench/sockbench/internal/plan"
	"github.com/sockbench/sockbench/internal/result"
	"github.com/sockbench/sockbench/internal/roomtest"
	"github.com/sockbench/sockbench/targets"
)

// broadcastPlan is a 1 s broadcast run after a 200 ms warm-up: members
// subscribers per room, 1 publisher, rate publishes/s per room.
func broadcastPlan(tr plan.Transport, url, addr string, members []int, rate float64) *plan.Plan {
	b := &plan.Broadcast{Namespace: "/", Publishers: 1, TopRooms: 10}
	subs := 0
	for i, n := range members {
		b.Rooms = append(b.Rooms, plan.Room{Name: fmt.Sprintf("room-%d", i), Members: n})
		subs += n
	}
	p := &plan.Plan{
		Name:   "broadcast",
		Target: plan.Target{URL: url, Transport: tr, Addr: addr},
		Mode:   plan.Open, Framing: plan.Len32,
		Warmup: 200 * time.Millisecond,
		Phases: []plan.Phase{{Name: "steady", Duration: time.Second, Conns: subs + 1, Senders: 1,
			PerConnRate: rate * float64(len(members)), Size: 64}},
		Timeout:        time.Second,
		ConnectTimeout: 5 * time.Second,
		Broadcast:      b,
	}
	return p
}

type broadcastRun struct {
	c  result.Counters
	h  map[string]*result.Histogram
	bc *result.Broadcast
}

// driveBroadcast runs p on eng with a rooms tracker, as `sockbench run`
// does. Subscribers join one at a time (connect rate 200/s unless p sets
// one) so that the test server numbers its members in connection order.
func driveBroadcast(t *testing.T, eng string, p *plan.Plan) broadcastRun {
	t.Helper()
	if p.Phases[0].ConnectRate == 0 {
		p.Phases[0].ConnectRate = 200
	}
	r := driveFault(t, eng, p, nil)
	return broadcastRun{c: r.c, h: r.h, bc: r.bc}
}

// checkDeliveries asserts the identities of every broadcast run: delivered
// plus missing is expected, every delivery is one latency sample, every
// publish sent was numbered by the server.
func checkDeliveries(t *testing.T, r broadcastRun) {
	t.Helper()
	b := r.bc
	if b.Delivered+b.Missing != b.Expected {
		t.Errorf("delivered %d + missing %d != expected %d", b.Delivered, b.Missing, b.Expected)
	}
	if r.c.Received != b.Delivered || r.h[result.Latency].Count != b.Delivered {
		t.Errorf("received %d, latency samples %d, want delivered %d", r.c.Received, r.h[result.Latency].Count, b.Delivered)
	}
	if b.Publishes == 0 || b.FannedOut != b.Publishes || r.c.Sent != b.Publishes {
		t.Errorf("publishes %d, fanned out %d, sent %d: want equal and > 0", b.Publishes, b.FannedOut, r.c.Sent)
	}
	var sum int64
	for _, rm := range b.PerRoom {
		sum += rm.Delivered
		if rm.Latency.Count != rm.Delivered {
			t.Errorf("room %s: %d latency samples, %d delivered", rm.Name, rm.Latency.Count, rm.Delivered)
		}
	}
	if sum != b.Delivered {
		t.Errorf("rooms deliver %d in all, total says %d", sum, b.Delivered)
	}
	if r.c.ConnsFailed+r.c.ConnsDropped != 0 || len(r.c.Errors) != 0 {
		t.Errorf("failed %d dropped %d errors %v", r.c.ConnsFailed, r.c.ConnsDropped, r.c.Errors)
	}
}

// Every subscriber of a room gets every publish exactly once from a healthy
// server: the reference server and the test server, over WebSocket and TCP.
func TestBroadcastExact(t *testing.T) {
	ref, err := targets.Serve(targets.Config{WS: "127.0.0.1:0", TCP: "127.0.0.1:0", UDP: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ref.Close() })
	tcpTest := roomtest.Start(t, roomtest.Config{Transport: "tcp"})
	wsTest := roomtest.Start(t, roomtest.Config{Transport: "ws"})
	servers := []struct {
		name     string
		tr       plan.Transport
		url, add string
	}{
		{"reference-ws", plan.WS, ref.URL("ws"), ref.WSAddr()},
		{"reference-tcp", plan.TCP, ref.URL("tcp"), ref.TCPAddr()},
		{"reference-udp", plan.UDP, ref.URL("udp"), ref.UDPAddr()}, // loopback at 100 publishes/s: nothing lost
		{"roomtest-ws", plan.WS, wsTest.URL(), wsTest.Addr()},
		{"roomtest-tcp", plan.TCP, tcpTest.URL(), tcpTest.Addr()},
	}
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			forEngines(t, func(t *testing.T, eng string) {
				p := broadcastPlan(s.tr, s.url, s.add, []int{6, 4}, 50)
				r := driveBroadcast(t, eng, p)
				checkDeliveries(t, r)
				b := r.bc
				if b.Missing+b.Duplicated+b.Extra+b.Late != 0 || b.Complete != b.FannedOut {
					t.Errorf("healthy server: %+v", *b)
				}
				var want int64
				for i, rm := range b.PerRoom {
					if rm.Expected != rm.Publishes*int64(p.Broadcast.Rooms[i].Members) {
						t.Errorf("room %s: expected %d, want %d publishes x %d members", rm.Name, rm.Expected, rm.Publishes, p.Broadcast.Rooms[i].Members)
					}
					want += rm.Expected
				}
				if b.Expected != want || b.FanOut.Count != b.Complete {
					t.Errorf("expected %d (rooms add up to %d), fan-out samples %d of %d complete", b.Expected, want, b.FanOut.Count, b.Complete)
				}
			})
		})
	}
}

// countMod counts the numbers r in [from, to) with r%n == n-1.
func countMod(from, to, n int64) int64 {
	k := int64(0)
	for r := from; r < to; r++ {
		if r%int64(n) == n-1 {
			k++
		}
	}
	return k
}

// A server that drops or duplicates some deliveries is caught with the
// exact counts; one that delivers to a non-member, with the extras counted.
// One room and one publisher: room sequence numbers 0..N-1, of which the
// last FannedOut are measured.
func TestBroadcastFaults(t *testing.T) {
	cases := []struct {
		name   string
		faults roomtest.Faults
		rooms  []int
		check  func(t *testing.T, b *result.Broadcast, first, n int64)
	}{
		{"drop every 10th to member 1", roomtest.Faults{DropEvery: 10, DropMember: 1}, []int{5},
			func(t *testing.T, b *result.Broadcast, first, n int64) {
				if want := countMod(first, n, 10); b.Missing != want || want == 0 {
					t.Errorf("missing %d, want %d", b.Missing, want)
				}
				if b.Duplicated+b.Extra != 0 {
					t.Errorf("duplicated %d extra %d, want 0", b.Duplicated, b.Extra)
				}
			}},
		{"duplicate every 10th", roomtest.Faults{DuplicateEvery: 10}, []int{5},
			func(t *testing.T, b *result.Broadcast, first, n int64) {
				if want := 5 * countMod(first, n, 10); b.Duplicated != want || want == 0 {
					t.Errorf("duplicated %d, want %d", b.Duplicated, want)
				}
				if b.Missing+b.Extra != 0 {
					t.Errorf("missing %d extra %d, want 0", b.Missing, b.Extra)
				}
			}},
		{"extra delivery to a non-member", roomtest.Faults{Extra: true}, []int{3, 3},
			func(t *testing.T, b *result.Broadcast, first, n int64) {
				if b.Extra != b.FannedOut || b.Extra == 0 {
					t.Errorf("extra %d, want one per publish (%d)", b.Extra, b.FannedOut)
				}
				if b.Missing+b.Duplicated != 0 {
					t.Errorf("missing %d duplicated %d, want 0", b.Missing, b.Duplicated)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forEngines(t, func(t *testing.T, eng string) {
				srv := roomtest.Start(t, roomtest.Config{Transport: "ws", Faults: tc.faults})
				p := broadcastPlan(plan.WS, srv.URL(), srv.Addr(), tc.rooms, 100)
				r := driveBroadcast(t, eng, p)
				checkDeliveries(t, r)
				n := srv.Stats().Publishes
				tc.check(t, r.bc, n-r.bc.FannedOut, n)
			})
		})
	}
}

// Members that leave and rejoin during the run keep the counts exact: each
// is owed only what was published while it was in the room.
func TestBroadcastChurn(t *testing.T) {
	ref, err := targets.Serve(targets.Config{WS: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ref.Close() })
	srv := roomtest.Start(t, roomtest.Config{Transport: "ws"})
	for _, s := range []struct{ name, url, addr string }{
		{"reference", ref.URL("ws"), ref.WSAddr()},
		{"roomtest", srv.URL(), srv.Addr()},
	} {
		t.Run(s.name, func(t *testing.T) {
			forEngines(t, func(t *testing.T, eng string) {
				p := broadcastPlan(plan.WS, s.url, s.addr, []int{8, 8}, 100)
				p.Broadcast.ChurnEvery = 7
				r := driveBroadcast(t, eng, p)
				checkDeliveries(t, r)
				b := r.bc
				if b.Missing+b.Duplicated+b.Extra+b.Late != 0 {
					t.Errorf("churn on a healthy server: %+v", *b)
				}
				if full := b.Publishes * 8; b.Expected > full || b.Expected < full/2 {
					t.Errorf("expected %d: want at most %d publishes x members, and most of them", b.Expected, full)
				}
			})
		})
	}
	if st := srv.Stats(); st.Leaves == 0 {
		t.Errorf("no member left the test server's rooms: %+v", st)
	}
}

// Truth: a server that holds one room's deliveries back by 50 ms. That
// room's latency p50 is at least the time from the publish's intended send
// to the server's write of the delivery (which the server measured, its own
// scheduling delay included), and the rest, the delivery's way to the
// subscriber, is what it is in the other room, held back by nothing in the
// same run, within truthMargin.
func TestBroadcastTruthDelayedRoom(t *testing.T) {
	forEngines(t, func(t *testing.T, eng string) {
		srv := roomtest.Start(t, roomtest.Config{Transport: "tcp", RecordHolds: true,
			Faults: roomtest.Faults{DelayRoom: "room-0", Delay: truthDelay}})
		p := broadcastPlan(plan.TCP, srv.URL(), srv.Addr(), []int{5, 5}, 50)
		r := driveFault(t, eng, p, nil) // the members' join order does not matter here
		checkDeliveries(t, broadcastRun{c: r.c, h: r.h, bc: r.bc})
		hs := map[string][]serverHold{}
		for _, h := range srv.Holds() {
			if h.Intended >= r.tl.Start && h.Intended < r.tl.End {
				hs[h.Room] = append(hs[h.Room], serverHold{h.Intended, h.Read, h.Write})
			}
		}
		var paths []truthPath
		for _, name := range []string{"room-0", "room-1"} {
			i := slices.IndexFunc(r.bc.PerRoom, func(rm result.RoomResult) bool { return rm.Name == name })
			if i < 0 {
				t.Fatalf("no figures for %s", name)
			}
			rm := r.bc.PerRoom[i]
			if got, want := int64(len(hs[name])), rm.Latency.Count; got != want || want == 0 {
				t.Fatalf("%s: the server held %d measured deliveries, the client timed %d", name, got, want)
			}
			lat, err := rm.Latency.HDR()
			if err != nil {
				t.Fatal(err)
			}
			paths = append(paths, pathAt(name, lat, hs[name], r.clk, (rm.Latency.Count+1)/2))
		}
		checkTruth(t, paths[0], paths[1])
	})
}

// Over UDP a subscriber repeats its join every keep-alive interval, so a
// server that forgets silent members (here after 300 ms) keeps it for the
// whole run, a ramp longer than that included: nothing goes missing.
func TestBroadcastUDPKeepAlive(t *testing.T) {
	srv, err := targets.Serve(targets.Config{UDP: "127.0.0.1:0", UDPMemberTTL: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	forEngines(t, func(t *testing.T, eng string) {
		p := broadcastPlan(plan.UDP, srv.URL("udp"), srv.UDPAddr(), []int{4, 4}, 50)
		p.Broadcast.KeepAlive = 100 * time.Millisecond
		p.Timeout = 200 * time.Millisecond // the engines look at members every timeout/4
		p.Phases[0].ConnectRate = 8        // the first members wait over a second for the first publish
		r := driveBroadcast(t, eng, p)
		checkDeliveries(t, r)
		if b := r.bc; b.Missing+b.Duplicated+b.Extra != 0 || r.c.Unexpected != 0 {
			t.Errorf("members kept alive: %+v, unexpected replies %d", *b, r.c.Unexpected)
		}
	})
}
