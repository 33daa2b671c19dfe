package scenarios

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Keys of a scenario and of a phase, in the order they are documented.
var (
	scenarioKeys = []string{"name", "description", "target", "transport", "framing", "mode", "insecure",
		"warmup", "timeout", "connect_timeout", "max_inflight", "phases", "thresholds", "broadcast"}
	phaseKeys = []string{"name", "duration", "conns", "connect_rate", "rate", "per_conn_rate", "size", "inflight"}
)

// Load reads and parses the scenario file at path (see Parse). A file that
// cannot be read is an *Error too.
func Load(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		msg := err.Error()
		var pe *os.PathError
		if errors.As(err, &pe) {
			msg = pe.Err.Error()
		}
		return nil, &Error{File: path, Msg: "cannot read scenario: " + msg}
	}
	return Parse(path, data)
}

// Parse reads a scenario from YAML. Parsing is strict: unknown keys (with the
// closest known key suggested), values of the wrong type, duplicate keys, bad
// durations, bad thresholds, missing required keys and YAML syntax errors are
// all *Error values positioned at file:line:col, file being the name used in
// messages. Value ranges and combinations are checked later, by Plan, after
// any flag overrides are applied.
func Parse(file string, data []byte) (*Spec, error) {
	p := &parser{file: file, spec: &Spec{File: file, at: map[string]position{}}}
	root, err := p.document(data)
	if err != nil {
		return nil, err
	}
	p.scenario(root)
	if err := p.errs.err(); err != nil {
		return nil, err
	}
	return p.spec, nil
}

type parser struct {
	file string
	spec *Spec
	errs errList
}

// failf records a problem at node n; path, when not empty, prefixes the
// message ("phases[0].rate: ...").
func (p *parser) failf(n *yaml.Node, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	p.errs.add(&Error{File: p.file, Line: n.Line, Col: n.Column, Msg: msg})
}

