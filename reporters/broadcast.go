package reporters

import (
	"fmt"

	"github.com/sockbench/sockbench/internal/result"
)

// The broadcast figures as label/value pairs and table cells, for the HTML
// report's broadcast section and the text summary's (textRooms, rooms.go).

// broadcastSummary is a broadcast run's delivery accounting: counts of
// publishes and deliveries, the delivery ratio, and fan-out completion
// (a publish's intended time to its last owed delivery).
func broadcastSummary(bc *result.Broadcast) []kv {
	out := []kv{
		{"rooms", fmt.Sprintf("%d in namespace %s, %d subscribers, %d publishers", bc.Rooms, bc.Namespace, bc.Subscribers, bc.Publishers)},
		{"publishes", fmt.Sprintf("sent %d, fanned out %d, complete %d", bc.Publishes, bc.FannedOut, bc.Complete)},
		{"deliveries", fmt.Sprintf("expected %d, delivered %d (%s), missing %d, duplicated %d, extra %d, late %d",
			bc.Expected, bc.Delivered, ratioText(bc), bc.Missing, bc.Duplicated, bc.Extra, bc.Late)},
	}
	if bc.Unseen > 0 {
		out = append(out, kv{"unseen", fmt.Sprintf("%d publishes reached no member, and count as missed by every member of their room", bc.Unseen)})
	}
	if bc.Unjoined > 0 {
		out = append(out, kv{"WARNING", fmt.Sprintf("%d of %d subscribers' joins were never answered: does the target speak the room protocol?", bc.Unjoined, bc.Subscribers)})
	}
	if h := bc.FanOut; h != nil && h.Count > 0 {
		out = append(out, kv{"fan-out", fmt.Sprintf("publish to last delivery: p50 %s, p99 %s, max %s (%d complete publishes)", dur(h.P50), dur(h.P99), dur(h.Max), h.Count)})
	}
	return out
}

// roomRows is the per-room table, header first: accounting, delivery ratio,
// publish-to-delivery latency p50/p99/max and fan-out completion p99.
func roomRows(bc *result.Broadcast) [][]string {
	rows := [][]string{{"room", "rooms", "members", "publishes", "expected", "delivered", "missing", "dup", "extra", "delivered", "latency p50", "p99", "max", "fan-out p99"}}
	for _, room := range bc.PerRoom {
		row := []string{room.Name, fmt.Sprint(room.Rooms), fmt.Sprint(room.Members), fmt.Sprint(room.Publishes),
			fmt.Sprint(room.Expected), fmt.Sprint(room.Delivered), fmt.Sprint(room.Missing), fmt.Sprint(room.Duplicated),
			fmt.Sprint(room.Extra), roomRatioText(room)}
		rows = append(rows, append(row, roomTimes(room)...))
	}
	return rows
}

// roomTimes are a room's publish-to-delivery latency p50, p99 and max and
// its fan-out completion p99, "-" where it has no samples.
func roomTimes(room result.RoomResult) []string {
	out := []string{"-", "-", "-", "-"}
	if h := room.Latency; h != nil && h.Count > 0 {
		out[0], out[1], out[2] = dur(h.P50), dur(h.P99), dur(h.Max)
	}
	if h := room.FanOut; h != nil && h.Count > 0 {
		out[3] = dur(h.P99)
	}
	return out
}

// roomRatioText is a room's delivery ratio as a percentage, or "nothing
// owed".
func roomRatioText(room result.RoomResult) string {
	if room.Expected == 0 {
		return "nothing owed"
	}
	return percent(roomRatio(room))
}

// roomRatio is a room's delivered/expected (1 when nothing was owed).
func roomRatio(room result.RoomResult) float64 {
	if room.Expected == 0 {
		return 1
	}
	return float64(room.Delivered) / float64(room.Expected)
}
