package targets

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// utf8Cases are texts the validator must judge as utf8.Valid does; they
// include every kind of invalid encoding RFC 3629 names.
var utf8Cases = []struct {
	name string
	in   string
	ok   bool
}{
	{name: "empty", in: "", ok: true},
	{name: "ascii", in: "sockbench", ok: true},
	{name: "two-byte", in: "h\u00e9llo", ok: true},
	{name: "three-byte", in: "\u20ac \u65e5\u672c", ok: true},
	{name: "four-byte", in: "\U0001f600\U0010ffff", ok: true},
	{name: "replacement character", in: "\ufffd", ok: true},
	{name: "0xff", in: "a\xffb", ok: false},
	{name: "0xfe", in: "\xfe", ok: false},
	{name: "lone continuation", in: "\x80", ok: false},
	{name: "overlong slash", in: "\xc0\xaf", ok: false},
	{name: "overlong nul", in: "\xc0\x80", ok: false},
	{name: "overlong three-byte", in: "\xe0\x80\xaf", ok: false},
	{name: "overlong four-byte", in: "\xf0\x80\x80\xaf", ok: false},
	{name: "surrogate high", in: "\xed\xa0\x80", ok: false},
	{name: "surrogate low", in: "\xed\xbf\xbf", ok: false},
	{name: "above U+10FFFF", in: "\xf4\x90\x80\x80", ok: false},
	{name: "lead 0xf5", in: "\xf5\x80\x80\x80", ok: false},
	{name: "truncated two-byte", in: "ab\xc3", ok: false},
	{name: "truncated three-byte", in: "\xe2\x82", ok: false},
	{name: "truncated four-byte", in: "\xf0\x9f\x98", ok: false},
	{name: "lead then ascii", in: "\xe2a\xac", ok: false},
	{name: "too many continuations", in: "\xc3\xa9\xa9", ok: false},
}

// checkSplit feeds in to a utf8Stream in the parts that cuts (increasing
// offsets) make and returns its verdict on the whole.
func checkSplit(in []byte, cuts []int) bool {
	var s utf8Stream
	prev := 0
	for _, c := range cuts {
		if !s.write(in[prev:c]) {
			return false
		}
		prev = c
	}
	return s.check(in[prev:], true)
}

func TestUTF8Stream(t *testing.T) {
	t.Parallel()
	for _, tt := range utf8Cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := []byte(tt.in)
			if got := utf8.Valid(in); got != tt.ok {
				t.Fatalf(
					"utf8.Valid(%q) = %v: the case is wrong",
					in, got)
			}
			// Whole, then cut once at every offset, then a byte at a time.
			if got := checkSplit(in, nil); got != tt.ok {
				t.Errorf(
					"whole %q: got %v, want %v",
					in, got, tt.ok)
			}
			for i := range len(in) + 1 {
				if got := checkSplit(in, []int{i}); got != tt.ok {
					t.Errorf(
						"%q cut at %d: got %v, want %v",
						in, i, got, tt.ok)
				}
			}
			var each []int
			for i := range len(in) {
				each = append(each, i)
			}
			if got := checkSplit(in, each); got != tt.ok {
				t.Errorf(
					"%q a byte at a time: got %v, want %v",
					in, got, tt.ok)
			}
		})
	}
}

// TestUTF8StreamFailsEarly checks that the stream fails on the part where
// the text stops being a prefix of valid UTF-8, not only at the end.
func TestUTF8StreamFailsEarly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		parts []string
		bad   int // the part write must reject
	}{
		{name: "0xff in the first part", parts: []string{"ab\xff", "cd"}, bad: 0},
		{name: "surrogate completed in the second", parts: []string{"\xed", "\xa0\x80"}, bad: 1},
		{name: "above U+10FFFF at its second byte", parts: []string{"\xf4", "\x90", "\x80\x80"}, bad: 1},
		{name: "overlong at its second byte", parts: []string{"a\xe0", "\x80"}, bad: 1},
		{name: "ascii inside a code point", parts: []string{"\xe2\x82", "a"}, bad: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var s utf8Stream
			for i, p := range tt.parts {
				if got, want := s.write([]byte(p)), i != tt.bad; got != want {
					t.Fatalf(
						"part %d %q: write = %v, want %v",
						i, p, got, want)
				}
				if i == tt.bad {
					return
				}
			}
		})
	}
}

func TestUTF8StreamAllocs(t *testing.T) {
	in := []byte("h\u00e9llo \u20ac\U0001f600 sockbench")
	allocs := testing.AllocsPerRun(100, func() {
		checkSplit(in, []int{2, 9, 11})
	})
	if allocs != 0 {
		t.Fatalf(
			"%v allocations per check, want 0",
			allocs)
	}
}

// FuzzUTF8Stream splits its input at arbitrary points, given by the bytes
// of cuts, and checks that the stream agrees with utf8.Valid on the whole.
func FuzzUTF8Stream(f *testing.F) {
	for _, tt := range utf8Cases {
		f.Add([]byte(tt.in), []byte{1, 2})
		f.Add([]byte("x"+tt.in+"y"), []byte{0, 1, 1, 3})
	}
	f.Add(bytes.Repeat([]byte("\u20ac"), 40), []byte{5, 7, 11, 13, 17})
	f.Fuzz(func(t *testing.T, in, cuts []byte) {
		// Each byte of cuts is the length of the next part (0 allowed).
		var offs []int
		at := 0
		for _, c := range cuts {
			at = min(at+int(c), len(in))
			offs = append(offs, at)
		}
		if got, want := checkSplit(in, offs), utf8.Valid(in); got != want {
			t.Fatalf(
				"%q in parts ending at %v: got %v, utf8.Valid says %v",
				in, offs, got, want)
		}
	})
}

// BenchmarkUTF8Stream compares the check of one whole text frame with
// utf8.Valid on the same bytes: the stream's own cost is the difference.
//
//	go test -run '^$' -bench UTF8Stream -count 6 ./targets
func BenchmarkUTF8Stream(b *testing.B) {
	for _, tt := range []struct {
		name string
		in   []byte
	}{
		{"ascii-64", asciiText(64)},
		{"ascii-4K", asciiText(4 << 10)},
		{"multibyte-4K", multibyteText(4 << 10)},
	} {
		b.Run(tt.name+"/check", func(b *testing.B) {
			b.SetBytes(int64(len(tt.in)))
			b.ReportAllocs()
			var s utf8Stream
			for range b.N {
				if !s.check(tt.in, true) {
					b.Fatal("invalid")
				}
			}
		})
		b.Run(tt.name+"/utf8.Valid", func(b *testing.B) {
			b.SetBytes(int64(len(tt.in)))
			b.ReportAllocs()
			for range b.N {
				if !utf8.Valid(tt.in) {
					b.Fatal("invalid")
				}
			}
		})
	}
}