// document decodes the single YAML document in data.
func (p *parser) document(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: p.file, Line: 1, Col: 1,
				Msg: "empty scenario; want a mapping with at least name and phases"}
		}
		return nil, p.syntax(data, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, p.syntax(data, err)
	default:
		return nil, &Error{File: p.file, Line: extra.Line, Col: extra.Column,
			Msg: "a second YAML document; a scenario file holds one scenario"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	return root, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntax turns a YAML syntax error, which carries a line at best, into an
// *Error with a line and column. yaml.v3 gives no column and, for scanner
// errors on the first line, no line, so both are found in data: a tab near the
// reported line is almost always the cause, else the first non-blank column.
func (p *parser) syntax(data []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else if strings.HasPrefix(msg, "found ") || strings.HasPrefix(msg, "did not find") {
		line = 1 // scanner errors on the first line come without one
	}
	lines := strings.Split(string(data), "\n")
	if strings.Contains(msg, "unknown anchor") {
		// "unknown anchor 'x' referenced": find the alias *x.
		if i := strings.IndexByte(msg, '\''); i >= 0 {
			if j := strings.IndexByte(msg[i+1:], '\''); j >= 0 {
				line, col := find(lines, "*"+msg[i+1:i+1+j], 0)
				return &Error{File: p.file, Line: line, Col: col, Msg: "invalid YAML: " + msg}
			}
		}
	}
	if line == 0 || line > len(lines) {
		return &Error{File: p.file, Msg: "invalid YAML: " + msg}
	}
	if strings.Contains(msg, "tab") || strings.Contains(msg, "cannot start any token") {
		// The scanner may report the line before the tab's.
		if l, c := find(lines, "\t", max(line-2, 0)); l != 0 && l <= line+1 {
			return &Error{File: p.file, Line: l, Col: c, Msg: "invalid YAML: tab character; indent with spaces, not tabs"}
		}
	}
	text := lines[line-1]
	col := 1 + utf8.RuneCountInString(text[:len(text)-len(strings.TrimLeft(text, " "))])
	return &Error{File: p.file, Line: line, Col: col, Msg: "invalid YAML: " + msg}
}

// find returns the 1-based line and column of the first s in lines[from:].
func find(lines []string, s string, from int) (line, col int) {
	for i := from; i < len(lines); i++ {
		if j := strings.Index(lines[i], s); j >= 0 {
			return i + 1, 1 + utf8.RuneCountInString(lines[i][:j])
		}
	}
	return 0, 0
}

// field is a known key of a mapping and what to do with its value.
type field struct {
	key string
	set func(v *yaml.Node, path string)
}

// mapping walks the mapping n (a scenario or a phase, as what says), calling
// the field for each key and recording where each value is. It reports keys
// that are unknown or repeated. It returns the keys it saw, and ok false if n
// is not a mapping or has unknown keys (so a misspelt required key is not
// reported twice, once unknown and once missing).
func (p *parser) mapping(n *yaml.Node, path, what string, fields []field, others []string) (seen map[string]bool, ok bool) {
	seen = map[string]bool{}
	if n.Kind != yaml.MappingNode {
		p.failf(n, path, "want a mapping of %s keys, got %s", what, describe(n))
		return seen, false
	}
	ok = true
	keyAt := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode || k.Tag == "!!null" {
			p.failf(k, path, "want a key name, got %s", describe(k))
			continue
		}
		key := k.Value
		if first, dup := keyAt[key]; dup {
			p.failf(k, "", "duplicate key %q in %s; first given at line %d", key, what, first.Line)
			continue
		}
		keyAt[key] = k
		var f *field
		for i := range fields {
			if fields[i].key == key {
				f = &fields[i]
			}
		}
		if f == nil {
			p.failf(k, "", "%s", unknownKey(key, what, fields, others))
			ok = false
			continue
		}
		seen[key] = true
		fp := key
		if path != "" {
			fp = path + "." + key
		}
		p.spec.at[fp] = position{v.Line, v.Column}
		f.set(v, fp)
	}
	return seen, ok
}

// unknownKey explains an unknown key: the closest known one if it is near,
// the mapping it belongs in if it is another mapping's key, or the known keys.
func unknownKey(key, what string, fields []field, others []string) string {
	known := make([]string, len(fields))
	for i, f := range fields {
		known[i] = f.key
	}
	if s, ok := suggest(key, known); ok {
		return fmt.Sprintf("unknown key %q in %s; did you mean %q?", key, what, s)
	}
	for _, o := range others {
		if o == key {
			if what == "phase" {
				return fmt.Sprintf("unknown key %q in phase; %s is a scenario key: move it to the top level", key, key)
			}
			return fmt.Sprintf("unknown key %q in scenario; %s is a phase key: move it into a phase under phases:", key, key)
		}
	}
	return fmt.Sprintf("unknown key %q in %s (known keys: %s)", key, what, strings.Join(known, ", "))
}

// suggest returns the known word closest to w, if it is within an edit
// distance of 2 or differs only in case, '-' and '_'.
func suggest(w string, known []string) (string, bool) {
	norm := func(s string) string {
		return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(s))
	}
	best, bestD := "", 3
	for _, k := range known {
		d := editDistance(w, k)
		if norm(w) == norm(k) {
			d = 0
		}
		if d < bestD {
			best, bestD = k, d
		}
	}
	return best, bestD <= 2
}

// editDistance is the optimal string alignment distance between a and b in
// runes: insertions, deletions, substitutions and swaps of neighbours
// ("mena" -> "mean") each count 1.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// deref follows aliases to the anchored node.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// describe names what a node holds, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			if n.Value == "" || n.Value == "~" {
				return "nothing"
			}
			return n.Value
		case "!!str":
			return strconv.Quote(n.Value)
		}
		return n.Value
	}
	return "an unexpected node"
}

