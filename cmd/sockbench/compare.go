package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sockbench/sockbench/internal/compare"
	"github.com/sockbench/sockbench/internal/result"
)

const compareUsage = `
Usage: sockbench compare BASE.json NEW.json [flags]

Compares two results metric by metric, as benchstat does: the median of
each side over its repetitions (run --count N) with a 95% confidence
interval, the change, and whether it is significant (Mann-Whitney U test,
alpha 0.05; "~" means not). With one repetition on a side significance
cannot be judged ("~ (n=1)"); --fail-on limits then apply as-is.

Metrics: latency.p50 p90 p99 p99.9 max, service_time.p50 p99, send_lag.p99,
connect.p99, throughput (replies per measured second), error_rate, loss,
reordered; for broadcast runs delivery_ratio and fanout.p99.

Results of different transports are compared with a note (tcp against udp is
a fair question); other scenarios or machines with a warning; open against
closed loop, or broadcast against echo, are refused (exit 2).

Examples:
  sockbench compare results/baseline.json new.json
  sockbench compare base.json new.json --fail-on 'p99:+10%,throughput:-5%'   # exit 1 on a regression
  sockbench compare base.json new.json --summary-md summary.md --junit compare.xml`

func compareCmd() command {
	return command{
		summary: "compare two results, with significance; --fail-on gates regressions",
		usage:   compareUsage,
		flags: func(fs *pflag.FlagSet) func([]string, io.Writer, io.Writer) error {
			failOn := fs.StringArray("fail-on", nil, "regressions that fail (exit 1), e.g. 'p99:+10%,throughput:-5%' (repeatable)")
			ci := ciFlags(fs, false)
			return func(args []string, stdout, stderr io.Writer) error {
				if len(args) != 2 {
					return &usageError{"compare takes two result files: BASE.json NEW.json"}
				}
				var limits []compare.Limit
				for _, v := range *failOn {
					l, err := compare.ParseLimits(v)
					if err != nil {
						return &usageError{"--fail-on " + err.Error()}
					}
					limits = append(limits, l...)
				}
				base, err := readForCompare(args[0])
				if err != nil {
					return err
				}
				next, err := readForCompare(args[1])
				if err != nil {
					return err
				}
				t, err := compare.Compare(base, next, "base "+filepath.Base(args[0]), "new "+filepath.Base(args[1]), limits)
				if err != nil {
					return refusal(err)
				}
				return reportCompare(t, filepath.Base(args[0])+" vs "+filepath.Base(args[1]), ci, stdout, stderr)
			}
		},
	}
}

// readForCompare reads a result; a missing, truncated, corrupted or newer
// file is a usage error (exit 2) with result.Read's message.
func readForCompare(path string) (*result.Result, error) {
	r, err := result.Read(path)
	if err != nil {
		return nil, &usageError{err.Error()}
	}
	return r, nil
}

// refusal turns compare's refusal into a usage error (exit 2).
func refusal(err error) error {
	var re *compare.RefusedError
	if errors.As(err, &re) {
		return &usageError{"cannot compare: " + re.Msg}
	}
	return err
}

// reportCompare prints the table, writes the CI outputs and turns failed
// limits into one stderr line each and a gate error (exit 1).
func reportCompare(t *compare.Table, title string, ci *ciOutputs, stdout, stderr io.Writer) error {
	if err := t.Text(stdout); err != nil {
		return err
	}
	if err := ci.writeCompare(t, title); err != nil {
		return err
	}
	fails := t.Failures()
	if len(fails) == 0 {
		return nil
	}
	var names []string
	for _, r := range fails {
		fmt.Fprintf(stderr, "sockbench compare: FAIL %s\n", r.FailMessage())
		names = append(names, r.Metric.Name)
	}
	return &gateError{fmt.Sprintf("%d --fail-on limits failed: %s", len(fails), strings.Join(names, ", "))}
}
