package reporters

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/sockbench/sockbench/internal/result"
)

// textRooms writes a broadcast run's delivery accounting: publishes,
// deliveries owed against made, fan-out completion, and the per-room table
// (the largest rooms, then the rest together).
func textRooms(b *strings.Builder, bc *result.Broadcast) {
	fmt.Fprintf(b, "  rooms      %d in namespace %s, %d subscribers, %d publishers\n", bc.Rooms, bc.Namespace, bc.Subscribers, bc.Publishers)
	fmt.Fprintf(b, "  publishes  sent %d, fanned out %d", bc.Publishes, bc.FannedOut)
	if bc.Unseen > 0 {
		fmt.Fprintf(b, " (%d reached no member, and count as missed by every member of their room)", bc.Unseen)
	}
	fmt.Fprintf(b, ", complete %d\n", bc.Complete)
	fmt.Fprintf(b, "  deliveries expected %d, delivered %d (%s), missing %d, duplicated %d, extra %d, late %d\n",
		bc.Expected, bc.Delivered, ratioText(bc), bc.Missing, bc.Duplicated, bc.Extra, bc.Late)
	if bc.Unjoined > 0 {
		fmt.Fprintf(b, "  WARNING    %d of %d subscribers' joins were never answered: does the target speak the room protocol?\n", bc.Unjoined, bc.Subscribers)
	}
	if h := bc.FanOut; h != nil && h.Count > 0 {
		fmt.Fprintf(b, "  fan-out    publish to last delivery: p50 %s, p99 %s, max %s (%d complete publishes)\n", dur(h.P50), dur(h.P99), dur(h.Max), h.Count)
	}
	if len(bc.PerRoom) == 0 {
		return
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "room\tmembers\tpublishes\texpected\tdelivered\tmissing\tdup\textra\tlatency p50\tp99\tmax\tfan-out p99\t")
	for _, rm := range bc.PerRoom {
		lat := [3]string{"-", "-", "-"}
		if h := rm.Latency; h != nil && h.Count > 0 {
			lat = [3]string{dur(h.P50), dur(h.P99), dur(h.Max)}
		}
		fo := "-"
		if h := rm.FanOut; h != nil && h.Count > 0 {
			fo = dur(h.P99)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t\n", rm.Name, rm.Members, rm.Publishes,
			rm.Expected, rm.Delivered, rm.Missing, rm.Duplicated, rm.Extra, lat[0], lat[1], lat[2], fo)
	}
	tw.Flush()
	b.WriteString("\n")
}

// ratioText is the delivery ratio as a percentage, or "nothing owed".
func ratioText(bc *result.Broadcast) string {
	if bc.Expected == 0 {
		return "nothing owed"
	}
	return percent(bc.DeliveryRatio())
}

// percent formats a ratio as a percentage that shows any shortfall: 100%
// only when nothing is missing.
func percent(r float64) string {
	if r >= 1 {
		return "100%"
	}
	s := fmt.Sprintf("%.3f%%", 100*r)
	if s == "100.000%" {
		s = "99.999%"
	}
	return s
}