func (p *parser) scenario(root *yaml.Node) {
	s := p.spec
	if root.Kind != yaml.MappingNode {
		p.failf(root, "", "want a scenario mapping with at least name and phases, got %s", describe(root))
		return
	}
	s.at[""] = position{root.Line, root.Column}
	fields := []field{
		{"name", func(v *yaml.Node, path string) { p.str(v, path, &s.Name) }},
		{"description", func(v *yaml.Node, path string) { p.str(v, path, &s.Description) }},
		{"target", func(v *yaml.Node, path string) { p.str(v, path, &s.Target) }},
		{"transport", func(v *yaml.Node, path string) { p.str(v, path, (*string)(&s.Transport)) }},
		{"framing", func(v *yaml.Node, path string) { p.str(v, path, (*string)(&s.Framing)) }},
		{"mode", func(v *yaml.Node, path string) { p.str(v, path, (*string)(&s.Mode)) }},
		{"insecure", func(v *yaml.Node, path string) { p.boolean(v, path, &s.Insecure) }},
		{"warmup", func(v *yaml.Node, path string) { s.Warmup = p.durationPtr(v, path) }},
		{"timeout", func(v *yaml.Node, path string) { s.Timeout = p.durationPtr(v, path) }},
		{"connect_timeout", func(v *yaml.Node, path string) { s.ConnectTimeout = p.durationPtr(v, path) }},
		{"max_inflight", func(v *yaml.Node, path string) { s.MaxInFlight = p.integerPtr(v, path) }},
		{"phases", p.phases},
		{"thresholds", p.thresholds},
		{"broadcast", p.broadcast},
	}
	seen, ok := p.mapping(root, "", "scenario", fields, phaseKeys)
	if !ok {
		return
	}
	if !seen["name"] {
		p.failf(root, "", "missing required key \"name\"")
	}
	if !seen["phases"] {
		p.failf(root, "", "missing required key \"phases\"; add at least one phase with duration and conns")
	}
}

func (p *parser) phases(v *yaml.Node, path string) {
	if v.Kind != yaml.SequenceNode {
		p.failf(v, path, "want a list of phases, got %s", describe(v))
		return
	}
	if len(v.Content) == 0 {
		p.failf(v, path, "at least one phase is required, with duration and conns")
		return
	}
	p.spec.Phases = make([]Phase, len(v.Content))
	for i, n := range v.Content {
		n = deref(n)
		ph := &p.spec.Phases[i]
		pp := fmt.Sprintf("%s[%d]", path, i)
		p.spec.at[pp] = position{n.Line, n.Column}
		fields := []field{
			{"name", func(v *yaml.Node, path string) { p.str(v, path, &ph.Name) }},
			{"duration", func(v *yaml.Node, path string) {
				if d, ok := p.duration(v, path); ok {
					ph.Duration = d
				}
			}},
			{"conns", func(v *yaml.Node, path string) { p.integer(v, path, &ph.Conns) }},
			{"connect_rate", func(v *yaml.Node, path string) { ph.ConnectRate = p.numberPtr(v, path) }},
			{"rate", func(v *yaml.Node, path string) { ph.Rate = p.numberPtr(v, path) }},
			{"per_conn_rate", func(v *yaml.Node, path string) { ph.PerConnRate = p.numberPtr(v, path) }},
			{"size", func(v *yaml.Node, path string) { ph.Size = p.integerPtr(v, path) }},
			{"inflight", func(v *yaml.Node, path string) { ph.InFlight = p.integerPtr(v, path) }},
		}
		seen, ok := p.mapping(n, pp, "phase", fields, scenarioKeys)
		if !ok {
			continue
		}
		if !seen["duration"] {
			p.failf(n, pp, "missing required key \"duration\" (how long the phase lasts, like duration: 20s)")
		}
		if !seen["conns"] {
			p.failf(n, pp, "missing required key \"conns\" (connections to open, like conns: 100)")
		}
	}
}

func (p *parser) broadcast(v *yaml.Node, path string) {
	b := &Broadcast{}
	p.spec.Broadcast = b
	fields := []field{
		{"namespace", func(v *yaml.Node, path string) { p.str(v, path, &b.Namespace) }},
		{"rooms", func(v *yaml.Node, path string) { b.Rooms = p.integerPtr(v, path) }},
		{"distribution", func(v *yaml.Node, path string) { p.str(v, path, &b.Distribution) }},
		{"skew", func(v *yaml.Node, path string) { b.Skew = p.numberPtr(v, path) }},
		{"sizes", func(v *yaml.Node, path string) {
			if v.Kind != yaml.SequenceNode {
				p.failf(v, path, "want a list of room sizes like [500, 300, 200], got %s", describe(v))
				return
			}
			for i, n := range v.Content {
				var k int
				if p.integer(deref(n), fmt.Sprintf("%s[%d]", path, i), &k) {
					b.Sizes = append(b.Sizes, k)
				}
			}
		}},
		{"publishers", func(v *yaml.Node, path string) { b.Publishers = p.integerPtr(v, path) }},
		{"publish_rate", func(v *yaml.Node, path string) { b.PublishRate = p.numberPtr(v, path) }},
		{"chat", func(v *yaml.Node, path string) { p.boolean(v, path, &b.Chat) }},
		{"to_self", func(v *yaml.Node, path string) { p.boolean(v, path, &b.ToSelf) }},
		{"top_rooms", func(v *yaml.Node, path string) { b.TopRooms = p.integerPtr(v, path) }},
		{"churn_every", func(v *yaml.Node, path string) { p.integer(v, path, &b.ChurnEvery) }},
		{"keepalive", func(v *yaml.Node, path string) { b.KeepAlive = p.durationPtr(v, path) }},
	}
	p.mapping(v, path, "broadcast", fields, nil)
}

