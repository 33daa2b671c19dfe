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
	for _, line := range broadcastSummary(bc) {
		fmt.Fprintf(b, "  %-10s %s\n", line.K, line.V)
	}
	if len(bc.PerRoom) == 0 {
		return
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "room\tmembers\tpublishes\texpected\tdelivered\tmissing\tdup\textra\tlatency p50\tp99\tmax\tfan-out p99\t")
	for _, rm := range bc.PerRoom {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", rm.Name, rm.Members, rm.Publishes,
			rm.Expected, rm.Delivered, rm.Missing, rm.Duplicated, rm.Extra, strings.Join(roomTimes(rm), "\t"))
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
