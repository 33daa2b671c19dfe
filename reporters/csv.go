package reporters

import (
	"encoding/csv"
	"io"
	"strconv"

	"github.com/sockbench/sockbench/internal/result"
)

// csvColumns are the columns of CSV, in order: the interval fields of the
// Result with their JSON names and units (results/README.md, "intervals").
var csvColumns = []string{
	"t_ns", "phase", "sent", "received", "lost", "send_rate", "recv_rate", "planned_rate",
	"open_conns", "errors", "p50_ns", "p99_ns", "max_ns", "send_lag_p99_ns", "send_lag_max_ns", "rss_bytes",
}

// CSV writes the interval series: a header row, then one row per interval
// (about a second each, warm-up and drain included). Times are ns since the
// run's start, rates msg/s, latencies ns, rss_bytes bytes (0 if unknown).
func CSV(w io.Writer, r *result.Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvColumns); err != nil {
		return err
	}
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	for _, iv := range r.Intervals {
		row := []string{
			i(iv.TNs), iv.Phase, i(iv.Sent), i(iv.Received), i(iv.Lost), f(iv.SendRate), f(iv.RecvRate), f(iv.PlannedRate),
			i(iv.OpenConns), i(iv.Errors), i(iv.P50Ns), i(iv.P99Ns), i(iv.MaxNs), i(iv.SendLagP99Ns), i(iv.SendLagMaxNs), i(iv.RSSBytes),
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
