package wire_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"testing"

	"github.com/sockbench/sockbench/internal/wire"
)

var headerCases = []struct {
	name string
	h    wire.Header
}{
	{"zero", wire.Header{}},
	{"probe", wire.Header{Flags: wire.FlagProbe, ConnID: 7, Seq: 1, Intended: 10, Sent: 12}},
	{"max seq and conn", wire.Header{Flags: 0xff, ConnID: math.MaxUint32, Seq: math.MaxUint64, Intended: math.MaxInt64, Sent: math.MaxInt64}},
	{"negative times", wire.Header{ConnID: 1, Seq: 2, Intended: -1, Sent: -5_000_000_000}},
	{"min times", wire.Header{Seq: 1 << 63, Intended: math.MinInt64, Sent: math.MinInt64}},
}

func TestHeaderPutDecode(t *testing.T) {
	for _, tc := range headerCases {
		t.Run(tc.name, func(t *testing.T) {
			b := make([]byte, wire.HeaderSize+8) // trailing payload is ignored
			wire.Pad(b)
			tc.h.Put(b)
			if got, want := string(b[:4]), string([]byte{'S', 'B', wire.Version, tc.h.Flags}); got != want {
				t.Fatalf("prefix: got %q, want %q", got, want)
			}
			if got, want := string(b[wire.HeaderSize:]), "xxxxxxxx"; got != want {
				t.Fatalf("Put wrote past the header: got %q, want %q", got, want)
			}
			var got wire.Header
			if err := got.Decode(b); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if want := tc.h; got != want {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestHeaderPutTextDecodeText(t *testing.T) {
	for _, tc := range headerCases {
		t.Run(tc.name, func(t *testing.T) {
			b := make([]byte, wire.TextHeaderSize+4)
			wire.Pad(b)
			tc.h.PutText(b)
			text := b[:wire.TextHeaderSize]
			if got, want := bytes.IndexByte(b, '\n'), -1; got != want {
				t.Fatalf("newline at %d in text header %q", got, b)
			}
			if got, want := string(text), string(bytes.ToLower(text)); got != want {
				t.Fatalf("text header not lowercase: got %q, want %q", got, want)
			}
			if got, want := string(b[wire.TextHeaderSize:]), "xxxx"; got != want {
				t.Fatalf("PutText wrote past the header: got %q, want %q", got, want)
			}
			var got wire.Header
			if err := got.DecodeText(b); err != nil {
				t.Fatalf("DecodeText: %v", err)
			}
			if want := tc.h; got != want {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestHeaderDecodeErrors(t *testing.T) {
	valid := make([]byte, wire.HeaderSize)
	(&wire.Header{Seq: 3}).Put(valid)
	with := func(i int, v byte) []byte {
		b := bytes.Clone(valid)
		b[i] = v
		return b
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"nil", nil, wire.ErrShort},
		{"empty", []byte{}, wire.ErrShort},
		{"one short", valid[:wire.HeaderSize-1], wire.ErrShort},
		{"magic 0", with(0, 'X'), wire.ErrMagic},
		{"magic 1", with(1, 'X'), wire.ErrMagic},
		{"padding instead of header", bytes.Repeat([]byte{wire.PadByte}, 64), wire.ErrMagic},
		{"version 0", with(2, 0), wire.ErrVersion},
		{"version 2", with(2, 2), wire.ErrVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h wire.Header
			if got, want := h.Decode(tc.in), tc.want; !errors.Is(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
}

func TestHeaderDecodeTextErrors(t *testing.T) {
	valid := make([]byte, wire.TextHeaderSize)
	(&wire.Header{Seq: 3}).PutText(valid)
	textOf := func(raw []byte) []byte { return []byte(hex.EncodeToString(raw)) }
	binary := make([]byte, wire.HeaderSize)
	(&wire.Header{Seq: 3}).Put(binary)
	badMagic := bytes.Clone(binary)
	badMagic[0] = 'X'
	badVersion := bytes.Clone(binary)
	badVersion[2] = 9
	notHex := bytes.Clone(valid)
	notHex[10] = 'g'
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"nil", nil, wire.ErrShort},
		{"one short", valid[:wire.TextHeaderSize-1], wire.ErrShort},
		{"binary header", binary, wire.ErrShort},
		{"not hex", notHex, wire.ErrMagic},
		{"padding", bytes.Repeat([]byte{wire.PadByte}, wire.TextHeaderSize), wire.ErrMagic},
		{"bad magic", textOf(badMagic), wire.ErrMagic},
		{"bad version", textOf(badVersion), wire.ErrVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h wire.Header
			if got, want := h.DecodeText(tc.in), tc.want; !errors.Is(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
}

func TestPad(t *testing.T) {
	for _, n := range []int{0, 1, 33} {
		b := make([]byte, n)
		wire.Pad(b)
		if got, want := string(b), string(bytes.Repeat([]byte{wire.PadByte}, n)); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

func FuzzHeaderDecode(f *testing.F) {
	b := make([]byte, wire.HeaderSize)
	(&wire.Header{ConnID: 1, Seq: 2, Intended: -3, Sent: 4}).Put(b)
	f.Add(b)
	tb := make([]byte, wire.TextHeaderSize)
	(&wire.Header{Flags: wire.FlagProbe, Seq: math.MaxUint64}).PutText(tb)
	f.Add(tb)
	f.Add([]byte{})
	f.Add([]byte("SB"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var h wire.Header
		if err := h.Decode(in); err == nil {
			out := make([]byte, wire.HeaderSize)
			h.Put(out)
			if got, want := string(out), string(in[:wire.HeaderSize]); got != want {
				t.Fatalf("Put(Decode(b)): got %x, want %x", got, want)
			}
		}
		var ht wire.Header
		if err := ht.DecodeText(in); err == nil {
			out := make([]byte, wire.TextHeaderSize)
			ht.PutText(out)
			if got, want := string(out), string(bytes.ToLower(in[:wire.TextHeaderSize])); got != want {
				t.Fatalf("PutText(DecodeText(b)): got %q, want %q", got, want)
			}
		}
	})
}