func (p *parser) thresholds(v *yaml.Node, path string) {
	if v.Kind != yaml.SequenceNode {
		p.failf(v, path, "want a list of thresholds like \"p99 < 50ms\", got %s", describe(v))
		return
	}
	for i, n := range v.Content {
		n = deref(n)
		tp := fmt.Sprintf("%s[%d]", path, i)
		p.spec.at[tp] = position{n.Line, n.Column}
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
			p.failf(n, tp, "want a threshold like \"p99 < 50ms\", got %s", describe(n))
			continue
		}
		t, err := ParseThreshold(n.Value)
		if err != nil {
			p.failf(n, tp, "%s", err.(*Error).Msg)
			continue
		}
		t.File, t.Line, t.Col = p.file, n.Line, n.Column
		p.spec.Thresholds = append(p.spec.Thresholds, t)
	}
}

func (p *parser) str(v *yaml.Node, path string, dst *string) {
	if v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
		if v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
			p.failf(v, path, "want a string, got %s (quote it: %q)", describe(v), v.Value)
			return
		}
		p.failf(v, path, "want a string, got %s", describe(v))
		return
	}
	*dst = v.Value
}

func (p *parser) boolean(v *yaml.Node, path string, dst *bool) {
	if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" || v.Decode(dst) != nil {
		p.failf(v, path, "want true or false, got %s", describe(v))
	}
}

// number decodes a finite int or float.
func (p *parser) number(v *yaml.Node, path string) (float64, bool) {
	var f float64
	if v.Kind != yaml.ScalarNode || (v.Tag != "!!int" && v.Tag != "!!float") || v.Decode(&f) != nil {
		p.failf(v, path, "want a number, got %s", describe(v))
		return 0, false
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		p.failf(v, path, "want a finite number, got %s", v.Value)
		return 0, false
	}
	return f, true
}

func (p *parser) numberPtr(v *yaml.Node, path string) *float64 {
	if f, ok := p.number(v, path); ok {
		return &f
	}
	return nil
}

// integer decodes a whole number; 1e4 is accepted, 2.5 is not.
func (p *parser) integer(v *yaml.Node, path string, dst *int) bool {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!int" && v.Decode(dst) == nil {
		return true
	}
	if v.Kind == yaml.ScalarNode && v.Tag == "!!float" {
		var f float64
		if v.Decode(&f) == nil && f == math.Trunc(f) && math.Abs(f) <= 1<<53 {
			*dst = int(f)
			return true
		}
	}
	p.failf(v, path, "want a whole number, got %s", describe(v))
	return false
}

func (p *parser) integerPtr(v *yaml.Node, path string) *int {
	var n int
	if p.integer(v, path, &n) {
		return &n
	}
	return nil
}

// duration decodes a Go duration string such as "20s" or "1m30s" (or 0).
func (p *parser) duration(v *yaml.Node, path string) (Duration, bool) {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		p.failf(v, path, "want a duration like \"20s\", got %s", describe(v))
		return 0, false
	}
	d, err := time.ParseDuration(v.Value)
	if err != nil {
		p.failf(v, path, "bad duration %q: want a Go duration like \"20s\", \"500ms\" or \"1m30s\"", v.Value)
		return 0, false
	}
	return Duration(d), true
}

func (p *parser) durationPtr(v *yaml.Node, path string) *Duration {
	if d, ok := p.duration(v, path); ok {
		return &d
	}
	return nil
}
