package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sockbench/sockbench/internal/compare"
	"github.com/sockbench/sockbench/internal/result"
	"github.com/sockbench/sockbench/reporters"
)

const reportUsage = `
Usage: sockbench report RESULT.json [--format FORMAT] [-o FILE]
       sockbench report A.json B.json --format html [--label A --label B] [-o FILE]

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
Without -o the report goes to stdout. Two results render as one HTML
report with both runs overlaid in every chart and compare's table of the
two; each is named by its file name, or by --label.

Examples:
  sockbench report sockbench-results/echo-20261126-075159.json
  sockbench report r.json --format html -o report.html
  sockbench report r.json --format hgrm -o r          # r.latency.hgrm, r.service_time.hgrm, ...
  sockbench report r.json --format hgrm --metric service_time > st.hgrm
  sockbench report r.json --format csv -o intervals.csv
  sockbench report old.json new.json -f html --label before --label after -o cmp.html`

// reportFormats are the formats of 'report', in the order --help lists them.
var reportFormats = []string{"text", "html", "hgrm", "csv", "json"}

func reportCmd() command {
	return command{
		summary: "render a saved result as text, HTML, .hgrm, CSV or JSON",
		usage:   reportUsage,
		flags: func(fs *pflag.FlagSet) func([]string, io.Writer, io.Writer) error {
			format := fs.StringP("format", "f", "text", "output format: "+strings.Join(reportFormats, ", "))
			out := fs.StringP("out", "o", "", "output file (hgrm: prefix of one file per histogram); default stdout")
			labels := fs.StringArray("label", nil, "with two results: the name each is shown under (twice, in order; default the file names)")
			metric := fs.String("metric", "", "hgrm: the one histogram to write: latency, service_time, connect, send_lag, fanout (default: latency to stdout, all with -o)")
			return func(args []string, stdout, stderr io.Writer) error {
				if len(args) != 1 && len(args) != 2 {
					return &usageError{"report takes one result file, or two to overlay in HTML"}
				}
				if !slices.Contains(reportFormats, *format) {
					return &usageError{fmt.Sprintf("--format %q: want one of %s", *format, strings.Join(reportFormats, ", "))}
				}
				if len(*labels) > 0 && len(*labels) != len(args) {
					return &usageError{fmt.Sprintf("--label given %d times for %d results: give one per result, in order, or none", len(*labels), len(args))}
				}
				if len(args) == 2 {
					if *format != "html" {
						return &usageError{"two results are overlaid in --format html only; for a table of the two use 'sockbench compare'"}
					}
					return reportOverlay(args, *labels, *out, stdout)
				}
				if len(*labels) > 0 {
					return &usageError{"--label names the two results of an overlay; one result has none"}
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
	return createReport(path, format, func(w io.Writer) error { return render(w, format, r) })
}

// createReport writes a report made by fn into the file path; a file that
// cannot be written is exit 3.
func createReport(path, format string, fn func(io.Writer) error) error {
	// Rendered first: a result that cannot be rendered leaves an existing
	// file as it was.
	var buf bytes.Buffer
	if err := fn(&buf); err != nil {
		return &cannotError{fmt.Errorf("write %s report %s: %w", format, path, err)}
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return &cannotError{fmt.Errorf("write %s report: %w", format, err)}
	}
	return nil
}

// reportOverlay renders two results overlaid in one HTML report, with
// compare's table of the two, to stdout or to the file out.
func reportOverlay(args, labels []string, out string, stdout io.Writer) error {
	if len(labels) == 0 {
		labels = []string{filepath.Base(args[0]), filepath.Base(args[1])}
		if labels[0] == labels[1] {
			labels = args
		}
	}
	var sides [2]reporters.Labelled
	for i, path := range args {
		r, err := result.Read(path)
		if err != nil {
			return &usageError{err.Error()}
		}
		sides[i] = reporters.Labelled{Label: labels[i], Result: r}
	}
	t, err := compare.Compare(sides[0].Result, sides[1].Result, labels[0], labels[1], nil)
	if err != nil {
		return refusal(err)
	}
	fn := func(w io.Writer) error {
		return reporters.HTMLOverlay(w, labels[0]+" vs "+labels[1], sides[0], sides[1], t)
	}
	if out == "" {
		return fn(stdout)
	}
	return createReport(out, "html", fn)
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
