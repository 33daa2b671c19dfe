package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/sockbench/sockbench/internal/compare"
	"github.com/sockbench/sockbench/internal/result"
	"github.com/sockbench/sockbench/reporters"
)

// ciOutputs are the files written for CI systems: --summary-md (or
// $GITHUB_STEP_SUMMARY), --junit and, for run, --benchfmt.
type ciOutputs struct {
	summaryMD string
	junit     string
	benchfmt  string
}

// ciFlags registers the CI output flags on fs; withBench adds --benchfmt.
func ciFlags(fs *pflag.FlagSet, withBench bool) *ciOutputs {
	o := &ciOutputs{}
	fs.StringVar(&o.summaryMD, "summary-md", "", "write a Markdown summary to this file (default: append to $GITHUB_STEP_SUMMARY when it is set)")
	fs.StringVar(&o.junit, "junit", "", "write JUnit XML to this file: one test case per threshold or --fail-on limit")
	if withBench {
		fs.StringVar(&o.benchfmt, "benchfmt", "", "write Go benchmark format lines to this file (one per repetition), for benchstat")
	}
	return o
}

// summaryPath is where the Markdown summary goes and whether to append:
// --summary-md (replaced), else $GITHUB_STEP_SUMMARY (appended), else none.
func (o *ciOutputs) summaryPath() (path string, appendTo bool) {
	if o.summaryMD != "" {
		return o.summaryMD, false
	}
	return os.Getenv("GITHUB_STEP_SUMMARY"), true
}

// writeRun writes a run's CI outputs.
func (o *ciOutputs) writeRun(r *result.Result) error {
	if path, app := o.summaryPath(); path != "" {
		if err := writeOut(path, app, func(w io.Writer) error { return reporters.Markdown(w, r) }); err != nil {
			return err
		}
	}
	if o.junit != "" {
		if err := writeOut(o.junit, false, func(w io.Writer) error { return reporters.JUnit(w, reporters.ThresholdSuite(r)) }); err != nil {
			return err
		}
	}
	if o.benchfmt != "" {
		if err := writeOut(o.benchfmt, false, func(w io.Writer) error { return reporters.Benchfmt(w, r) }); err != nil {
			return err
		}
	}
	return nil
}

// writePair writes the CI outputs of a pair of runs (tcp-vs-udp, --against):
// both runs' summaries and the comparison in the Markdown; both runs'
// threshold suites and the comparison's in one JUnit file; both runs'
// benchmark lines.
func (o *ciOutputs) writePair(runs [2]*result.Result, t *compare.Table, title string) error {
	if path, app := o.summaryPath(); path != "" {
		for i, r := range runs {
			if err := writeOut(path, app || i > 0, func(w io.Writer) error { return reporters.Markdown(w, r) }); err != nil {
				return err
			}
		}
		if err := o.summaryCompare(path, true, t, title); err != nil {
			return err
		}
	}
	if o.junit != "" {
		suites := []reporters.JUnitSuite{reporters.ThresholdSuite(runs[0]), reporters.ThresholdSuite(runs[1]), compareSuite(t, title)}
		if err := writeOut(o.junit, false, func(w io.Writer) error { return reporters.JUnit(w, suites...) }); err != nil {
			return err
		}
	}
	if o.benchfmt != "" {
		err := writeOut(o.benchfmt, false, func(w io.Writer) error {
			for _, r := range runs {
				if err := reporters.Benchfmt(w, r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// writeCompare writes a comparison's CI outputs; title heads the Markdown.
func (o *ciOutputs) writeCompare(t *compare.Table, title string) error {
	if path, app := o.summaryPath(); path != "" {
		if err := o.summaryCompare(path, app, t, title); err != nil {
			return err
		}
	}
	if o.junit != "" {
		if err := writeOut(o.junit, false, func(w io.Writer) error { return reporters.JUnit(w, compareSuite(t, title)) }); err != nil {
			return err
		}
	}
	return nil
}

// summaryCompare writes (or appends) the comparison's Markdown summary.
func (o *ciOutputs) summaryCompare(path string, app bool, t *compare.Table, title string) error {
	return writeOut(path, app, func(w io.Writer) error {
		verdict := "no limit failed"
		if n := len(t.Failures()); n > 0 {
			verdict = fmt.Sprintf("**%d limits FAILED**", n)
		}
		fmt.Fprintf(w, "### sockbench compare: %s\n\n%s.\n\n", title, verdict)
		if err := t.Markdown(w); err != nil {
			return err
		}
		_, err := io.WriteString(w, "\n")
		return err
	})
}

// compareSuite has one test case per compared metric with a --fail-on limit.
func compareSuite(t *compare.Table, title string) reporters.JUnitSuite {
	s := reporters.JUnitSuite{Name: "sockbench compare " + title}
	for _, r := range t.Rows {
		if r.Limit == nil {
			continue
		}
		c := reporters.JUnitCase{
			Name: r.Limit.Expr, ClassName: "sockbench.compare",
			SystemOut: fmt.Sprintf("%s: base %s, new %s, change %s, %s", r.Metric.Name,
				compare.Format(r.Metric.Unit, r.Base.Center), compare.Format(r.Metric.Unit, r.New.Center), r.ChangeString(), r.Significance()),
		}
		if r.Fail {
			c.Failure = &reporters.JUnitFailure{Message: r.FailMessage(), Type: "regression", Text: r.FailMessage()}
		}
		s.Cases = append(s.Cases, c)
	}
	return s
}

// writeOut renders into memory, then writes (or appends to) path, so that
// a failed render leaves no half-written file. A file that cannot be
// written is exit 3, as for the result file.
func writeOut(path string, appendTo bool, render func(io.Writer) error) error {
	var buf bytes.Buffer
	if err := render(&buf); err != nil {
		return err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if appendTo {
		flags = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	} else if dir := filepath.Dir(path); dir != "" {
		_ = os.MkdirAll(dir, 0o755)
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return &cannotError{fmt.Errorf("write %s: %w", path, err)}
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return &cannotError{fmt.Errorf("write %s: %w", path, err)}
	}
	if err := f.Close(); err != nil {
		return &cannotError{fmt.Errorf("write %s: %w", path, err)}
	}
	return nil
}
