package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sockbench/sockbench/internal/result"
	"github.com/sockbench/sockbench/reporters"
)

const reportUsage = `
Usage: sockbench report RESULT.json [--format FORMAT] [-o FILE]

Renders a saved result (written by 'sockbench run') in one format:
  text   the summary 'run' prints (default)
  html   one self-contained HTML file with SVG charts; opens offline
  hgrm   HdrHistogram percentile distribution, values in ms, for
         HdrHistogram's plotter. To stdout: one histogram (--metric,
         default latency). With -o PREFIX: one file per histogram,
         PREFIX.METRIC.hgrm (a trailing .hgrm is taken off PREFIX), for
         latency, service_time, connect, send_lag and, for broadcast,
         fanout; --metric limits it to one.
  csv    the interval series, one row per second, header row first
  json   the result itself
Without -o the report goes to stdout.

Examples:
  sockbench report sockbench-results/echo-20261126-075159.json
  sockbench report r.json --format html -o report.html
  sockbench report r.json --format hgrm -o r          # r.latency.hgrm, r.service_time.hgrm, ...
  sockbench report r.json --format hgrm --metric service_time > st.hgrm
  sockbench report r.json --format csv -o intervals.csv`

// reportFormats are the formats of 'report', in the order --help lists them.
var reportFormats = []string{"text", "html", "hgrm", "csv", "json"}

func reportCmd() command {
	return command{
		summary: "render a saved result as text, HTML, .hgrm, CSV or JSON",
		usage:   reportUsage,
		flags: func(fs *pflag.FlagSet) func([]string, io.Writer, io.Writer) error {
			format := fs.StringP("format", "f", "text", "output format: "+strings.Join(reportFormats, ", "))
			out := fs.StringP("out", "o", "", "output file (hgrm: prefix of one file per histogram); default stdout")
			metric := fs.String("metric", "", "hgrm: the one histogram to write: latency, service_time, connect, send_lag, fanout (default: latency to stdout, all with -o)")
			return func(args []string, stdout, stderr io.Writer) error {
				if len(args) != 1 {
					return &usageError{"report takes one result file"}
				}
				if !slices.Contains(reportFormats, *format) {
					return &usageError{fmt.Sprintf("--format %q: want one of %s", *format, strings.Join(reportFormats, ", "))}
				}
				if *metric != "" && *format != "hgrm" {
					return &usageError{"--metric applies to --format hgrm only"}
				}
				r, err := result.Read(args[0])
				if err != nil {
					return &usageError{err.Error()}
				}
				if *format == "hgrm" {
					return reportHGRM(r, *out, *metric, stdout, stderr)
				}
				if *out == "" {
					return render(stdout, *format, r)
				}
				return writeReport(*out, *format, r)
			}
		},
	}
}

// render writes r to w in one of the single-file formats.
func render(w io.Writer, format string, r *result.Result) error {
	switch format {
	case "text":
		return reporters.Text(w, r)
	case "html":
		return reporters.HTML(w, r)
	case "csv":
		return reporters.CSV(w, r)
	case "json":
		return reporters.JSON(w, r)
	}
	return &usageError{fmt.Sprintf("format %q cannot be written to one file", format)}
}

// writeReport renders r into the file path. A file that cannot be written
// is a report that could not be made (exit 3).
func writeReport(path, format string, r *result.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return &cannotError{fmt.Errorf("write %s report: %w", format, err)}
	}
	if err := render(f, format, r); err != nil {
		f.Close()
		return &cannotError{fmt.Errorf("write %s report %s: %w", format, path, err)}
	}
	if err := f.Close(); err != nil {
		return &cannotError{fmt.Errorf("write %s report %s: %w", format, path, err)}
	}
	return nil
}

// reportHGRM writes .hgrm percentile distributions: one histogram to stdout,
// or one file per histogram named PREFIX.METRIC.hgrm.
func reportHGRM(r *result.Result, out, metric string, stdout, stderr io.Writer) error {
	hists := reporters.Histograms(r)
	if metric == "" && out == "" {
		metric = result.Latency
	}
	if metric != "" {
		var names []string
		var keep []reporters.Named
		for _, n := range hists {
			names = append(names, n.Name)
			if n.Name == metric {
				keep = append(keep, n)
			}
		}
		if len(keep) == 0 {
			return &usageError{fmt.Sprintf("--metric %q: this result has %s", metric, strings.Join(names, ", "))}
		}
		hists = keep
	}
	if out == "" {
		return reporters.HGRM(stdout, hists[0].Hist)
	}
	prefix := strings.TrimSuffix(out, ".hgrm")
	for _, n := range hists {
		path := prefix + "." + n.Name + ".hgrm"
		f, err := os.Create(path)
		if err != nil {
			return &cannotError{fmt.Errorf("write hgrm: %w", err)}
		}
		err = reporters.HGRM(f, n.Hist)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return &cannotError{fmt.Errorf("write hgrm %s: %w", path, err)}
		}
		fmt.Fprintf(stderr, "sockbench: %s written to %s\n", n.Name, path)
	}
	return nil
}
