package compare

import (
	"fmt"
	"strconv"
	"strings"
)

// Limit is one --fail-on item: how far a metric may get worse, in percent of
// the base, before the comparison fails.
type Limit struct {
	Expr   string // as written, e.g. "p99:+10%"
	Metric Metric
	// Pct is the allowed worsening in percent (10 for "+10%"): a rise for
	// most metrics, a fall for throughput and delivery ratio.
	Pct float64
}

// ParseLimits parses a --fail-on value: comma-separated items
// "METRIC:+N%" (a rise of more than N% fails) or "METRIC:-N%" (a fall of
// more than N% fails, for throughput and delivery_ratio). The sign may be
// left out; it must then be the metric's bad direction. Errors quote the bad
// item.
func ParseLimits(s string) ([]Limit, error) {
	var out []Limit
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		l, err := parseLimit(item)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%q: no limit; want items like \"p99:+10%%,throughput:-5%%\"", s)
	}
	return out, nil
}

func parseLimit(item string) (Limit, error) {
	bad := func(format string, args ...any) (Limit, error) {
		return Limit{}, fmt.Errorf("%q: %s", item, fmt.Sprintf(format, args...))
	}
	name, val, ok := strings.Cut(item, ":")
	if !ok && strings.ContainsAny(item, "<>") {
		return bad("this is a threshold (give it to run --threshold); --fail-on takes METRIC:+N%%, the change allowed against the base, as in \"p99:+10%%\"")
	}
	if !ok {
		return bad("want METRIC:+N%% (a rise beyond N%% fails) or METRIC:-N%% (a fall), as in \"p99:+10%%\"")
	}
	name = strings.ToLower(strings.TrimSpace(name))
	val = strings.TrimSpace(val)
	m, ok := Lookup(name)
	if !ok {
		return bad("unknown metric %q (want %s, or p50, p90, p99, p99.9, max for latency)", name, strings.Join(names(), ", "))
	}
	if !strings.HasSuffix(val, "%") {
		return bad("limit %q is not a percentage; want e.g. +10%%", val)
	}
	num := strings.TrimSuffix(val, "%")
	sign := ""
	if strings.HasPrefix(num, "+") || strings.HasPrefix(num, "-") {
		sign, num = num[:1], num[1:]
	}
	pct, err := strconv.ParseFloat(num, 64)
	if err != nil || pct < 0 {
		return bad("limit %q is not a number of percent", val)
	}
	worse, better := "+", "-"
	what := "a rise"
	if m.HigherIsBetter {
		worse, better, what = "-", "+", "a fall"
	}
	if sign == better {
		return bad("%s gets worse by %s; write %s:%s%s%%", m.Name, what, name, worse, num)
	}
	return Limit{Expr: item, Metric: m, Pct: pct}, nil
}

func names() []string {
	var n []string
	for _, m := range Metrics() {
		n = append(n, m.Name)
	}
	return n
}

// String is the limit as a bound on the change: "+10%" or "-5%".
func (l Limit) String() string {
	if l.Metric.HigherIsBetter {
		return "-" + strconv.FormatFloat(l.Pct, 'f', -1, 64) + "%"
	}
	return "+" + strconv.FormatFloat(l.Pct, 'f', -1, 64) + "%"
}
