package reporters

import (
	"fmt"
	"io"

	"github.com/sockbench/sockbench/internal/result"
)

// Fanout names the broadcast fan-out completion histogram
// (Result.Broadcast.FanOut) among the histograms HGRM writes.
const Fanout = "fanout"

// Named is one of a Result's latency histograms with its name.
type Named struct {
	Name string
	Hist *result.Histogram
}

// Histograms lists r's latency histograms in a fixed order: latency,
// service_time, connect, send_lag, then fanout for a broadcast run.
// Histograms the Result lacks are left out.
func Histograms(r *result.Result) []Named {
	var out []Named
	for _, name := range []string{result.Latency, result.ServiceTime, result.Connect, result.SendLag} {
		if h := r.Histograms[name]; h != nil {
			out = append(out, Named{name, h})
		}
	}
	if r.Broadcast != nil && r.Broadcast.FanOut != nil {
		out = append(out, Named{Fanout, r.Broadcast.FanOut})
	}
	return out
}

// HGRM writes h as an HdrHistogram percentile distribution (.hgrm), values
// in milliseconds, five ticks per half distance: the format HdrHistogram's
// plotter (hdrhistogram.github.io/HdrHistogram/plotFiles.html) loads.
func HGRM(w io.Writer, h *result.Histogram) error {
	d, err := h.HDR()
	if err != nil {
		return err
	}
	if _, err := d.PercentilesPrint(w, 5, 1e6); err != nil { // ns -> ms
		return fmt.Errorf("write hgrm: %w", err)
	}
	return nil
}
