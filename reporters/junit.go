package reporters

import (
	"encoding/xml"
	"fmt"
	"io"

	"github.com/sockbench/sockbench/internal/result"
)

// JUnitSuite is one <testsuite> of a JUnit XML report, the form GitLab,
// Jenkins and most CI systems read: one test case per threshold or per
// compared metric with a limit.
type JUnitSuite struct {
	XMLName  xml.Name    `xml:"testsuite"`
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Time     float64     `xml:"time,attr"` // seconds
	Cases    []JUnitCase `xml:"testcase"`
}

// JUnitCase is one <testcase>; Failure is set when it failed.
type JUnitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Time      float64       `xml:"time,attr"` // seconds
	Failure   *JUnitFailure `xml:"failure,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

// JUnitFailure is a failed test case's message and details.
type JUnitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// JUnit writes the suites as one JUnit XML document (<testsuites>).
func JUnit(w io.Writer, suites ...JUnitSuite) error {
	doc := struct {
		XMLName xml.Name     `xml:"testsuites"`
		Suites  []JUnitSuite `xml:"testsuite"`
	}{Suites: suites}
	for i := range doc.Suites {
		s := &doc.Suites[i]
		s.Tests, s.Failures = len(s.Cases), 0
		for _, c := range s.Cases {
			if c.Failure != nil {
				s.Failures++
			}
		}
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// ThresholdSuite is a run's thresholds as a JUnit suite: one test case per
// threshold, failed when the threshold failed.
func ThresholdSuite(r *result.Result) JUnitSuite {
	s := JUnitSuite{Name: "sockbench " + r.Plan.Name + " thresholds", Time: r.MeasuredSeconds()}
	for _, t := range r.Checks {
		c := JUnitCase{Name: t.Expr, ClassName: "sockbench." + r.Plan.Name + ".thresholds", SystemOut: Measured(t)}
		if t.Source != "" {
			c.SystemOut += " (" + t.Source + ")"
		}
		if !t.Pass {
			c.Failure = &JUnitFailure{Message: t.Expr + ": " + Measured(t), Type: "threshold", Text: thresholdLine(t)}
		}
		s.Cases = append(s.Cases, c)
	}
	return s
}

func thresholdLine(t result.ThresholdResult) string {
	verdict := "pass"
	if !t.Pass {
		verdict = "FAIL"
	}
	line := fmt.Sprintf("%s  %s: %s", verdict, t.Expr, Measured(t))
	if t.Source != "" {
		line += " (" + t.Source + ")"
	}
	return line
}
